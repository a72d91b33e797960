"""The columnar path: rules decided by DuckDB over a whole NDJSON file of ECS documents, in parallel and in C++.

:func:`columnar_matches` compiles each rule to SQL (:mod:`shellwatch.engine.compile_sql`); a rule the SQL
compiler refuses is listed in :attr:`ColumnarMatches.fallback_rules` for the caller to run on the streaming path.
DuckDB reads the file line by line (``read_csv`` with a delimiter no JSON line holds, so each row is one line and
its row number is its line number), takes the fields the rules read out of each line with ``json_transform`` and
evaluates every rule; Python sees only

* the lines some rule matches: decoded and normalized exactly as the streaming path does
  (:func:`shellwatch.normalize.dispatch.normalize_with_family`), which gives the event handed on;
* the lines the SQL may not decide exactly (:meth:`shellwatch.engine.compile_sql.SqlFields.irregular_sql`: not
  JSON, not an ECS document kept whole, odd shapes): read, normalized and decided by the compiled Python predicates,
  as the streaming path would.

If DuckDB stops on the file (invalid UTF-8, a line over the size limit...), the rest of the file, from the line after
the last one handed on, is read by the streaming JSON reader and decided in Python: a file is never half-decided.

Memory: DuckDB runs with ``memory_limit`` and one thread per core and its results are fetched in batches; Python holds
one batch of candidate lines at a time, never the file.
"""

from __future__ import annotations

import io
import mmap
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import duckdb
import orjson

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.compile_sql import DOCUMENT, LINE, SqlFields, compile_sql, sql_string
from shellwatch.normalize.dispatch import ECS, ELASTIC_DEFEND, normalize_with_family, source_family
from shellwatch.query.errors import UnsupportedQuery
from shellwatch.rules.model import Rule
from shellwatch.sources.json_records import MAX_RECORD_BYTES, read_json
from shellwatch.sources.record import Origin, RawRecord, ReadProblem

Match = tuple[int, int, dict[str, Any]]
"""(rule index, 1-based line number, the flat ECS event the streaming path makes of that line)."""

SAMPLE_LINES: Final = 200
"""Lines :func:`columnar_supported` reads to decide whether a file is for the columnar path."""
FETCH_ROWS: Final = 2048
DEFAULT_MEMORY_LIMIT: Final = "512MB"
DUCKDB_LINE_BYTES: Final = 4 << 20
"""Longest line DuckDB reads (its CSV buffers are a multiple of it); a longer one stops DuckDB and the rest of the
file goes to the streaming reader, whose own limit is :data:`MAX_RECORD_BYTES`."""

_PASSED_THROUGH: Final = frozenset({ELASTIC_DEFEND, ECS})
# Bytes that would make DuckDB's line splitting differ from Python's readline (\r ends a row there; the
# delimiter byte splits one), or that no JSON line holds.
_UNSPLITTABLE: Final = (b"\r", b"\x01", b"\x00")


def columnar_supported(path: str) -> bool:
    """Whether ``path`` is an NDJSON file of ECS documents the streaming path keeps whole (Elastic Defend or other
    ECS documents, not Windows event log documents nor vendor exports), judged from its first lines, and whose
    lines DuckDB splits as Python does (no carriage return anywhere)."""
    try:
        with open(path, "rb") as handle:
            families = set()
            for _, line in zip(range(SAMPLE_LINES), handle, strict=False):
                text = line.strip()
                if not text:
                    continue
                document = orjson.loads(text)
                if not isinstance(document, dict):
                    return False
                families.add(source_family(RawRecord(document, "json", Origin(path))))
            if not families or not families <= _PASSED_THROUGH:
                return False
            return not _holds_unsplittable(handle)
    except (OSError, ValueError):
        return False


def _holds_unsplittable(handle: io.BufferedReader) -> bool:
    if os.fstat(handle.fileno()).st_size == 0:
        return False
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        return any(view.find(byte) >= 0 for byte in _UNSPLITTABLE)


