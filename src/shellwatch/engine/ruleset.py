"""A set of rules compiled once and evaluated together over each event."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.rules.model import Rule

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule and its compiled predicate."""

    rule: Rule
    predicate: Predicate


class RuleSet:
    """Rules compiled to predicates, in a fixed order (the order given), so output order is deterministic."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.compiled: tuple[CompiledRule, ...] = tuple(CompiledRule(r, compile_predicate(r.ir)) for r in rules)

    def __len__(self) -> int:
        return len(self.compiled)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in evaluation order."""
        return tuple(c.rule for c in self.compiled)

    def matching(self, event: Mapping[str, Any]) -> list[Rule]:
        """The rules whose query matches ``event``, in rule order."""
        return [c.rule for c in self.compiled if c.predicate(event)]
