"""The hunt data flow: paths in, alerts out, with the counts a responder reads at the end.

Readers (sources/) yield raw records, normalizers (normalize/) turn them into flat ECS events, the rule set
(engine/) says which rules match, and each match becomes a Kibana-shaped alert (alerts/). Nothing here knows about
formats or terminals: problems go to a callback, alerts to the caller, counts into :class:`HuntStats`.

Inputs are scanned one at a time by an :class:`InputScanner`, in this process or spread over worker processes
(:mod:`shellwatch.parallel`); either way the parent sees each input's alerts, problems and counts in input order,
then record order, and makes alert ids unique, so the output is the same whatever the number of workers.

Most events cannot match: a scanner decides the rules once per class of raw Windows event (provider, channel, event
id; :mod:`shellwatch.prefilter`) and counts the events of classes no rule can match without normalizing them. The
others are normalized for the fields the rules read (:mod:`shellwatch.normalize.demand`), and in full only when a
rule matched, for the alert.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from shellwatch.alerts.document import alert_uuid, build_alert, event_identity, rule_fields
from shellwatch.alerts.exceptions import ExceptionLists
from shellwatch.alerts.held import HeldAlerts
from shellwatch.document_triage import PASS_THROUGH_SOURCES, DocumentTriage
from shellwatch.engine.ruleset import INDEX_FROM_RULES, RuleSet
from shellwatch.normalize.context import DEFAULT_PROCESS_MEMORY, SourceContext
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.dispatch import (
    UNKNOWN,
    WINDOWS_FAMILIES,
    normalize_with_family,
    source_family,
)
from shellwatch.normalize.event_class import windows_event_class
from shellwatch.parallel import Piece, available_cores, scan_in_order, worker_count
from shellwatch.prefilter import ClassPrefilter
from shellwatch.query.ir import (
    And,
    Cidr,
    Compare,
    Const,
    Equals,
    Exists,
    Node,
    Not,
    Or,
    Predicate,
    Regex,
    Wildcard,
    fields_of,
)
from shellwatch.rules.model import Rule
from shellwatch.sources.inputs import STDIN
from shellwatch.sources.reader import Input, list_inputs, read_input, split_json_lines
from shellwatch.sources.record import Origin, RawRecord, ReadProblem
from shellwatch.triage import RecordTriage

PROGRESS_RECORDS = 4096
"""An input's counts are reported (and ``on_progress`` called) every this many of its records."""


@dataclass(slots=True)
class HuntStats:
    """What a hunt read and found."""

    inputs: int = 0
    """Files (and stdin) named by the paths."""
    input_bytes: int = 0
    inputs_done: int = 0
    bytes_done: int = 0
    records: int = 0
    events_in_window: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    """Records by source (:data:`~shellwatch.normalize.dispatch.SOURCES`, or ``unknown``)."""
    unrecognized_at: list[str] = field(default_factory=list)
    """Where records of no known source were found (the first of each stretch of counts, ten at most)."""
    alerts: int = 0
    duplicates: int = 0
    """Matches skipped because an alert with the same id was already made (the same event read twice)."""
    alerts_by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(rule name, severity) -> alerts."""
    excluded_by_rule: Counter[str] = field(default_factory=Counter)
    """Rule name -> matches its exception lists silenced."""
    suppressed_by_rule: Counter[str] = field(default_factory=Counter)
    """Rule name -> matches folded into another match's alert by the rule's alert suppression."""
    aggregated_by_rule: Counter[str] = field(default_factory=Counter)
    """Rule name -> matches of a new_terms or threshold rule that made no alert of their own (not new; counted
    into a threshold bucket)."""
    problems: list[ReadProblem] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    """Processes that scanned the inputs (1: this one)."""

    @property
    def records_per_second(self) -> float:
        """Records read per second of wall time."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def problem_reasons(self) -> Counter[str]:
        """Skipped parts of the input, counted by reason (without the position)."""
        return Counter(p.reason for p in self.problems)


