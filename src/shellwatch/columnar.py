"""The columnar path: rules decided by DuckDB over a whole NDJSON file of ECS documents, in parallel and in C++.

:func:`hunt` is :func:`shellwatch.pipeline.hunt` on this path where it applies (the same alerts, in the same
order). :func:`columnar_matches` compiles each rule to SQL (:mod:`shellwatch.engine.compile_sql`); a rule the SQL
compiler refuses is listed in :attr:`ColumnarMatches.fallback_rules` for the caller to run on the streaming path.
DuckDB reads the file line by line (``read_csv`` with a delimiter no JSON line holds, so each row is one line) and
hands back one small row per line, in file order, so a row's place is its line number. Every line is checked as
JSON and searched once for the texts a match needs (:func:`~shellwatch.engine.compile_sql.line_candidate_sql`);
only candidates are read with ``json_transform`` and decided by the rules. Python sees the text only of

* the lines some rule matches: decoded and normalized exactly as the streaming path does
  (:func:`shellwatch.normalize.dispatch.normalize_with_family`), which gives the event handed on;
* the lines the SQL may not decide exactly (:meth:`shellwatch.engine.compile_sql.SqlFields.irregular_sql`: odd
  shapes, \\u escapes, other families): read, normalized and decided by the compiled Python predicates.

From a line that is not one whole JSON value (the streaming reader would read past it), a record of a family whose
normalizer remembers earlier records, or the point where DuckDB stops (invalid UTF-8, a line over the size limit),
the rest of the file is read by the streaming JSON reader and decided in Python: a file is never half-decided.

Memory: DuckDB runs with ``memory_limit`` and one thread per core; its result is streamed and fetched in batches,
and a line's row holds its text only when Python is to read it.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import orjson

from shellwatch import pipeline
from shellwatch.alerts.document import build_alert, rule_fields
from shellwatch.alerts.held import HeldAlerts
from shellwatch.document_triage import PASS_THROUGH_SOURCES
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.compile_sql import (
    DOCUMENT,
    LINE,
    SqlFields,
    compile_sql,
    json_text,
    line_candidate_sql,
    sql_string,
)
from shellwatch.engine.literals import Piece, Requirement, ascii_lower, requirement
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import DEFAULT_PROCESS_MEMORY, SourceContext
from shellwatch.normalize.dispatch import ECS, normalize_with_family, source_family
from shellwatch.pipeline import ExceptionSpec, HuntStats
from shellwatch.query.errors import UnsupportedQuery
from shellwatch.rules.model import Rule
from shellwatch.sources.json_records import MAX_RECORD_BYTES, read_json
from shellwatch.sources.record import Origin, RawRecord, ReadProblem

Match = tuple[int, int, dict[str, Any]]
"""(rule index, 1-based line number, the flat ECS event the streaming path makes of that line)."""

SAMPLE_LINES: Final = 200
"""Lines :func:`columnar_supported` reads to decide whether a file is for the columnar path."""
FETCH_ROWS: Final = 2048
COLUMNAR_MIN_BYTES: Final = 8 << 20
"""Files smaller than this stay on the streaming path in :func:`hunt` (DuckDB's start and the SQL's compilation
take about a tenth of a second, what the streaming path needs for a few MB)."""
DEFAULT_MEMORY_LIMIT: Final = "100MB"
"""DuckDB's ``memory_limit``. With it the whole process peaks at about 235 MB on Elastic Defend NDJSON of 256 MiB
and of 1 GiB alike (38,000 documents/s on 2 cores); 48 MB keeps it near 120 MB but runs four times slower."""

_SCAN_BLOCK: Final = 1 << 20
DUCKDB_LINE_BYTES: Final = 4 << 20
"""Longest line DuckDB reads (its CSV buffers are a multiple of it); a longer one stops DuckDB and the rest of the
file goes to the streaming reader, whose own limit is :data:`MAX_RECORD_BYTES`."""

_RAW: Final = "raw_line"
"""The SQL name of a line as read, before the candidate test keeps or drops its text."""
_NO_JOINS: Final = "in_clause"
"""The DuckDB optimizer that would turn a long ``IN`` list into a join. DuckDB keeps rows in their input order
through scans, projections and filters, not through joins (https://duckdb.org/docs/stable/sql/dialect/
order_preservation), and a row's place in the result is its line number; the join saves nothing measurable here."""
# Bytes that would make DuckDB's line splitting differ from Python's readline (\r ends a row there; the
# delimiter byte splits one), or that no JSON line holds.
_UNSPLITTABLE: Final = (b"\r", b"\x01", b"\x00")


