"""CSV in, raw records out: one record per data row, keyed by the header row's column names.

Microsoft Defender's Advanced Hunting, Microsoft Sentinel and most SIEM consoles export query results as CSV: a
header row of column names, then one row per event, every value a string. Each data row becomes one record of
shape ``json`` whose data maps column name -> cell text; empty cells are left out, as a JSON export leaves out
(or nulls) a column without a value, so ``"x" in row`` means the same for both. Numbers stay text: the
normalizer of the row's source knows which columns are numeric.

The text is UTF-8 (a byte order mark is skipped); the stdlib :mod:`csv` parser reads it with Excel's dialect
(comma separator, ``"`` quoting with ``""`` for a quote, line breaks allowed inside quoted cells). The header is
the first non-empty row. A row whose column count differs from the header's, a row spanning more than
:data:`MAX_ROW_BYTES`, malformed quoting or a cell over the :mod:`csv` module's field limit is reported with
the line the row starts on and skipped, up to the line that closes its quoted cell; the rest is
read. Invalid UTF-8 bytes become U+FFFD and are reported. Memory is bounded by :data:`MAX_ROW_BYTES` per row
however long the input.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import IO

from shellwatch.sources.record import Origin, ProblemCount, RawRecord, ReadProblem

ProblemSink = Callable[[ReadProblem], None]

MAX_ROW_BYTES = 1 << 20
"""A row (all its physical lines) larger than this is reported and skipped."""

GIVE_UP_AFTER = 100
"""Problems tolerated before the first record: that many and no row read means the input is not CSV after all
(text whose first line happens to look like a header), and the rest of it is skipped with one last problem."""

_SKIP_BLOCK = 1 << 20
_UTF8_BOM = "\ufeff"


class _RowTooLarge(Exception):
    """Raised through the csv parser when the row being parsed outgrows :data:`MAX_ROW_BYTES`."""


class _Lines:
    """The input's physical lines as text for the csv parser, counting lines, and the bytes and quote characters
    of the current row.

    A line longer than :data:`MAX_ROW_BYTES` is never held whole: its head raises :class:`_RowTooLarge` and the
    rest of it is skipped.
    """

    def __init__(self, stream: IO[bytes], display: str, on_problem: ProblemSink) -> None:
        self._stream = stream
        self._display = display
        self._on_problem = on_problem
        self._row_bytes = 0
        self._row_quotes = 0
        self.line_number = 0
        """Physical lines read so far (the 1-based number of the last one)."""

    def __iter__(self) -> Iterator[str]:
        return self

    def start_row(self) -> None:
        self._row_bytes = 0
        self._row_quotes = 0

    def __next__(self) -> str:
        raw = self._stream.readline(MAX_ROW_BYTES + 1)
        if not raw:
            raise StopIteration
        self.line_number += 1
        self._row_bytes += len(raw)
        # A quote byte is never part of a multi-byte UTF-8 character: counting bytes counts characters.
        self._row_quotes += raw.count(b'"')
        if len(raw) > MAX_ROW_BYTES:
            self._skip_rest_of_line(raw)
            raise _RowTooLarge
        if self._row_bytes > MAX_ROW_BYTES:
            raise _RowTooLarge
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            self._on_problem(
                ReadProblem(Origin(self._display, line=self.line_number), "invalid UTF-8 bytes replaced by U+FFFD")
            )
        if self.line_number == 1 and text.startswith(_UTF8_BOM):
            text = text[1:]
        return text

    def _skip_rest_of_line(self, head: bytes) -> None:
        tail = head
        while not tail.endswith(b"\n"):
            tail = self._stream.readline(_SKIP_BLOCK)
            if not tail:
                return
            self._row_quotes += tail.count(b'"')

    def skip_rest_of_row(self) -> None:
        """After a row given up on: read on, without keeping anything, to the end of the line that closes its
        open quoted cell, so the next row starts where the CSV's next row starts. Quotes toggle a quoted cell
        (a doubled quote toggles twice), so the row ends at the first line end after an even count."""
        at_line_end = True
        while self._row_quotes % 2 or not at_line_end:
            chunk = self._stream.readline(_SKIP_BLOCK)
            if not chunk:
                return
            self._row_quotes += chunk.count(b'"')
            at_line_end = chunk.endswith(b"\n")
            if at_line_end:
                self.line_number += 1


def read_csv(stream: IO[bytes], display: str, on_problem: ProblemSink) -> Iterator[RawRecord]:
    """Every data row of a UTF-8 CSV stream as a record (column name -> non-empty cell text), with the line the
    row starts on; see the module docstring for what is reported and skipped."""
    problems = ProblemCount(on_problem)
    lines = _Lines(stream, display, problems.report)
    rows = csv.reader(lines, dialect="excel", strict=True)
    header: list[str] | None = None
    records = 0
    while True:
        if not records and problems.count >= GIVE_UP_AFTER:
            problems.report(ReadProblem(Origin(display, line=lines.line_number), "no CSV row read; rest skipped"))
            return
        start_line = lines.line_number + 1
        lines.start_row()
        try:
            row = next(rows)
        except StopIteration:
            return
        except _RowTooLarge:
            problems.report(
                ReadProblem(Origin(display, line=start_line), f"row larger than {MAX_ROW_BYTES >> 20} MiB; skipped")
            )
            lines.skip_rest_of_row()
            continue
        except csv.Error as error:
            problems.report(ReadProblem(Origin(display, line=start_line), f"invalid CSV row: {error}; skipped"))
            lines.skip_rest_of_row()
            continue
        if not row or row == [""]:
            continue  # a blank line
        if header is None:
            header = [name.strip() for name in row]
            continue
        if len(row) != len(header):
            problems.report(
                ReadProblem(
                    Origin(display, line=start_line),
                    f"row has {len(row)} fields, the header {len(header)}; skipped",
                )
            )
            continue
        # A column without a name (a trailing comma in the header) has nowhere to go; a repeated name keeps
        # its last non-empty cell.
        data = {name: cell for name, cell in zip(header, row, strict=True) if cell and name}
        if data:
            records += 1
            yield RawRecord(data, "json", Origin(display, line=start_line))