def parse_time(text: str) -> datetime:
    """A --from/--to bound: ISO 8601 date or date-time; naive values are taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-03-14T09:00:00Z)") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    value = event.get("@timestamp")
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------------------------
# What a scanner reports about one input, in order (small, picklable: workers send them to the parent).


class ScanCounts(NamedTuple):
    """Records scanned since the input's previous counts, or those of a run of inputs a worker folded together
    (:func:`_fold_counts`). A named tuple: tuples travel between processes faster than dataclasses."""

    records: int
    in_window: int
    by_source: dict[str, int]
    unrecognized_at: str | None = None
    """Where the first record of no known source in these records is, if there is one."""
    excluded: dict[int, int] | None = None
    """Matches an exception list silenced, by rule position."""
    duplicates: int = 0
    """Matches whose alert this process had already made (the same event read twice): not built again."""


@dataclass(frozen=True, slots=True)
class MatchedAlert:
    """An alert, and the index of its rule in the rule set."""

    rule_index: int
    alert: dict[str, Any]


ScanResult = ScanCounts | MatchedAlert | ReadProblem


@dataclass(frozen=True, slots=True)
class ExceptionSpec:
    """Which exception lists a hunt applies (:mod:`shellwatch.alerts.exceptions`): what loads them, so that every
    scanner, in this process or a worker, loads the same lists."""

    paths: tuple[str, ...]
    value_lists: tuple[tuple[str, str], ...] = ()
    """(value list id, file)."""
    attach: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(rule id, rule name or ``*``, list ids applied to it besides those the rule references)."""

    def load(self) -> ExceptionLists:
        """The lists; raises :class:`~shellwatch.alerts.exceptions.ExceptionListError` naming every bad line.
        Read once per process: the command line checks them before the hunt, and the scanner of the same process
        applies them."""
        return _load_exceptions(self)


@functools.lru_cache(maxsize=8)
def _load_exceptions(spec: ExceptionSpec) -> ExceptionLists:
    return ExceptionLists.load(
        list(spec.paths),
        {list_id: Path(path) for list_id, path in spec.value_lists},
        attach={rule: list(lists) for rule, lists in spec.attach},
    )


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """What every scanner of one hunt shares besides the rules."""

    start: datetime | None
    end: datetime | None
    detected_at: datetime
    """The alerts' detection time: one for the whole hunt, whichever process builds the alert."""
    source: str | None = None
    """A source name (:data:`~shellwatch.normalize.dispatch.SOURCES`) to read every record as; None recognizes
    each record's source."""
    process_memory: int = DEFAULT_PROCESS_MEMORY
    """Entries a normalizer may remember per input (:class:`~shellwatch.normalize.context.SourceContext`)."""
    exceptions: ExceptionSpec | None = None
    """Exception lists: a match an item of its rule's lists describes raises no alert, as in Kibana."""


class _Tally:
    """An input's counts since its last :class:`ScanCounts`."""

    __slots__ = ("by_source", "duplicates", "excluded", "in_window", "records", "unrecognized_at")

    def __init__(self) -> None:
        self.records = 0
        self.in_window = 0
        self.by_source: dict[str, int] = {}
        self.unrecognized_at: str | None = None
        self.excluded: dict[int, int] = {}
        self.duplicates = 0

    def count_class_skipped(self, family: str) -> None:
        """A record of a class no rule can match: read and in the window (the prefilter runs only without one)."""
        self.records += 1
        self.in_window += 1
        self.by_source[family] = self.by_source.get(family, 0) + 1

    def absorb(self, ruled_out_by_family: dict[str, int]) -> None:
        """Count (and empty) the records a triage took out of the reading: read and in the window, like skipped
        ones."""
        for family, count in ruled_out_by_family.items():
            self.records += count
            self.in_window += count
            self.by_source[family] = self.by_source.get(family, 0) + count
        ruled_out_by_family.clear()

    def take(self) -> ScanCounts:
        """The counts so far, and a fresh start."""
        counts = ScanCounts(
            self.records, self.in_window, self.by_source, self.unrecognized_at, self.excluded or None, self.duplicates
        )
        self.records = self.in_window = self.duplicates = 0
        self.by_source = {}
        self.unrecognized_at = None
        self.excluded = {}
        return counts


