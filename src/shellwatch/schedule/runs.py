"""Replaying a rule's schedule over stored events, run by run, as Kibana's detection engine would have run it.

Kibana runs a security rule every ``interval``. A run that starts at ``S`` searches the events whose timestamp lies
in ``[S - lookback, S]`` (``from`` is date math such as ``now-9m``, ``to`` is ``now``; both bounds inclusive), creates
at most ``max_signals`` alerts, and never creates an alert whose id already exists: the look-back overlap between
consecutive runs finds events a previous run already alerted on, and those are skipped as duplicates. When a run
starts later than the look-back allows, Kibana searches up to four extra "catch-up" windows, each one interval
further back, and reports whatever is still not covered as a gap.

Where each behaviour comes from (elastic/kibana, ``x-pack/solutions/security/plugins/security_solution/server/lib/
detection_engine/rule_types/``):

- ``utils/utils.ts`` ``getRuleRangeTuples``: the window ``[dateMath(from, now=startedAt), dateMath(to,
  now=startedAt)]``; ``getGapBetweenRuns`` = (startedAt - previousStartedAt) - (to - from);
  ``getNumCatchupIntervals`` = min(ceil(gap / interval), MAX_RULE_GAP_RATIO = 4); ``getCatchupTuples`` shifts the
  window back by one interval per catch-up tuple; the remaining gap max(gap - catchup * interval, 0) is reported as
  ``[previousStartedAt, previousStartedAt + remainingGap]``; the rule's max_signals is capped by the alerting
  framework's ``xpack.alerting.rules.run.alerts.max`` (1000 by default). Tuples run oldest first (``reverse()``).
- ``utils/build_events_query.ts`` ``buildTimeRangeFilter``: ``gte: from, lte: to`` on the timestamp field; with a
  ``timestamp_override`` and ``timestamp_override_fallback_disabled`` false, a document matches when the override
  field is in range, or when it has no override field at all and ``@timestamp`` is in range. The search sorts by
  the override field ascending, then by ``@timestamp`` ascending (documents missing a sort field sort last, as
  Elasticsearch does by default).
- ``create_security_rule_type_wrapper.ts``: primary timestamp = override or ``@timestamp``; secondary =
  ``@timestamp`` unless there is no override, the override is ``@timestamp``, or the fallback is disabled.
- ``eql/eql.ts`` + ``eql/build_eql_search_request.ts``: an EQL rule makes ONE EQL search with ``size: max_signals``;
  EQL returns the earliest matching events first (ordered by the EQL ``timestamp_field``, ``@timestamp`` by
  default), so matches after the first max_signals are not returned, and already-alerted events among the first
  max_signals use up the budget.
- ``utils/search_after_bulk_create_factory.ts``: every other rule type pages through the sorted hits with
  ``search_after`` and bulk-creates until max_signals NEW alerts exist; duplicates do not use up the budget.
- Task manager ``lib/get_next_run_at.ts``: a task that starts late schedules its next run one interval after it
  actually started, so after downtime the overdue run starts when Kibana is back and the schedule continues
  from there.

new_terms and threshold rules search aggregations, not single events: :func:`replay_search` runs the same schedule
and hands each window to the rule type's :class:`RuleSearch` (:mod:`shellwatch.schedule.new_terms`,
:mod:`shellwatch.schedule.threshold`), which says what the window finds and learns what was written.

Timestamps are compared in whole milliseconds, the resolution of Elasticsearch's ``date`` type (the type of ECS
``@timestamp``): finer fractions are truncated.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from shellwatch.ecs import flatten_fields
from shellwatch.normalize.timestamps import iso_utc
from shellwatch.rules.model import Rule, duration_seconds

SearchStrategy = Literal["eql", "search_after", "aggregation"]
"""How a run collects its alerts: one EQL search of ``size: max_signals``, search_after paging (query and new_terms
rules: duplicates do not use up max_signals), or aggregation buckets cut to max_signals before any alert is written
(threshold rules: duplicates do)."""

MAX_RULE_GAP_RATIO = 4
"""Kibana's limit on catch-up windows a late run adds (at most four missed runs are searched again)."""

DEFAULT_ALERTS_MAX = 1000
"""Kibana's ``xpack.alerting.rules.run.alerts.max`` default: the most alerts any rule run may write."""