def columnar_supported(path: str, min_bytes: int = 0) -> bool:
    """Whether ``path`` is an NDJSON file of ECS documents the streaming path keeps whole (Elastic Defend or other
    ECS documents, not Windows event log documents nor vendor exports), judged from its first lines, whose lines
    DuckDB splits as Python does (no carriage return anywhere), and of at least ``min_bytes``
    (:data:`COLUMNAR_MIN_BYTES`: below it, starting DuckDB costs more than the streaming path spends)."""
    try:
        if os.path.getsize(path) < min_bytes:
            return False
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
            if not families or not families <= PASS_THROUGH_SOURCES:
                return False
            return not _holds_unsplittable(handle)
    except (OSError, ValueError):
        return False


def _sample_family(path: str) -> str:
    families: Counter[str] = Counter()
    try:
        with open(path, "rb") as handle:
            for _, line in zip(range(SAMPLE_LINES), handle, strict=False):
                try:
                    document = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(document, dict):
                    families[source_family(RawRecord(document, "json", Origin(path)))] += 1
    except OSError:
        pass
    return families.most_common(1)[0][0] if families else ECS


def _searchable(field: str) -> bool:
    # The normalizer rewrites @timestamp; every other field of an ECS document keeps its text (a completed
    # process name is the end of the executable's).
    return field != "@timestamp"


def _searched_groups(path: str, requirements: Sequence[Requirement | None]) -> list[frozenset[Piece] | None]:
    """For each rule, the group of its requirement the fewest of the file's first lines meet (the one likely to
    rule out most lines: ``process`` in ``event.category`` is in every process event, a web server's name is
    not), or None when it requires nothing. Any group is sound; the sample only decides speed."""
    if all(found is None or len(found.groups) < 2 for found in requirements):
        return [None if found is None else found.groups[0] for found in requirements]
    sample: list[str] = []
    try:
        with open(path, "rb") as handle:
            for _, line in zip(range(SAMPLE_LINES), handle, strict=False):
                sample.append(ascii_lower(line.decode("utf-8", "replace")))
    except OSError:
        pass

    def lines_meeting(group: frozenset[Piece]) -> int:
        texts = [json_text(piece.text) for piece in group]
        return sum(1 for line in sample if any(text in line for text in texts))

    return [None if found is None else min(found.groups, key=lines_meeting) for found in requirements]