class InputScanner:
    """Reads, normalizes and matches one input at a time: the per-record work of a hunt, in one process."""

    def __init__(self, rules: RuleSet, settings: ScanSettings) -> None:
        self.rules = rules
        self.settings = settings
        self._fields_by_rule = [rule_fields(compiled.rule) for compiled in rules.compiled]
        self._rule_index = {id(compiled.rule): index for index, compiled in enumerate(rules.compiled)}
        # With a time window every event needs its @timestamp, i.e. normalizing: no class may be skipped.
        windowed = settings.start is not None or settings.end is not None
        self._prefilter = None if windowed else ClassPrefilter(rules)
        self._triage = None if self._prefilter is None else RecordTriage(rules, self._prefilter)
        # Built at the first JSON document (an EVTX hunt never needs it, and for thousands of rules it costs).
        self._documents: DocumentTriage | None = None
        self._documents_wanted = not windowed
        self._made: dict[str, int] = {}
        """Alert id -> the position of the input this process made the alert in (see :meth:`_alerts`)."""
        self._demand = _field_demand(rules, windowed)
        exceptions = settings.exceptions.load() if settings.exceptions is not None else None
        self._exceptions = None if exceptions is None else tuple(exceptions.for_rule(rule) for rule in rules.rules)

    def scan(self, item: Input, position: int = 0) -> Iterator[ScanResult]:
        """The alerts, problems and record counts of one input, in record order; ``position``: the input's place
        in the hunt's order (see :meth:`_alerts`)."""
        problems: list[ReadProblem] = []
        tally = _Tally()
        source = self.settings.source
        class_candidates = self._prefilter.candidates if self._prefilter is not None else None
        if source is not None and source not in WINDOWS_FAMILIES:
            class_candidates = None  # read as another source, a Windows event is not one of its classes
        start, end = self.settings.start, self.settings.end
        windowed = start is not None or end is not None
        matching, matching_among = self.rules.matching, self.rules.matching_among
        demand = self._demand
        context = SourceContext(process_memory=self.settings.process_memory)
        # EVTX records no rule can match, as their text shows, are counted by the triage and never decoded.
        triage = self._triage if class_candidates is not None else None
        ruled_out: dict[str, int] = {} if triage is None else triage.ruled_out_by_family
        ruled_out.clear()
        claim = None if triage is None else triage.claim
        # JSON documents no rule can match, as the fields the rules need show, are counted without being normalized.
        triage_documents = self._documents_wanted and source is None
        for record in read_input(item, problems.append, claim=claim):
            if problems:
                yield from problems
                problems.clear()
            if tally.records + sum(ruled_out.values()) >= PROGRESS_RECORDS:
                tally.absorb(ruled_out)
                yield tally.take()
            if record.shape == "claimed":
                continue  # a marker among claimed records: only there for the progress report above
            candidates = None
            if class_candidates is not None and record.shape == "windows_event":
                try:
                    event_class = windows_event_class(record.data)
                except Exception:  # left to the normalizer, which reports it in the event
                    event_class = None
                if event_class is not None:
                    candidates = class_candidates(event_class)
                    if not candidates:
                        tally.count_class_skipped(event_class.family)
                        continue
            tally.records += 1
            if triage_documents and record.shape == "json":
                documents = self._document_triage()
                if documents is None:
                    triage_documents = False
                else:
                    family = source_family(record)
                    if family in PASS_THROUGH_SOURCES and not documents.may_match(record.data):
                        tally.by_source[family] = tally.by_source.get(family, 0) + 1
                        tally.in_window += 1
                        continue
            family, event = normalize_with_family(record, demand, context=context, source=source)
            by_source = tally.by_source
            by_source[family] = by_source.get(family, 0) + 1
            if family == UNKNOWN and tally.unrecognized_at is None:
                tally.unrecognized_at = str(record.origin)
            if windowed:
                moment = _event_time(event)
                if moment is not None and (
                    (start is not None and moment < start) or (end is not None and moment >= end)
                ):
                    continue
            tally.in_window += 1
            # Only the rules its class leaves can match a Windows event.
            matched = matching(event) if candidates is None else matching_among(event, candidates)
            if matched:
                if demand is not None:
                    # Matched on the demanded fields: the alert shows the whole event.
                    event = normalize_with_family(record, context=context, source=source)[1]
                yield from self._alerts(matched, event, record.origin, tally, position)
        yield from problems
        tally.absorb(ruled_out)
        if tally.records or tally.excluded or tally.duplicates:
            yield tally.take()

    def _document_triage(self) -> DocumentTriage | None:
        """The triage of JSON documents, built at the first call; None when it is off (a time window, which needs
        every event's time, or a rule that reads the whole event) or finds nothing to rule out with (a rule that
        needs no text)."""
        if self._documents is None and self._documents_wanted:
            demand = self._demand
            # The triage reads a document as the full path does, for fewer fields: when the full path reads
            # every field (a keyword rule), it may fail where the triage would not, and make the event unreadable.
            if demand is not None:
                self._documents = DocumentTriage.for_rules(self.rules.rules, always=demand.fields & {"@timestamp"})
            self._documents_wanted = self._documents is not None
        return self._documents

    def _alerts(
        self, matched: list[Rule], event: dict[str, Any], origin: Origin, tally: _Tally, position: int
    ) -> Iterator[MatchedAlert]:
        exceptions = self._exceptions
        made = self._made
        identity = None
        for rule in matched:
            index = self._rule_index[id(rule)]
            if exceptions is not None and exceptions[index].excludes(event):
                # As in Kibana, an event an exception item describes raises no alert for the rule.
                tally.excluded[index] = tally.excluded.get(index, 0) + 1
                continue
            if identity is None:
                identity = event_identity(event, origin)
            # An alert this process made in this input or an earlier one (the same event read twice: two exports
            # of one log) comes first in the hunt's order, which keeps it and drops this one: it is not built
            # again. A process meets an earlier input after a later one only when it takes over the inputs of a
            # worker that died; then the alert is made here, and the hunt keeps this one.
            alert_id = alert_uuid(rule, identity)
            made_in = made.get(alert_id)
            if made_in is not None and made_in <= position:
                tally.duplicates += 1
                continue
            made[alert_id] = position
            alert = build_alert(
                rule,
                event,
                origin=origin,
                detected_at=self.settings.detected_at,
                rule_fields_cache=self._fields_by_rule[index],
                identity=identity,
            )
            yield MatchedAlert(index, alert)