TIMESTAMP = "@timestamp"

_SEARCH_BY_TYPE: Mapping[str, SearchStrategy] = {"eql": "eql", "threshold": "aggregation"}

_FROM_DATE_MATH = re.compile(r"^now(?:-(\d+[smhd]))?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MILLISECOND = timedelta(milliseconds=1)


class Candidate(NamedTuple):
    """One event offered to the replay: whether the rule's query matches it and, if it does, its alert id."""

    event: Mapping[str, Any]
    matched: bool
    alert_id: str | None = None


def candidates(
    events: Iterable[Mapping[str, Any]],
    matches: Callable[[Mapping[str, Any]], bool],
    alert_id: Callable[[Mapping[str, Any]], str],
) -> Iterator[Candidate]:
    """Events plus a predicate as replay candidates; ``alert_id`` is called only for matching events."""
    for event in events:
        if matches(event):
            yield Candidate(event, True, alert_id(event))
        else:
            yield Candidate(event, False, None)


def alert_candidate(alert: Mapping[str, Any], schedule: RuleSchedule) -> Candidate:
    """A replay candidate from an alert document of :func:`shellwatch.alerts.document.build_alert`.

    The alert's own ``@timestamp`` is its detection time; the source event's is ``kibana.alert.original_time``.
    The other timestamp fields the schedule reads (the override, an EQL ``timestamp_field``) are kept in the alert
    as the event had them.
    """
    event: dict[str, Any] = {TIMESTAMP: alert.get("kibana.alert.original_time")}
    others = {schedule.primary_timestamp, schedule.eql_timestamp_field} - {TIMESTAMP}
    if others:
        event.update(flatten_fields({k: v for k, v in alert.items() if k != TIMESTAMP}, sorted(others)))
    return Candidate(event, True, str(alert["kibana.alert.uuid"]))


def lookback_of(from_: str) -> timedelta:
    """How far back a run searches, from Kibana's ``from`` date math relative to ``to: now`` (``now-9m`` -> 9m)."""
    match = _FROM_DATE_MATH.match(from_)
    if match is None:
        raise ValueError(f"from {from_!r} is not date math like now-9m")
    return timedelta(seconds=duration_seconds(match.group(1))) if match.group(1) else timedelta(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleSchedule:
    """The parts of a rule that decide what each run searches and how many alerts it may create."""

    interval: timedelta
    lookback: timedelta
    """``to - from``: the interval plus the additional look-back (``from: now-9m`` with ``interval: 5m`` = 9m)."""
    max_signals: int = 100
    timestamp_override: str | None = None
    timestamp_override_fallback_disabled: bool = False
    search: SearchStrategy = "search_after"
    eql_timestamp_field: str = TIMESTAMP
    """An EQL rule's ``timestamp_field``: the field EQL orders its results by (not the override)."""
    alerts_max: int = DEFAULT_ALERTS_MAX

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0):
            raise ValueError(f"interval {self.interval} must be positive")
        if self.lookback < timedelta(0):
            raise ValueError(f"look-back {self.lookback} must not be negative")
        if self.max_signals < 1 or self.alerts_max < 1:
            raise ValueError("max_signals and alerts_max must be at least 1")

    @classmethod
    def from_rule(
        cls,
        rule: Rule,
        *,
        timestamp_override_fallback_disabled: bool = False,
        alerts_max: int = DEFAULT_ALERTS_MAX,
    ) -> RuleSchedule:
        """The schedule Kibana would give ``rule``: EQL rules search once, threshold rules aggregate, every other
        type pages with search_after."""
        return cls(
            interval=timedelta(seconds=duration_seconds(rule.interval)),
            lookback=lookback_of(rule.from_),
            max_signals=rule.max_signals,
            timestamp_override=rule.timestamp_override,
            timestamp_override_fallback_disabled=timestamp_override_fallback_disabled,
            search=_SEARCH_BY_TYPE.get(rule.type, "search_after"),
            alerts_max=alerts_max,
        )

    @property
    def primary_timestamp(self) -> str:
        return self.timestamp_override or TIMESTAMP

    @property
    def secondary_timestamp(self) -> str | None:
        """``@timestamp`` when events lacking the override field fall back to it, else ``None``."""
        primary = self.primary_timestamp
        if primary != TIMESTAMP and not self.timestamp_override_fallback_disabled:
            return TIMESTAMP
        return None

    @property
    def alerts_per_search(self) -> int:
        """max_signals as Kibana applies it: capped by the alerting framework's per-run limit."""
        return min(self.max_signals, self.alerts_max)


def epoch_millis(value: Any) -> int | None:
    """A timestamp field's value as epoch milliseconds (truncated, as Elasticsearch's ``date`` type stores it).

    ISO 8601 strings (a missing zone is UTC) and numbers (epoch milliseconds) are read as Elasticsearch reads a
    ``date`` field; a multi-valued field uses its earliest value (the value an ascending sort uses). ``None`` when
    the value is absent or not a date, which Elasticsearch would not have indexed: such an event has no timestamp.
    """
    if isinstance(value, list):
        values = [m for m in (epoch_millis(v) for v in value) if m is not None]
        return min(values) if values else None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return _to_millis(moment)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.floor(value) if math.isfinite(value) else None
    if isinstance(value, str) and value[-1:] == "Z" and len(value) >= 20 and value[10] == "T":
        # The shape normalize/ writes: parsed directly, without iso_utc's general path.
        try:
            return _to_millis(datetime.fromisoformat(value))
        except ValueError:
            pass
    text = iso_utc(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _to_millis(moment)


def _to_millis(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MILLISECOND


def _to_datetime(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def _millis(duration: timedelta) -> int:
    return duration // _ONE_MILLISECOND


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchReport:
    """One search of a run: its window (both bounds inclusive) and what it found and created."""

    window_start: datetime
    window_end: datetime
    catch_up: bool
    """True for a catch-up window a late run added to cover missed runs."""
    events_searched: int
    """Events with a timestamp in the window (what the range filter lets through, before the query)."""
    matches: int
    """Events in the window that the rule's query matches."""
    created: tuple[str, ...]
    duplicates: tuple[str, ...]
    """Alert ids found again (mostly in the look-back overlap) and skipped because the alert already exists."""
    dropped: tuple[str, ...]
    """New alert ids not created because the search's max_signals was reached."""
    max_signals_warning: bool
    """Kibana's "max alerts reached" warning: EQL when the matches reach max_signals, else when alerts were cut."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GapReport:
    """A gap as Kibana reports it on a run: time nobody searched between this run and the previous one."""

    run_index: int
    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def message(self) -> str:
        """Kibana's wording of the rule execution error."""
        millis = _millis(self.duration)
        return (
            f"{self.duration} ({millis}ms) were not queried between this rule execution and the last execution, "
            "so signals may have been missed. Consider increasing your look behind time or adding more Kibana "
            "instances"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class RunReport:
    """One rule execution: when it started, its searches (oldest window first) and the gap Kibana reported."""

    index: int
    started_at: datetime
    searches: tuple[SearchReport, ...]
    gap: GapReport | None = None

    @property
    def window_start(self) -> datetime:
        return min(s.window_start for s in self.searches)

    @property
    def window_end(self) -> datetime:
        return max(s.window_end for s in self.searches)

    @property
    def events_searched(self) -> int:
        return sum(s.events_searched for s in self.searches)

    @property
    def created(self) -> tuple[str, ...]:
        return tuple(a for s in self.searches for a in s.created)

    @property
    def duplicates(self) -> tuple[str, ...]:
        return tuple(a for s in self.searches for a in s.duplicates)

    @property
    def dropped(self) -> tuple[str, ...]:
        return tuple(a for s in self.searches for a in s.dropped)


@dataclass(frozen=True, kw_only=True, slots=True)
class Uncovered:
    """Event time no search covered, with the events in it and the alerts missed there.

    ``reason`` is ``"gap"`` (between two searched windows; the bounds are excluded), ``"before first run"``
    (earlier than the first window) or ``"after last run"`` (later than the last window).
    """

    reason: Literal["gap", "before first run", "after last run"]
    start: datetime | None
    end: datetime | None
    events: int
    missed: tuple[str, ...]
    """Alert ids of matching events in this range that no run created."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Totals:
    """A replay's figures."""

    runs: int
    searches: int
    events: int
    untimed: int
    """Events without a usable timestamp: no run's range filter lets them through."""
    matches: int
    """Matching events (all of them, searched or not)."""
    created: int
    duplicates_skipped: int
    dropped: int
    """Distinct alert ids dropped at max_signals by at least one search."""
    dropped_picked_up: int
    """Of those, alerts a later search created after all."""
    dropped_lost: int
    """Of those, alerts never created."""
    gaps_reported: int
    unsearched_events: int
    """Events in time no search covered (gaps and the replay's edges)."""
    never_created: int
    """Distinct matching alert ids for which no run created an alert, whatever the reason."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Replay:
    """The result of replaying a rule's schedule over events."""

    schedule: RuleSchedule
    runs: tuple[RunReport, ...]
    uncovered: tuple[Uncovered, ...]
    created_by_run: Mapping[str, int]
    """Alert id -> index of the run that created it."""
    picked_up: Mapping[str, int]
    """Alert ids dropped at max_signals by one search and created by a later run -> that run's index."""
    never_created: tuple[str, ...]
    totals: Totals
    untimed_matches: tuple[str, ...] = field(default=())
    """Alert ids of matching events without a usable timestamp."""

    @property
    def gaps(self) -> tuple[GapReport, ...]:
        return tuple(run.gap for run in self.runs if run.gap is not None)


@dataclass(slots=True)
class _Match:
    effective: int
    order: tuple[int, ...]
    seq: int
    alert_id: str


class EventClock:
    """Where one schedule's range filter places an event, and where its search's sort puts it."""

    def __init__(self, schedule: RuleSchedule) -> None:
        self.primary = schedule.primary_timestamp
        self.secondary = schedule.secondary_timestamp
        self.eql_field = schedule.eql_timestamp_field if schedule.search == "eql" else None

    def effective(self, event: Mapping[str, Any]) -> int | None:
        """The time the range filter tests: the primary field, or the secondary when the primary is absent."""
        primary = epoch_millis(event.get(self.primary))
        if primary is not None or self.secondary is None:
            return primary
        return epoch_millis(event.get(self.secondary))

    def alert_effective(self, alert: Mapping[str, Any]) -> int | None:
        """:meth:`effective` of the source event of an alert of :func:`~shellwatch.alerts.document.build_alert`:
        its @timestamp is ``kibana.alert.original_time``, the other timestamp fields are kept as the event had them."""
        timing: dict[str, Any] = {TIMESTAMP: alert.get("kibana.alert.original_time")}
        others = sorted({f for f in (self.primary, self.secondary) if f is not None and f != TIMESTAMP})
        if others:
            timing.update(flatten_fields({k: v for k, v in alert.items() if k != TIMESTAMP}, others))
        return self.effective(timing)

    def order(self, event: Mapping[str, Any]) -> tuple[int, ...]:
        """The sort key of the search (ascending; a missing value sorts last)."""
        if self.eql_field is not None:
            value = epoch_millis(event.get(self.eql_field))
            return (value is None, value or 0)
        primary = epoch_millis(event.get(self.primary))
        if self.secondary is None:
            return (primary is None, primary or 0)
        secondary = epoch_millis(event.get(self.secondary))
        return (primary is None, primary or 0, secondary is None, secondary or 0)


def _runs_at(
    start: int, end: int | None, last_event: int, interval: int, downtime: Sequence[tuple[int, int]]
) -> Iterator[int]:
    """Start times of the runs: every interval from ``start``; a run due while down starts when back up."""
    moment = start
    while True:
        for down_from, down_to in downtime:
            if down_from <= moment < down_to:
                moment = down_to
        if end is not None and moment > end:
            return
        yield moment
        if end is None and moment >= last_event:
            return
        moment += interval


def replay(
    schedule: RuleSchedule,
    events: Iterable[Candidate | tuple[Mapping[str, Any], bool, str | None]],
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    downtime: Iterable[tuple[datetime, datetime]] = (),
) -> Replay:
    """Replay ``schedule`` over ``events`` as Kibana would have run it.

    The first run starts at ``start`` (default: the earliest event timestamp, so that run's window ends on the
    first event) and runs follow every interval while they start no later than ``end`` (default: until a run has
    started at or after the latest event, so every event falls in some window). ``downtime`` lists half-open
    ``[down, up)`` periods in which Kibana was not running: a run due then starts at ``up`` and the schedule
    continues from there; a late run adds catch-up windows and reports the rest as a gap, as Kibana does.
    Events need not be in time order.
    """
    times: list[int] = []
    matches: list[_Match] = []
    untimed = 0
    untimed_matches: list[str] = []
    total_matches = 0
    clock = EventClock(schedule)
    for seq, item in enumerate(events):
        event, matched, alert_id = item
        effective = clock.effective(event)
        if matched:
            total_matches += 1
            if alert_id is None:
                raise ValueError(f"matching event #{seq} has no alert id")
        if effective is None:
            untimed += 1
            if matched and alert_id is not None:
                untimed_matches.append(alert_id)
            continue
        times.append(effective)
        if matched and alert_id is not None:
            matches.append(_Match(effective, clock.order(event), seq, alert_id))
    times.sort()
    matches.sort(key=lambda m: (m.effective, m.seq))
    match_times = [m.effective for m in matches]

    def search(window: Window) -> WindowResult:
        in_window = matches[bisect_left(match_times, window.low) : bisect_right(match_times, window.high)]
        in_window.sort(key=lambda m: (m.order, m.seq))
        return WindowResult(matches=len(in_window), found=[m.alert_id for m in in_window])

    loop = _run_schedule(schedule, schedule.search, times, start, end, downtime, search, None)
    uncovered = _uncovered(loop.windows, times, matches, match_times, loop.created_by_run)
    every_match = dict.fromkeys([m.alert_id for m in matches] + untimed_matches)
    return _result(
        schedule,
        loop,
        uncovered,
        events=len(times) + untimed,
        untimed=untimed,
        matches=total_matches,
        never_created=tuple(a for a in every_match if a not in loop.created_by_run),
        untimed_matches=tuple(untimed_matches),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Window:
    """One search of one run, in epoch milliseconds: the range ``[low, high]`` (both inclusive)."""

    run_index: int
    started_at: int
    """When the run started (Kibana's ``startedAt``; ``high`` of its newest window)."""
    low: int
    high: int
    catch_up: bool


class TimedEvent(Protocol):
    """An event a rule type's search reads: its effective time and its position among the rule's matches."""

    @property
    def effective(self) -> int: ...

    @property
    def seq(self) -> int: ...


_E = TypeVar("_E", bound=TimedEvent)


class TimedEvents(Generic[_E]):
    """A rule's matching events in time order (ties in input order), for its searches to take window by window;
    ``untimed`` counts the matches without a usable timestamp, which no range filter lets through."""

    def __init__(
        self, alerts: Iterable[Mapping[str, Any]], to_event: Callable[[Mapping[str, Any], int], _E | None]
    ) -> None:
        events: list[_E] = []
        self.untimed = 0
        for seq, alert in enumerate(alerts):
            event = to_event(alert, seq)
            if event is None:
                self.untimed += 1
            else:
                events.append(event)
        events.sort(key=lambda e: (e.effective, e.seq))
        self.events = events
        self.times = [e.effective for e in events]

    def in_window(self, window: Window) -> list[_E]:
        """The events whose effective time lies in the window (both bounds inclusive)."""
        return self.events[bisect_left(self.times, window.low) : bisect_right(self.times, window.high)]


class WindowResult(NamedTuple):
    """What a rule type's search returns for one window, before Kibana writes any alert."""

    matches: int
    """Matching events in the window (the run report's "matches")."""
    found: Sequence[str]
    """Alert ids the search yields, in the order Kibana creates them."""


class RuleSearch(Protocol):
    """A rule type's search over one window, and what it remembers once the alerts are written.

    :func:`replay_search` calls :meth:`search` for each window, oldest first, then :meth:`created` with the alert
    ids that were written (duplicates and alerts beyond max_signals left out), so that stateful rule types
    (threshold's signal history) see exactly what Kibana's next window would see.
    """

    @property
    def strategy(self) -> SearchStrategy: ...

    def search(self, window: Window) -> WindowResult: ...

    def created(self, window: Window, alert_ids: Sequence[str]) -> None: ...


def replay_search(
    schedule: RuleSchedule,
    search: RuleSearch,
    times: Iterable[int],
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    untimed: int = 0,
    downtime: Iterable[tuple[datetime, datetime]] = (),
) -> Replay:
    """Replay ``schedule`` for a rule type whose windows are searched by ``search`` (new_terms, threshold).

    ``times`` are the effective timestamps (epoch milliseconds) of the rule's matching events, which place the runs
    (as :func:`replay` does) and count each window's events; ``untimed`` counts matching events without one. Runs,
    catch-up windows, gaps and downtime are those of :func:`replay`; how max_signals applies is ``search.strategy``.
    ``Uncovered.missed`` and ``never_created`` stay empty: which alerts a window would have produced is not a
    property of single events here.
    """
    ordered = sorted(times)
    loop = _run_schedule(schedule, search.strategy, ordered, start, end, downtime, search.search, search.created)
    uncovered = _uncovered(loop.windows, ordered, [], [], loop.created_by_run)
    return _result(
        schedule,
        loop,
        uncovered,
        events=len(ordered) + untimed,
        untimed=untimed,
        matches=len(ordered) + untimed,
        never_created=(),
        untimed_matches=(),
    )


@dataclass(slots=True)
class _Loop:
    runs: list[RunReport] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)
    created_by_run: dict[str, int] = field(default_factory=dict)
    dropped_ever: dict[str, None] = field(default_factory=dict)
    duplicates_total: int = 0


def _run_schedule(
    schedule: RuleSchedule,
    strategy: SearchStrategy,
    times: list[int],
    start: datetime | None,
    end: datetime | None,
    downtime: Iterable[tuple[datetime, datetime]],
    search: Callable[[Window], WindowResult],
    created: Callable[[Window, Sequence[str]], None] | None,
) -> _Loop:
    """The runs of ``schedule`` over events at ``times`` (sorted), each window searched by ``search``."""
    interval = _millis(schedule.interval)
    lookback = _millis(schedule.lookback)
    cap = schedule.alerts_per_search
    down = sorted((_to_millis(a), _to_millis(b)) for a, b in downtime)
    loop = _Loop()
    if not times and start is None:
        return loop
    first = _to_millis(start) if start is not None else times[0]
    last_event = times[-1] if times else first
    stop = _to_millis(end) if end is not None else None
    previous: int | None = None
    for index, started in enumerate(_runs_at(first, stop, last_event, interval, down)):
        tuples = [(started - lookback, started)]
        gap_report: GapReport | None = None
        if previous is not None:
            gap = (started - previous) - lookback
            catch_up = min(math.ceil(gap / interval), MAX_RULE_GAP_RATIO) if gap > 0 else 0
            tuples += [(started - lookback - k * interval, started - k * interval) for k in range(1, catch_up + 1)]
            remaining = max(gap - catch_up * interval, 0)
            if remaining > 0:
                gap_report = GapReport(
                    run_index=index, start=_to_datetime(previous), end=_to_datetime(previous + remaining)
                )
        searches: list[SearchReport] = []
        for position, (low, high) in enumerate(reversed(tuples)):
            loop.windows.append((low, high))
            window = Window(
                run_index=index, started_at=started, low=low, high=high, catch_up=position < len(tuples) - 1
            )
            result = search(window)
            report = _create(
                strategy,
                window,
                result,
                cap,
                loop.created_by_run,
                events_searched=bisect_right(times, high) - bisect_left(times, low),
            )
            if created is not None:
                created(window, report.created)
            loop.duplicates_total += len(report.duplicates)
            loop.dropped_ever.update(dict.fromkeys(report.dropped))
            searches.append(report)
        loop.runs.append(
            RunReport(index=index, started_at=_to_datetime(started), searches=tuple(searches), gap=gap_report)
        )
        previous = started
    return loop


def _result(
    schedule: RuleSchedule,
    loop: _Loop,
    uncovered: tuple[Uncovered, ...],
    *,
    events: int,
    untimed: int,
    matches: int,
    never_created: tuple[str, ...],
    untimed_matches: tuple[str, ...],
) -> Replay:
    picked_up = {a: loop.created_by_run[a] for a in loop.dropped_ever if a in loop.created_by_run}
    totals = Totals(
        runs=len(loop.runs),
        searches=len(loop.windows),
        events=events,
        untimed=untimed,
        matches=matches,
        created=len(loop.created_by_run),
        duplicates_skipped=loop.duplicates_total,
        dropped=len(loop.dropped_ever),
        dropped_picked_up=len(picked_up),
        dropped_lost=len(loop.dropped_ever) - len(picked_up),
        gaps_reported=sum(1 for r in loop.runs if r.gap is not None),
        unsearched_events=sum(u.events for u in uncovered),
        never_created=len(never_created),
    )
    return Replay(
        schedule=schedule,
        runs=tuple(loop.runs),
        uncovered=uncovered,
        created_by_run=loop.created_by_run,
        picked_up=picked_up,
        never_created=never_created,
        totals=totals,
        untimed_matches=untimed_matches,
    )


def _create(
    strategy: SearchStrategy,
    window: Window,
    result: WindowResult,
    cap: int,
    created_by_run: dict[str, int],
    *,
    events_searched: int,
) -> SearchReport:
    """Kibana's bulk create over what a window's search found: max_signals, then existing alert ids skipped."""
    created: list[str] = []
    duplicates: list[str] = []
    dropped: dict[str, None] = {}
    found = result.found
    if strategy in ("eql", "aggregation"):
        # One search of size max_signals (EQL), or aggregation buckets cut to max_signals before any alert is
        # written (threshold): already-alerted results use up the budget.
        for alert_id in found[:cap]:
            if alert_id in created_by_run:
                duplicates.append(alert_id)
            else:
                created_by_run[alert_id] = window.run_index
                created.append(alert_id)
        dropped.update((a, None) for a in found[cap:] if a not in created_by_run)
        warning = len(found) >= cap if strategy == "eql" else len(found) > cap
    else:
        # search_after paging: already existing alerts are filtered out before max_signals is applied.
        for alert_id in found:
            if alert_id in created_by_run:
                if len(created) < cap:
                    duplicates.append(alert_id)
            elif len(created) < cap:
                created_by_run[alert_id] = window.run_index
                created.append(alert_id)
            else:
                dropped[alert_id] = None
        warning = bool(dropped)
    return SearchReport(
        window_start=_to_datetime(window.low),
        window_end=_to_datetime(window.high),
        catch_up=window.catch_up,
        events_searched=events_searched,
        matches=result.matches,
        created=tuple(created),
        duplicates=tuple(duplicates),
        dropped=tuple(dropped),
        max_signals_warning=warning,
    )


def _uncovered(
    windows: list[tuple[int, int]],
    times: list[int],
    matches: list[_Match],
    match_times: list[int],
    created_by_run: Mapping[str, int],
) -> tuple[Uncovered, ...]:
    """The time no search covered: before the first window, between windows, after the last one."""

    def missed(lo: int, hi: int) -> tuple[str, ...]:
        ids = dict.fromkeys(m.alert_id for m in matches[lo:hi] if m.alert_id not in created_by_run)
        return tuple(ids)

    if not windows:
        if not times:
            return ()
        return (
            Uncovered(reason="after last run", start=None, end=None, events=len(times), missed=missed(0, len(matches))),
        )
    merged: list[list[int]] = []
    for low, high in sorted(windows):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    result: list[Uncovered] = []
    first_low, last_high = merged[0][0], merged[-1][1]
    before = bisect_left(times, first_low)
    if before:
        result.append(
            Uncovered(
                reason="before first run",
                start=None,
                end=_to_datetime(first_low),
                events=before,
                missed=missed(0, bisect_left(match_times, first_low)),
            )
        )
    for (_, previous_high), (next_low, _) in pairwise(merged):
        # Both window bounds were searched (gte/lte): only what lies strictly between them was not.
        result.append(
            Uncovered(
                reason="gap",
                start=_to_datetime(previous_high),
                end=_to_datetime(next_low),
                events=bisect_left(times, next_low) - bisect_right(times, previous_high),
                missed=missed(bisect_right(match_times, previous_high), bisect_left(match_times, next_low)),
            )
        )
    after = len(times) - bisect_right(times, last_high)
    if after:
        result.append(
            Uncovered(
                reason="after last run",
                start=_to_datetime(last_high),
                end=None,
                events=after,
                missed=missed(bisect_right(match_times, last_high), len(matches)),
            )
        )
    return tuple(result)
