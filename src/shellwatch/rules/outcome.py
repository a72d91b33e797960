"""What loading a rule file gives: per rule (or per unreadable file) an outcome -- ok, unsupported or error.

A loader never raises for bad input: every problem becomes an outcome that says why and where, so one broken
file never hides the others and a caller (``shellwatch rules validate``, the hunt command) decides what to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from shellwatch.rules.model import Rule

Status = Literal["ok", "unsupported", "error"]
"""ok: the rule loaded and compiled to the IR. unsupported: valid, but uses a feature shellwatch does not run
(``reason`` names it). error: the file or rule is invalid (``reason`` says why)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadOutcome:
    """The outcome for one rule, or for a whole file that could not be read as rules."""

    path: str
    status: Status
    reason: str = ""
    """Why it is unsupported or an error; for an ok rule, an optional note (a partly mapped logsource)."""
    index: int | None = None
    """Which rule or document of the file (0-based), when the file holds several or the fault is in one."""
    line: int | None = None
    """1-based line of the problem, when the parser reports it."""
    rule_id: str | None = None
    name: str | None = None
    language: str | None = None
    rule: Rule | None = None
    """The loaded rule; set when ``status`` is ok, except for a Sigma filter (``language`` "sigma-filter"), which
    is no rule of its own: it changes the rules it names."""

    @property
    def where(self) -> str:
        """``path``, ``path#index`` and/or ``path:line``: the place to look at."""
        text = self.path
        if self.index is not None and self.index > 0:
            text += f"#{self.index}"
        if self.line is not None:
            text += f":{self.line}"
        return text


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Every outcome of a load, in file order."""

    outcomes: tuple[LoadOutcome, ...]

    @classmethod
    def of(cls, outcomes: Iterable[LoadOutcome]) -> LoadResult:
        return cls(tuple(outcomes))

    def __iter__(self) -> Iterator[LoadOutcome]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules that loaded (status ok), in file order."""
        return tuple(o.rule for o in self.outcomes if o.rule is not None)

    @property
    def errors(self) -> tuple[LoadOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "error")

    @property
    def unsupported(self) -> tuple[LoadOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "unsupported")

    def counts(self) -> Counter[str]:
        """Number of outcomes by status."""
        return Counter(o.status for o in self.outcomes)