def _field_demand(rules: RuleSet, windowed: bool) -> FieldDemand | None:
    """The fields the rules read (and @timestamp for a time window); None when a rule reads the whole event
    (a keyword search) or has a node this does not know, so that every event is normalized in full."""
    fields: set[str] = {"@timestamp"} if windowed else set()
    for rule in rules.rules:
        if not _reads_named_fields_only(rule.ir):
            return None
        fields |= fields_of(rule.ir)
    return FieldDemand(fields)


def _reads_named_fields_only(node: Node) -> bool:
    if isinstance(node, And | Or):
        return all(_reads_named_fields_only(child) for child in node.children)
    if isinstance(node, Not):
        return _reads_named_fields_only(node.child)
    return isinstance(node, Const | Exists | Equals | Wildcard | Regex | Cidr | Compare | Predicate)


_InputFields = tuple[str, int | None, int, int | None, int, int]
"""An :class:`Input` as a plain tuple, and its position among the hunt's inputs, as inputs travel to the workers:
by the thousand, and a plain tuple pickles several times faster than a named one."""


def _worker_scanner(rules: RuleSet, settings: ScanSettings) -> Callable[[_InputFields], Iterator[ScanResult]]:
    """A worker's scanner. A forked worker inherits the parent's compiled rule set (and its index); one started
    afresh receives the rules and compiles them (see :meth:`RuleSet.__reduce__`)."""
    scan = InputScanner(rules, settings).scan

    def scan_fields(fields: _InputFields) -> Iterator[ScanResult]:
        return scan(Input(*fields[:-1]), fields[-1])

    return scan_fields


def _lost_input(fields: _InputFields, reason: str) -> ScanResult:
    item = Input(*fields[:-1])
    if not item.whole:
        # A piece of a split file: what was lost is that piece, from its first line on.
        end = "the end of the file" if item.end is None else f"byte {item.end}"
        return ReadProblem(Origin(item.path, line=item.first_line), f"{reason} (the part up to {end})")
    return ReadProblem(Origin(item.path), reason)


