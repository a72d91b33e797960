"""What a reader hands on: a raw record, still in its source's shape, and where it came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

RecordShape = Literal["windows_event", "json", "claimed"]
"""How a record's data is shaped.

* ``windows_event``: a Windows event as the evtx package renders it to JSON,
  ``{"Event": {"System": {...}, "EventData": {...}}}``, whatever container it came from (EVTX, event XML,
  evtx_dump JSON); XML attributes sit under ``#attributes`` and element text under ``#text``, as evtx renders
  them.
* ``json``: any other JSON object (ECS documents, Winlogbeat, flat OTRF records, vendor exports), as decoded.
* ``claimed``: no record, a marker: a reader given a claim (:data:`~shellwatch.sources.evtx_file.RecordClaim`)
  yields one now and then among the records it claimed, so that its caller can report progress while it reads
  nothing else.
"""


# Made once per record on the hot path: plain slotted classes cost a third of frozen ones.
@dataclass(slots=True)
class Origin:
    """Where a record came from: the file (``-`` for stdin; ``archive.zip!member`` inside an archive), and the
    EVTX record id or the 1-based line of a text file, when known."""

    path: str
    record_id: int | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.record_id is not None:
            return f"{self.path} record {self.record_id}"
        if self.line is not None:
            return f"{self.path}:{self.line}"
        return self.path


@dataclass(slots=True)
class RawRecord:
    """One record read from a source, not yet normalized."""

    data: dict[str, Any]
    shape: RecordShape
    origin: Origin


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """A part of an input that could not be read: the record or chunk is skipped, the rest still read."""

    origin: Origin
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason}"


class ProblemCount:
    """Passes problems on to ``on_problem``, counting them (a reader gives up on an input that yields nothing but
    problems)."""

    __slots__ = ("_on_problem", "count")

    def __init__(self, on_problem: Callable[[ReadProblem], None]) -> None:
        self._on_problem = on_problem
        self.count = 0

    def report(self, problem: ReadProblem) -> None:
        self.count += 1
        self._on_problem(problem)
