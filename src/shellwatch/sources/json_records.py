"""JSON in, raw records out: NDJSON, a JSON array, a single object, or objects back to back (pretty-printed
ones included, as some exports concatenate them).

Each object becomes one record (the objects of an Azure Event Hubs batch, ``{"records": [...]}``, each one):
shape ``windows_event`` when it is an evtx_dump rendering
(``{"Event": {"System": ...}}``), shape ``json`` otherwise (ECS documents, Winlogbeat, OTRF records, EDR
exports).

The input is read line by line and each line is first tried as a whole JSON document (the NDJSON fast path). A
line that is not a whole document is handed to a bracket scanner that finds where top-level values end: it
follows brackets outside strings, so pretty-printed objects spanning lines, an array spanning the file (read
element by element, never whole), and several objects on one line are all cut into single values for orjson.
JSON strings cannot hold a raw line break, so string state never crosses a line. A value that does not parse
is reported with the line it starts on and skipped, the rest is read; so is a line or a value over
:data:`MAX_RECORD_BYTES`, which is never held whole in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson

from shellwatch.sources.record import Origin, ProblemCount, RawRecord, ReadProblem, RecordShape

ProblemSink = Callable[[ReadProblem], None]

MAX_RECORD_BYTES = 16 << 20
"""A line or a JSON value larger than this is reported and skipped."""

_SKIP_BLOCK = 1 << 20
GIVE_UP_AFTER = 100
"""Problems tolerated before the first record: an input with that many and no JSON object at all is not JSON
(text that happens to start with a brace), and the rest of it is skipped with one last problem."""
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[{}\[\]]')
"""A string (possibly unterminated at the end of the line) or a bracket; everything else is between tokens."""
_SEPARATORS = b" \t\r\n,"


def read_json(
    stream: IO[bytes], display: str, on_problem: ProblemSink, *, first_line: int = 1, records_before: bool = False
) -> Iterator[RawRecord]:
    """Every JSON object in a UTF-8 stream, with the line its value starts on.

    A stream holding part of an input from one of its line starts (a piece of a large JSON lines file) says which
    line of the input it starts on, ``first_line``, and whether the input had records before it: then it is not
    given up on for problems before its first record, as the whole input would not be.
    """
    problems = ProblemCount(on_problem)
    on_problem = problems.report
    scanner = _ValueScanner(display, on_problem)
    line_number = first_line - 1
    records = 1 if records_before else 0
    while True:
        if not records and problems.count >= GIVE_UP_AFTER:
            on_problem(ReadProblem(Origin(display, line=line_number), "no JSON object found; rest skipped"))
            return
        line = stream.readline(MAX_RECORD_BYTES + 1)
        if not line:
            break
        line_number += 1
        if len(line) > MAX_RECORD_BYTES:
            _skip_rest_of_line(stream, line)
            on_problem(
                ReadProblem(
                    Origin(display, line=line_number),
                    f"line longer than {MAX_RECORD_BYTES >> 20} MiB; skipped",
                )
            )
            scanner.abandon()
            continue
        if scanner.idle:
            stripped = line.strip()
            if not stripped:
                continue
            try:
                value = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                pass
            else:
                for record in _records(value, display, line_number, on_problem):
                    records += 1
                    yield record
                continue
        for start_line, text in scanner.feed(line, line_number):
            try:
                value = _loads(text, Origin(display, line=start_line), on_problem)
            except orjson.JSONDecodeError as error:
                on_problem(ReadProblem(Origin(display, line=start_line), f"invalid JSON: {error}"))
                continue
            for record in _records(value, display, start_line, on_problem):
                records += 1
                yield record
    scanner.finish(line_number)


def _loads(text: bytes, origin: Origin, on_problem: ProblemSink) -> Any:
    """Decode one JSON value; invalid UTF-8 (which orjson refuses) is replaced by U+FFFD and reported, so that
    a stray byte cannot hide an event."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            value = orjson.loads(text.decode("utf-8", "replace"))
            on_problem(ReadProblem(origin, "invalid UTF-8 bytes replaced by U+FFFD"))
            return value
        raise


def _skip_rest_of_line(stream: IO[bytes], head: bytes) -> None:
    tail = head
    while not tail.endswith(b"\n"):
        tail = stream.readline(_SKIP_BLOCK)
        if not tail:
            return