def _fold_counts(earlier: ScanResult | None, later: ScanResult) -> ScanResult | None:
    """Counts of consecutive inputs summed into one (:data:`~shellwatch.parallel.Fold`), so that a worker reports a
    run of inputs that raised nothing in one result. Counts that both hold a place of unrecognized records stay
    apart: the hunt keeps each such place."""
    if type(later) is not ScanCounts:
        return None
    if earlier is None:
        # The run's own dictionaries, summed into in place as the run grows.
        return later._replace(by_source=dict(later.by_source), excluded=dict(later.excluded or {}))
    if type(earlier) is not ScanCounts or (earlier.unrecognized_at is not None and later.unrecognized_at is not None):
        return None
    by_source = earlier.by_source
    for family, count in later.by_source.items():
        by_source[family] = by_source.get(family, 0) + count
    excluded = earlier.excluded
    assert excluded is not None  # made a dictionary when the run began
    if later.excluded:
        for position, count in later.excluded.items():
            excluded[position] = excluded.get(position, 0) + count
    return ScanCounts(
        earlier.records + later.records,
        earlier.in_window + later.in_window,
        by_source,
        earlier.unrecognized_at if earlier.unrecognized_at is not None else later.unrecognized_at,
        excluded,
        earlier.duplicates + later.duplicates,
    )


_Pieces = Generator[tuple[int, int, Iterable[ScanResult]], None, None]
"""What the hunt reads results from: :data:`~shellwatch.parallel.Piece` s, or their like in this process."""


def _scan_here(scanner: InputScanner, inputs: Sequence[Input]) -> _Pieces:
    """The inputs scanned in this process: one piece per input, its results read as the hunt consumes them."""
    for index, item in enumerate(inputs):
        yield index, index + 1, scanner.scan(item, index)


def _scan_in_workers(
    rules: RuleSet, settings: ScanSettings, inputs: Sequence[Input], processes: int
) -> Generator[Piece[ScanResult], None, None]:
    if len(rules) >= INDEX_FROM_RULES:
        rules.index  # noqa: B018 -- built once here, before the workers fork, rather than once in each
    make_scan = partial(_worker_scanner, rules, settings)
    sizes = [item.size for item in inputs]
    fields: list[_InputFields] = [(*item, position) for position, item in enumerate(inputs)]
    return scan_in_order(fields, make_scan, processes, _lost_input, sizes, _fold_counts)


def _split_large_inputs(inputs: list[Input], workers: int | None, source: str | None) -> list[Input]:
    """The inputs, large JSON lines files of pass-through sources cut into pieces for several workers to read
    (:func:`~shellwatch.sources.reader.split_json_lines`); unchanged when the hunt cannot use several workers.

    A file is split only when its head's documents are all of :data:`PASS_THROUGH_SOURCES` (or every record is
    read as one of them, ``source``): pieces then give the alerts the whole file gives, while a CrowdStrike or
    Defender file, whose normalizers remember earlier records of the input, is read whole by one worker."""
    if workers == 1 or (workers is None and available_cores() < 2):
        return inputs
    if source is not None and source not in PASS_THROUGH_SOURCES:
        return inputs
    accepts = _any_document if source is not None else _pass_through_document
    tasks: list[Input] = []
    for item in inputs:
        tasks.extend(split_json_lines(item, accepts))
    return tasks


def _pass_through_document(document: dict[str, Any]) -> bool:
    return source_family(RawRecord(document, "json", Origin(""))) in PASS_THROUGH_SOURCES


def _any_document(_document: dict[str, Any]) -> bool:
    return True