def _holds_unsplittable(handle: io.BufferedReader) -> bool:
    # Read in blocks, not through a memory map: a mapped file's pages count in the process's resident memory,
    # which must not grow with the input.
    handle.seek(0)
    while block := handle.read(_SCAN_BLOCK):
        if any(byte in block for byte in _UNSPLITTABLE):
            return True
    return False


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
        self._groups = _searched_groups(path, [requirement(rules[index].ir, _searchable) for index, _ in self.columnar])
        self.stats = {"candidate_lines": 0, "python_lines": 0, "streamed_from_line": 0}
        self.records = 0
        """JSON records read (known once iterated): what the streaming reader would count."""
        self.family = _sample_family(path)
        """The source family (:data:`~shellwatch.normalize.dispatch.SOURCES`) of most of the file's first lines,
        which the records are counted under."""
        self._python_records = 0

    def query(self) -> str:
        """The SQL run over the file (rule literals quoted; the file path is the only other literal).

        One row per line of the file, in file order: ``(empty, line, hits)``. ``empty``: the line is empty (DuckDB
        reads it as NULL). ``line`` and ``hits`` are NULL but on a line Python must see: one some rule matches
        (``hits`` lists the positions in :attr:`columnar` of the rules that match), or one the SQL may not decide
        (``hits`` holds -1). Every line is checked as JSON (``json_valid``) and searched once for the texts a match
        needs (:func:`~shellwatch.engine.compile_sql.line_candidate_sql`); only a candidate or invalid line is read
        with ``json_transform`` and decided by the rules (a ``CASE`` evaluates its branch only for the rows it
        selects).

        Why every line comes out: a line's number is its place in the result, which keeps the file's order
        (``preserve_insertion_order``) while the costly steps run in parallel. Numbering the lines in SQL instead
        (``row_number() OVER ()``) makes DuckDB read and search the whole file in one thread.
        """
        lines = (
            f"read_csv({sql_string(self.path)}, columns={{'{_RAW}': 'VARCHAR'}}, delim='\\x01', quote='', "
            f"escape='', header=false, auto_detect=false, strict_mode=false, "
            f"max_line_size={DUCKDB_LINE_BYTES}, buffer_size={4 * DUCKDB_LINE_BYTES})"
        )
        schema = sql_string(self.fields.schema_json())
        candidate = line_candidate_sql(self._groups, _RAW)
        checked = f"SELECT {_RAW}, {_RAW} IS NULL AS empty, NOT json_valid({_RAW}) AS invalid FROM {lines}"
        searched = f"SELECT empty, invalid, CASE WHEN invalid OR {candidate} THEN {_RAW} END AS {LINE} FROM ({checked})"
        documents = (
            f"SELECT empty, invalid, {LINE}, CASE WHEN {LINE} IS NOT NULL AND NOT invalid "
            f"THEN json_transform({LINE}, {schema}) END AS {DOCUMENT} FROM ({searched})"
        )
        outcomes = [f"CASE WHEN invalid OR {self.fields.irregular_sql()} THEN -1 END"]
        outcomes += [f"CASE WHEN {sql} THEN {n} END" for n, (_, sql) in enumerate(self.columnar)]
        hit_list = f"list_filter([{', '.join(outcomes)}], hit -> hit IS NOT NULL)"
        decided = f"SELECT empty, {LINE}, CASE WHEN {LINE} IS NOT NULL THEN {hit_list} END AS hits FROM ({documents})"
        return (
            f"SELECT empty, CASE WHEN len(hits) > 0 THEN {LINE} END AS {LINE}, "
            f"CASE WHEN len(hits) > 0 THEN hits END AS hits FROM ({decided})"
        )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection set up to run :meth:`query` (the caller closes it)."""
        connection = duckdb.connect(
            ":memory:",
            config={
                "threads": self.threads,
                "memory_limit": self.memory_limit,
                "preserve_insertion_order": True,
            },
        )
        connection.execute("SET enable_progress_bar = false")
        connection.execute(f"SET disabled_optimizers = '{_NO_JOINS}'")
        return connection

    def __iter__(self) -> Iterator[Match]:
        if not self.columnar:
            return
        connection = self.connect()
        line_number = lines_filled = 0
        try:
            # A relation's rows are fetched as DuckDB makes them (a streamed result): what is held does not grow
            # with the file.
            result = connection.sql(self.query())
            while rows := result.fetchmany(FETCH_ROWS):
                for empty, text, hits in rows:
                    line_number += 1
                    if empty:
                        continue
                    lines_filled += 1
                    if text is None:
                        continue
                    self.stats["candidate_lines"] += 1
                    if hits[0] != -1:
                        yield from self._matched(hits, text, line_number)
                        continue
                    decided = self._decide_in_python(text, line_number)
                    if decided is None:
                        # Not a whole JSON document, or one the normalizer maps with what it remembers: from
                        # here on the file is the streaming reader's, as it would read it.
                        yield from self._rest_in_python(line_number - 1)
                        return
                    yield from decided
        except duckdb.Error as exc:
            self.on_problem(
                ReadProblem(
                    Origin(self.path, line=line_number + 1),
                    f"columnar reading stopped ({type(exc).__name__}); rest decided on the streaming path",
                )
            )
            yield from self._rest_in_python(line_number)
            return
        finally:
            connection.close()
        self.records = lines_filled - self.stats["python_lines"] + self._python_records

    # -- Python decisions -----------------------------------------------------------------------------------

    def _matched(self, hits: list[int], text: str, line_number: int) -> Iterator[Match]:
        record = RawRecord(orjson.loads(text), "json", Origin(self.path, line=line_number))
        _, event = normalize_with_family(record)
        for position in hits:
            yield self.columnar[position][0], line_number, event

    def _decide_in_python(self, text: str, line_number: int) -> list[Match] | None:
        """The matches of one line the SQL may not decide, as the streaming reader and normalizer decide them;
        None when the streaming reader would read past the line (it is not one whole JSON value) or when the
        normalizer of one of its records remembers records (another family than ECS documents)."""
        data = text.encode()
        if not data.strip():
            self.stats["python_lines"] += 1
            return []
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        problems: list[ReadProblem] = []
        records = list(read_json(io.BytesIO(data), self.path, problems.append))
        found: list[Match] = []
        for record in records:
            record.origin.line = line_number
            family, event = normalize_with_family(record)
            if family not in PASS_THROUGH_SOURCES:
                return None
            found.extend((index, line_number, event) for index, predicate in self._predicates if predicate(event))
        for problem in problems:
            self.on_problem(ReadProblem(Origin(self.path, line=line_number), problem.reason))
        self.stats["python_lines"] += 1
        self._python_records += len(records)
        return found

    def _rest_in_python(self, last_line: int) -> Iterator[Match]:
        self.stats["streamed_from_line"] = last_line + 1
        # Records before the line: the lines not empty, those decided in Python counted by their records.
        self.records = self._python_records
        decided_in_python = self.stats["python_lines"]
        with open(self.path, "rb") as handle:
            for _ in range(last_line):
                line = handle.readline(MAX_RECORD_BYTES + 1)
                if not line:
                    return
                self.records += line != b"\n"  # as DuckDB counts: an empty line is NULL
            self.records -= decided_in_python
            shifted = _LineOffset(self.on_problem, last_line)
            context = SourceContext()
            for record in read_json(handle, self.path, shifted.report):
                record.origin.line = (record.origin.line or 0) + last_line
                self.records += 1
                _, event = normalize_with_family(record, context=context)
                for index, predicate in self._predicates:
                    if predicate(event):
                        yield index, record.origin.line, event


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


def hunt(
    paths: Sequence[str],
    rules: RuleSet,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    stats: HuntStats | None = None,
    on_problem: Callable[[ReadProblem], None] | None = None,
    on_progress: Callable[[HuntStats], None] | None = None,
    workers: int | None = None,
    source: str | None = None,
    process_memory: int = DEFAULT_PROCESS_MEMORY,
    exceptions: ExceptionSpec | None = None,
    per_match: bool = False,
) -> Iterator[dict[str, Any]]:
    """:func:`shellwatch.pipeline.hunt` (same arguments, same alerts in the same order), on the columnar path
    when every path is a file :func:`columnar_supported` admits, every rule compiles to SQL, and nothing asks
    for what only the streaming path does (a time window, a forced source, exception lists); otherwise the
    streaming path's ``hunt`` does all of it."""
    streaming = (
        start is not None
        or end is not None
        or source is not None
        or exceptions is not None
        or not paths
        or not all(os.path.isfile(path) and columnar_supported(path, COLUMNAR_MIN_BYTES) for path in paths)
    )
    matches = [] if streaming else [ColumnarMatches(path, rules.rules, on_problem=None) for path in paths]
    if streaming or any(found.fallback_rules for found in matches):
        yield from pipeline.hunt(
            paths,
            rules,
            start=start,
            end=end,
            stats=stats,
            on_problem=on_problem,
            on_progress=on_progress,
            workers=workers,
            source=source,
            process_memory=process_memory,
            exceptions=exceptions,
            per_match=per_match,
        )
        return
    stats = stats if stats is not None else HuntStats()
    began = time.perf_counter()
    detected_at = datetime.now(UTC)
    held = HeldAlerts([] if per_match else list(rules.rules), detected_at)
    fields_by_rule = [rule_fields(rule) for rule in rules.rules]
    made: set[str] = set()

    def problem(found: ReadProblem) -> None:
        stats.problems.append(found)
        if on_problem is not None:
            on_problem(found)

    stats.inputs = len(paths)
    stats.input_bytes = sum(os.path.getsize(path) for path in paths)
    for path, found in zip(paths, matches, strict=True):
        found.on_problem = problem
        for index, line, event in found:
            rule = rules.rules[index]
            alert = build_alert(
                rule,
                event,
                origin=Origin(path, line=line),
                detected_at=detected_at,
                rule_fields_cache=fields_by_rule[index],
            )
            if alert["kibana.alert.uuid"] in made:
                stats.duplicates += 1
                continue
            made.add(alert["kibana.alert.uuid"])
            if held and held.applies(index):
                held.hold(index, alert)
                continue
            stats.alerts += 1
            stats.alerts_by_rule[(rule.name, rule.severity)] += 1
            yield alert
        stats.records += found.records
        stats.events_in_window += found.records
        stats.by_source[found.family] += found.records
        stats.inputs_done += 1
        stats.bytes_done += os.path.getsize(path)
        stats.seconds = time.perf_counter() - began
        if on_progress is not None:
            on_progress(stats)
    yield from pipeline.release_held(held, rules.rules, stats)
    stats.seconds = time.perf_counter() - began


def event_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """The flat event the streaming path makes of one decoded document (for tests and callers comparing paths)."""
    return normalize_with_family(RawRecord(dict(document), "json", Origin("-")))[1]