def _records(value: Any, display: str, line: int, on_problem: ProblemSink) -> Iterator[RawRecord]:
    # A top-level array (a whole file, or one NDJSON line holding a batch) is a list of records; so is the
    # batch Azure Event Hubs and diagnostic settings deliver, {"records": [...]} (Microsoft 365 Defender's
    # streaming API among them).
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("records"), list):
        value = value["records"]
    items = value if isinstance(value, list) else (value,)
    for item in items:
        if isinstance(item, dict):
            yield RawRecord(item, _shape(item), Origin(display, line=line))
        else:
            on_problem(ReadProblem(Origin(display, line=line), f"JSON {type(item).__name__} is not an object; skipped"))


def _shape(document: dict[str, Any]) -> RecordShape:
    event = document.get("Event")
    if isinstance(event, dict) and "System" in event:
        return "windows_event"
    return "json"


class _ValueScanner:
    """Finds where top-level JSON values start and end across lines, by bracket depth outside strings.

    An array opened at the top level is a container: its elements are the values. Inside a value, a line
    starting at or left of the column where the value opened with ``{`` or ``[`` means the value was cut
    short: it is reported and a new value starts there (pretty-printers indent nested lines deeper).
    """

    def __init__(self, display: str, on_problem: ProblemSink) -> None:
        self._display = display
        self._on_problem = on_problem
        self._in_array = False
        self._depth = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._oversized = False
        self._start_line = 0
        self._start_column = 0

    @property
    def idle(self) -> bool:
        """Outside any value and any top-level array: the next line can be tried as a whole document."""
        return self._depth == 0 and not self._in_array

    def abandon(self) -> None:
        """Forget a value in progress (its line was skipped)."""
        if self._depth:
            self._problem(self._start_line, "JSON value cut short by a skipped line; skipped")
        self._reset()

    def _reset(self) -> None:
        self._depth = 0
        self._parts = []
        self._size = 0
        self._oversized = False

    def finish(self, line_number: int) -> None:
        """End of input: report a value or an array left open."""
        if self._depth:
            self._problem(self._start_line, "JSON value not terminated at the end of the input; skipped")
        elif self._in_array:
            self._problem(line_number, "JSON array not closed at the end of the input")
        self._reset()

    def feed(self, line: bytes, line_number: int) -> Iterator[tuple[int, bytes]]:
        """The complete values this line ends, as ``(start line, bytes)``."""
        if self._depth and self._cut_short(line):
            self._problem(self._start_line, "JSON value not terminated; skipped")
            self._reset()
        value_start = 0
        position = 0
        for token in _TOKEN.finditer(line):
            kind = token[0][:1]
            if self._depth == 0:
                self._check_between_values(line[position : token.start()], line_number)
                position = token.end()
                if kind == b"{" or (kind == b"[" and self._in_array):
                    self._open(token.start(), line_number)
                    value_start = token.start()
                elif kind == b"[":
                    self._in_array = True  # the top-level array of records, read element by element
                elif kind == b"]" and self._in_array:
                    self._in_array = False
                else:
                    self._problem(line_number, "unexpected text outside a JSON value; skipped to the next value")
                    return
                continue
            position = token.end()
            if kind in b"{[":
                self._depth += 1
            elif kind in b"}]":
                self._depth -= 1
                if self._depth == 0:
                    complete = self._close(line[value_start : token.end()])
                    if complete is not None:
                        yield complete
        if self._depth:
            self._keep(line[value_start:])
        else:
            self._check_between_values(line[position:], line_number)

    def _cut_short(self, line: bytes) -> bool:
        stripped = line.lstrip(b" \t")
        indent = len(line) - len(stripped)
        return stripped[:1] in (b"{", b"[") and indent <= self._start_column

    def _open(self, column: int, line_number: int) -> None:
        self._depth = 1
        self._start_line = line_number
        self._start_column = column
        self._parts = []
        self._size = 0
        self._oversized = False

    def _keep(self, part: bytes) -> None:
        if self._oversized:
            return
        self._size += len(part)
        if self._size > MAX_RECORD_BYTES:
            self._problem(self._start_line, f"JSON value larger than {MAX_RECORD_BYTES >> 20} MiB; skipped")
            self._oversized = True
            self._parts = []
            return
        self._parts.append(part)

    def _close(self, last_part: bytes) -> tuple[int, bytes] | None:
        self._keep(last_part)
        oversized = self._oversized
        text = b"".join(self._parts)
        self._parts = []
        self._size = 0
        self._oversized = False
        return None if oversized else (self._start_line, text)

    def _check_between_values(self, text: bytes, line_number: int) -> None:
        if text.strip(_SEPARATORS):
            self._problem(line_number, "unexpected text outside a JSON value; skipped")

    def _problem(self, line: int, reason: str) -> None:
        self._on_problem(ReadProblem(Origin(self._display, line=line), reason))