def release_held(held: HeldAlerts, rules: Sequence[Rule], stats: HuntStats) -> Iterator[dict[str, Any]]:
    """The alerts of the held rules once everything is read, counted into ``stats`` with what they folded."""
    for rule_index, alert in held.release():
        rule = rules[rule_index]
        stats.alerts += 1
        stats.alerts_by_rule[(rule.name, rule.severity)] += 1
        yield alert
    for rule_index, count in held.suppressed.items():
        stats.suppressed_by_rule[rules[rule_index].name] += count
    for rule_index, count in held.aggregated.items():
        stats.aggregated_by_rule[rules[rule_index].name] += count


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
    """Read ``paths`` and yield one alert per (rule, matching event), in input order then rule order.

    Rules whose alerts depend on other matches (new_terms, threshold, alert suppression:
    :mod:`shellwatch.alerts.held`) make their alerts once everything is read, after the others; ``per_match``
    yields their matches as plain alerts instead, for a caller that applies their semantics itself (``backtest``
    replays them run by run).

    As in Kibana, an alert id is made once: the same event read twice (two exports of one log) gives one alert.
    ``start``/``end`` keep only events whose @timestamp lies in [start, end); events without a readable timestamp
    are kept. ``on_progress`` is called after each input (or run of small inputs a worker finished together) and every
    4,096 records of an input.

    ``workers``: processes to spread the inputs over; None for all cores, except that inputs too small to repay
    starting workers (and stdin) are read in this process. A large JSON lines file of Elastic Defend or ECS documents
    is read in pieces by several workers (:func:`_split_large_inputs`). Alerts, problems and counts are the same
    whatever the number of workers.

    ``source``: read every record as this source (a name of :data:`~shellwatch.normalize.dispatch.SOURCES`)
    instead of recognizing each one. ``process_memory``: entries a normalizer may remember per input (a CrowdStrike
    process for its children, a Defender device's operating system). ``exceptions``: the exception lists to apply
    (load them once beforehand to report bad files: every scanner loads them again).
    """
    stats = stats if stats is not None else HuntStats()
    settings = ScanSettings(
        start=start,
        end=end,
        detected_at=datetime.now(UTC),
        source=source,
        process_memory=process_memory,
        exceptions=exceptions,
    )
    made: set[str] = set()

    def problem(p: ReadProblem) -> None:
        stats.problems.append(p)
        if on_problem is not None:
            on_problem(p)

    began = time.perf_counter()
    inputs: list[Input] = list_inputs(paths, on_problem=problem)
    stats.inputs = len(inputs)
    stats.input_bytes = sum(item.size or 0 for item in inputs)
    reads_stdin = any(item.path == STDIN for item in inputs)
    tasks = inputs if reads_stdin else _split_large_inputs(inputs, workers, source)
    processes = 1 if reads_stdin else worker_count(workers, len(tasks), stats.input_bytes)
    stats.workers = processes
    pieces: _Pieces
    if processes > 1:
        pieces = _scan_in_workers(rules, settings, tasks, processes)
    else:
        tasks = inputs
        pieces = _scan_here(InputScanner(rules, settings), tasks)
    # Inputs and bytes before each task: a run of tasks finished together is counted in one step.
    inputs_before = list(accumulate((task.last_piece for task in tasks), initial=0))
    bytes_before = list(accumulate((task.size or 0 for task in tasks), initial=0))
    compiled = rules.compiled
    held = HeldAlerts([] if per_match else [c.rule for c in compiled], settings.detected_at)
    try:
        for first, after, results in pieces:
            for result in results:
                if type(result) is MatchedAlert:
                    alert = result.alert
                    alert_id = alert["kibana.alert.uuid"]
                    if alert_id in made:
                        stats.duplicates += 1
                        continue
                    made.add(alert_id)
                    if held and held.applies(result.rule_index):
                        held.hold(result.rule_index, alert)
                        continue
                    rule = compiled[result.rule_index].rule
                    stats.alerts += 1
                    stats.alerts_by_rule[(rule.name, rule.severity)] += 1
                    yield alert
                elif type(result) is ReadProblem:
                    problem(result)
                elif type(result) is ScanCounts:
                    stats.records += result.records
                    stats.duplicates += result.duplicates
                    stats.events_in_window += result.in_window
                    by_source = stats.by_source
                    for family, count in result.by_source.items():
                        by_source[family] += count
                    if result.excluded:
                        for position, count in result.excluded.items():
                            stats.excluded_by_rule[compiled[position].rule.name] += count
                    if result.unrecognized_at is not None and len(stats.unrecognized_at) < 10:
                        stats.unrecognized_at.append(result.unrecognized_at)
                    if on_progress is not None:
                        stats.seconds = time.perf_counter() - began
                        on_progress(stats)
            if after > first:
                stats.inputs_done += inputs_before[after] - inputs_before[first]
                stats.bytes_done += bytes_before[after] - bytes_before[first]
                if on_progress is not None:
                    stats.seconds = time.perf_counter() - began
                    on_progress(stats)
        yield from release_held(held, rules.rules, stats)
    finally:
        pieces.close()
        stats.seconds = time.perf_counter() - began