class ColumnarMatches:
    """The matches of ``rules`` over one NDJSON file, in file order then rule order (iterate once).

    ``fallback_rules`` (rule index -> reason) is known on construction: those rules are not decided here.
    """

    def __init__(
        self,
        path: str,
        rules: Sequence[Rule],
        *,
        on_problem: Callable[[ReadProblem], None] | None = None,
        threads: int | None = None,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.path = path
        self.on_problem = on_problem if on_problem is not None else (lambda problem: None)
        self.threads = threads or os.cpu_count() or 1
        self.memory_limit = memory_limit
        self.fields = SqlFields()
        self.columnar: list[tuple[int, str]] = []
        self.fallback_rules: dict[int, str] = {}
        for index, rule in enumerate(rules):
            try:
                self.columnar.append((index, compile_sql(rule.ir, self.fields)))
            except UnsupportedQuery as exc:
                self.fallback_rules[index] = str(exc)
        self._predicates = [(index, compile_predicate(rules[index].ir)) for index, _ in self.columnar]
        self.stats = {"candidate_lines": 0, "python_lines": 0}

    def query(self) -> str:
        """The SQL run over the file (rule literals quoted; the file path is the only other literal)."""
        lines = (
            f"read_csv({sql_string(self.path)}, columns={{'{LINE}': 'VARCHAR'}}, delim='\\x01', quote='', "
            f"escape='', header=false, auto_detect=false, strict_mode=false, "
            f"max_line_size={DUCKDB_LINE_BYTES}, buffer_size={4 * DUCKDB_LINE_BYTES})"
        )
        schema = sql_string(self.fields.schema_json())
        irregular = self.fields.irregular_sql()
        outcomes = ", ".join(f"({sql}) AS r{n}" for n, (_, sql) in enumerate(self.columnar))
        names = [f"r{n}" for n in range(len(self.columnar))]
        wanted = " OR ".join(["irregular", *names])
        return (
            f"SELECT rn, {LINE}, irregular{''.join(', ' + name for name in names)} "
            f"FROM (SELECT rn, {LINE}, {irregular} AS irregular{', ' + outcomes if outcomes else ''} FROM ("
            f"SELECT row_number() OVER () AS rn, {LINE}, "
            f"CASE WHEN json_valid({LINE}) AND json_type({LINE}) = 'OBJECT' THEN json_transform({LINE}, {schema}) END "
            f"AS {DOCUMENT} FROM {lines})) WHERE {wanted}"
        )

    def __iter__(self) -> Iterator[Match]:
        if not self.columnar:
            return
        connection = duckdb.connect(
            ":memory:",
            config={
                "threads": self.threads,
                "memory_limit": self.memory_limit,
                "preserve_insertion_order": True,
            },
        )
        last_line = 0
        try:
            connection.execute("SET enable_progress_bar = false")
            result = connection.execute(self.query())
            while True:
                rows = result.fetchmany(FETCH_ROWS)
                if not rows:
                    return
                for row in rows:
                    line_number, text, irregular = row[0], row[1], row[2]
                    self.stats["candidate_lines"] += 1
                    if irregular:
                        yield from self._decide_in_python(text, line_number)
                    else:
                        yield from self._matched(row, text, line_number)
                    last_line = line_number
        except duckdb.Error as exc:
            self.on_problem(
                ReadProblem(
                    Origin(self.path, line=last_line + 1),
                    f"columnar reading stopped ({type(exc).__name__}); rest decided on the streaming path",
                )
            )
            yield from self._rest_in_python(last_line)
        finally:
            connection.close()

    # -- Python decisions -----------------------------------------------------------------------------------

    def _matched(self, row: tuple[Any, ...], text: str, line_number: int) -> Iterator[Match]:
        hits = [index for n, (index, _) in enumerate(self.columnar) if row[3 + n]]
        if not hits:
            return
        record = RawRecord(orjson.loads(text), "json", Origin(self.path, line=line_number))
        _, event = normalize_with_family(record)
        for index in hits:
            yield index, line_number, event

    def _decide_in_python(self, text: str | None, line_number: int) -> Iterator[Match]:
        if text is None:
            return
        self.stats["python_lines"] += 1
        yield from self._decide_records(
            read_json(io.BytesIO(text.encode()), self.path, self._shifted(line_number)), line_number
        )

    def _shifted(self, line_number: int) -> Callable[[ReadProblem], None]:
        def report(problem: ReadProblem) -> None:
            self.on_problem(ReadProblem(Origin(self.path, line=line_number), problem.reason))

        return report

    def _decide_records(self, records: Iterator[RawRecord], line_number: int | None) -> Iterator[Match]:
        for record in records:
            if line_number is not None:
                record.origin.line = line_number
            _, event = normalize_with_family(record)
            for index, predicate in self._predicates:
                if predicate(event):
                    yield index, record.origin.line or 0, event

    def _rest_in_python(self, last_line: int) -> Iterator[Match]:
        with open(self.path, "rb") as handle:
            for _ in range(last_line):
                if not handle.readline(MAX_RECORD_BYTES + 1):
                    return
            shifted = _LineOffset(self.on_problem, last_line)
            records = read_json(handle, self.path, shifted.report)
            for record in records:
                record.origin.line = (record.origin.line or 0) + last_line
                self.stats["python_lines"] += 1
                yield from self._decide_records(iter((record,)), None)


class _LineOffset:
    """Passes problems on with their line numbers moved past the lines DuckDB already decided."""

    def __init__(self, sink: Callable[[ReadProblem], None], offset: int) -> None:
        self.sink = sink
        self.offset = offset

    def report(self, problem: ReadProblem) -> None:
        line = problem.origin.line
        self.sink(
            ReadProblem(Origin(problem.origin.path, line=None if line is None else line + self.offset), problem.reason)
        )


def columnar_matches(
    path: str, rules: Sequence[Rule], *, on_problem: Callable[[ReadProblem], None] | None = None
) -> ColumnarMatches:
    """The matches of ``rules`` over the NDJSON file ``path`` (see :class:`ColumnarMatches`): iterate it for
    ``(rule index, line, event)`` in file order then rule order; its ``fallback_rules`` are left to the caller."""
    return ColumnarMatches(path, rules, on_problem=on_problem)


def event_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """The flat event the streaming path makes of one decoded document (for tests and callers comparing paths)."""
    return normalize_with_family(RawRecord(dict(document), "json", Origin("-")))[1]
