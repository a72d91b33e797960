"""Replaying a rule's schedule as Kibana runs it: windows, look-back overlap, max_signals, timestamp override, gaps.

Each test builds an event stream with known timestamps and checks, run by run, what Kibana's detection engine
does with it. Kibana sources cited as KIBANA/<path> live in elastic/kibana under
``x-pack/solutions/security/plugins/security_solution/server/lib/detection_engine/rule_types/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.alerts.document import alert_uuid, build_alert, event_identity
from shellwatch.query.ir import TRUE
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.schedule import Candidate, RuleSchedule, alert_candidate, candidates, epoch_millis, replay
from shellwatch.schedule.runs import Window, WindowResult, lookback_of, replay_search

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def at(offset: timedelta) -> str:
    """An ECS timestamp ``offset`` after T0, as normalize/ writes it."""
    return (T0 + offset).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hit(name: str, offset: timedelta, **fields: Any) -> Candidate:
    """A matching event named ``name`` (its alert id) with @timestamp at T0 + offset."""
    return Candidate({"@timestamp": at(offset), **fields}, True, name)


def miss(offset: timedelta) -> Candidate:
    return Candidate({"@timestamp": at(offset)}, False, None)


def schedule(interval: int = 5, lookback: int = 9, **kwargs: Any) -> RuleSchedule:
    return RuleSchedule(interval=interval * MINUTE, lookback=lookback * MINUTE, **kwargs)


def test_from_rule_reads_interval_from_and_max_signals() -> None:
    """``from: now-9m`` with ``interval: 5m`` searches 9 minutes each run (5 + 4 of additional look-back); EQL rules
    run one EQL search, other types page with search_after; the alerting framework caps max_signals.

    Sources: Kibana's detection rules API (``from``: "Time from which data is analyzed each time the rule runs,
    using a date math range"; https://www.elastic.co/guide/en/security/current/rules-api-create.html);
    KIBANA/create_security_rule_type_wrapper.ts (``getRuleRangeTuples({ from, to, interval, maxSignals })``);
    KIBANA/utils/utils.ts (``maxAlertsAllowed = alerting.getConfig().run.alerts.max``).
    """
    rule = Rule(
        rule_id="r1",
        name="web shell",
        description="d",
        type="eql",
        language="eql",
        query="process where true",
        ir=TRUE,
        source=RuleSource(path="r.toml"),
        interval="5m",
        from_="now-9m",
        max_signals=5000,
        timestamp_override="event.ingested",
    )
    sched = RuleSchedule.from_rule(rule)
    assert sched.interval == 5 * MINUTE
    assert sched.lookback == 9 * MINUTE
    assert sched.search == "eql"
    assert sched.alerts_per_search == 1000
    assert sched.primary_timestamp == "event.ingested"
    assert sched.secondary_timestamp == "@timestamp"
    query_rule = Rule(**{**{f: getattr(rule, f) for f in rule.__dataclass_fields__}, "type": "query"})
    assert RuleSchedule.from_rule(query_rule).search == "search_after"
    assert RuleSchedule.from_rule(rule, timestamp_override_fallback_disabled=True).secondary_timestamp is None
    assert lookback_of("now") == timedelta(0)
    with pytest.raises(ValueError, match="date math"):
        lookback_of("now-9m/m")


def test_window_bounds_are_inclusive_on_both_ends() -> None:
    """A run at S searches ``gte: S - lookback, lte: S``: an event exactly on a boundary shared by two runs is
    searched by both, alerted by the first and skipped as a duplicate by the second.

    Source: KIBANA/utils/build_events_query.ts ``buildTimeRangeFilter`` (``range: {lte: to, gte: from}``).
    """
    events = [hit("edge", timedelta(0)), hit("just-before", -5 * MINUTE - timedelta(milliseconds=1))]
    result = replay(schedule(5, 5), events, start=T0, end=T0 + 5 * MINUTE)
    first, second = result.runs
    assert (first.window_start, first.window_end) == (T0 - 5 * MINUTE, T0)
    assert first.created == ("edge",)
    assert second.duplicates == ("edge",)
    assert second.created == ()
    # One millisecond before the first window: no run searched it.
    assert result.never_created == ("just-before",)
    (before,) = result.uncovered
    assert before.reason == "before first run"
    assert before.missed == ("just-before",)


def test_look_back_overlap_is_deduplicated_run_by_run() -> None:
    """Runs every 5m over the last 9m overlap by 4m; an event found again in the overlap is a duplicate because the
    alert id (a hash of the source document and the rule) already exists, so each event is alerted exactly once.

    Events at T0+0.5m, T0+1.5m, ..., T0+29.5m (30, one a minute). Run k starts at T0+5k and searches
    [T0+5k-9m, T0+5k]: run 1 finds 5 new; runs 2..6 find 9 (4 already alerted + 5 new); run 7 finds the last 4
    again. Sources: Kibana docs, "Elastic Security prevents duplication. Any duplicate alerts that are discovered
    during the Additional look-back time are not created" (https://www.elastic.co/guide/en/security/current/
    rules-ui-create.html#rule-schedule);
    KIBANA/utils/utils.ts ``generateId`` (sha256 of index, id, version and rule id).
    """
    events = [hit(f"e{j}", (j + 0.5) * MINUTE) for j in range(30)]
    result = replay(schedule(5, 9), events, start=T0, end=T0 + 35 * MINUTE)
    per_run = [(r.events_searched, len(r.created), len(r.duplicates)) for r in result.runs]
    assert per_run == [(0, 0, 0), (5, 5, 0), (9, 5, 4), (9, 5, 4), (9, 5, 4), (9, 5, 4), (9, 5, 4), (4, 0, 4)]
    assert result.runs[2].created == ("e5", "e6", "e7", "e8", "e9")
    assert result.runs[2].duplicates == ("e1", "e2", "e3", "e4")
    assert result.totals.created == 30
    assert result.totals.duplicates_skipped == 24
    assert result.never_created == ()
    assert result.created_by_run["e0"] == 1
    assert result.created_by_run["e29"] == 6


def burst() -> list[Candidate]:
    """Seven matching events one second apart just after T0+1m, then quiet: a burst larger than max_signals."""
    return [hit(f"b{i}", MINUTE + timedelta(seconds=i)) for i in range(7)]


def test_eql_max_signals_keeps_the_earliest_matches_and_loses_the_rest() -> None:
    """An EQL rule runs ONE EQL search with ``size: max_signals``; EQL returns the earliest matches first, so with
    max_signals 3 the run alerts b0..b2 and drops b3..b6. The next run's window still holds the burst: its search
    returns b0..b2 again (duplicates, using up the size) and b3..b6 are dropped again, then leave the look-back:
    they are never alerted. Both runs carry Kibana's max-signals warning (total hits >= max_signals).

    Sources: KIBANA/eql/eql.ts (``size: ruleParams.maxSignals``; warning when ``hits.total.value >= maxSignals``);
    Elasticsearch EQL ``size`` ("maximum number of matching events to return") and ordering ("starting with the
    earliest matches", https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-pipe-ref.html#eql-pipe-head).
    """
    result = replay(schedule(5, 9, max_signals=3, search="eql"), burst(), start=T0, end=T0 + 15 * MINUTE)
    run1, run2, run3 = result.runs[1:]
    assert run1.created == ("b0", "b1", "b2")
    assert run1.dropped == ("b3", "b4", "b5", "b6")
    assert run1.searches[0].max_signals_warning
    assert run2.created == ()
    assert run2.duplicates == ("b0", "b1", "b2")
    assert run2.dropped == ("b3", "b4", "b5", "b6")
    assert run3.events_searched == 0
    assert result.picked_up == {}
    assert result.totals.dropped == 4
    assert result.totals.dropped_lost == 4
    assert set(result.never_created) == {"b3", "b4", "b5", "b6"}


def test_search_after_max_signals_counts_only_new_alerts_so_the_next_run_picks_up() -> None:
    """Query-type rules page through hits with search_after and stop when max_signals NEW alerts are created;
    existing alerts are filtered out before the limit applies. With max_signals 3 the first run alerts b0..b2, the
    next (its window still holds the burst) skips those as duplicates and alerts b3..b5; b6 is dropped by both and
    then leaves the look-back.

    Source: KIBANA/utils/search_after_bulk_create_factory.ts (``while (toReturn.createdSignalsCount <= maxSignals)``,
    bulk create with ``maxAlerts: tuple.maxSignals - toReturn.createdSignalsCount``, break when truncated).
    """
    result = replay(schedule(5, 9, max_signals=3), burst(), start=T0, end=T0 + 15 * MINUTE)
    run1, run2 = result.runs[1:3]
    assert run1.created == ("b0", "b1", "b2")
    assert run1.dropped == ("b3", "b4", "b5", "b6")
    assert run2.duplicates == ("b0", "b1", "b2")
    assert run2.created == ("b3", "b4", "b5")
    assert run2.dropped == ("b6",)
    assert result.picked_up == {"b3": 2, "b4": 2, "b5": 2}
    assert (result.totals.dropped, result.totals.dropped_picked_up, result.totals.dropped_lost) == (4, 3, 1)
    assert result.never_created == ("b6",)


def test_alerting_framework_limit_caps_max_signals() -> None:
    """A rule's max_signals above ``xpack.alerting.rules.run.alerts.max`` is lowered to it for every search.

    Source: KIBANA/utils/utils.ts ``getRuleRangeTuples`` (``maxSignalsToUse = maxAlertsAllowed``).
    """
    result = replay(schedule(5, 5, max_signals=100, alerts_max=2), burst(), start=T0 + 5 * MINUTE, end=T0 + 5 * MINUTE)
    assert result.runs[0].created == ("b0", "b1")
    assert len(result.runs[0].dropped) == 5


def override_events() -> list[Candidate]:
    """A: ingested in run 1's window, @timestamp an hour earlier. B: no event.ingested, @timestamp in run 2's
    window. C: ingested in run 2's window, @timestamp in run 1's window."""
    return [
        hit("A", -60 * MINUTE, **{"event.ingested": at(2 * MINUTE)}),
        hit("B", 7 * MINUTE),
        hit("C", 1 * MINUTE, **{"event.ingested": at(8 * MINUTE)}),
    ]


def test_timestamp_override_with_fallback_to_timestamp() -> None:
    """With ``timestamp_override: event.ingested`` and the fallback enabled (the default), a document is in a run's
    window when its override field is in range, or when it has no override field and its @timestamp is; an event
    that has the override field is placed by it alone, whatever its @timestamp says.

    Sources: KIBANA/utils/build_events_query.ts ``buildTimeRangeFilter`` (should: range on the primary timestamp,
    or range on the secondary AND must_not exists the primary); KIBANA/create_security_rule_type_wrapper.ts
    (secondary = @timestamp unless ``timestampOverrideFallbackDisabled``); Kibana docs, "If the selected field is
    unavailable, the rule query will use the @timestamp field instead" (https://www.elastic.co/guide/en/security/
    current/rules-ui-create.html#rule-ui-advanced-params).
    """
    sched = schedule(5, 5, timestamp_override="event.ingested")
    result = replay(sched, override_events(), start=T0, end=T0 + 10 * MINUTE)
    assert result.created_by_run == {"A": 1, "C": 2, "B": 2}
    assert result.runs[1].events_searched == 1


def test_timestamp_override_without_fallback_never_searches_events_lacking_it() -> None:
    """With ``timestamp_override_fallback_disabled: true`` the range filter is on the override field only: an event
    without it is in no run's window.

    Source: KIBANA/utils/build_events_query.ts (no secondaryTimestamp: a single range on the primary timestamp).
    """
    sched = schedule(5, 5, timestamp_override="event.ingested", timestamp_override_fallback_disabled=True)
    result = replay(sched, override_events(), start=T0, end=T0 + 10 * MINUTE)
    assert result.created_by_run == {"A": 1, "C": 2}
    assert result.totals.untimed == 1
    assert result.untimed_matches == ("B",)
    assert result.never_created == ("B",)


def test_search_after_sorts_by_override_then_timestamp_missing_last() -> None:
    """The search sorts by the override field ascending, then by @timestamp; documents lacking the override sort
    after those that have it (Elasticsearch's default ``missing: _last``). With max_signals 1, the event carrying
    the override is alerted first even though the other's @timestamp is earlier. An EQL rule orders by its
    ``timestamp_field`` (@timestamp by default), so there the earlier @timestamp wins.

    Sources: KIBANA/utils/build_events_query.ts (``sort: [{[primaryTimestamp]: {order: 'asc'}},
    {[secondaryTimestamp]: {order: 'asc'}}]``); Elasticsearch sort ``missing`` ("Defaults to _last",
    https://www.elastic.co/guide/en/elasticsearch/reference/current/sort-search-results.html#_missing_values);
    KIBANA/eql/build_eql_search_request.ts (``timestamp_field: ruleParams.timestampField``).
    """
    events = [hit("no-override", 1 * MINUTE), hit("override", 2 * MINUTE, **{"event.ingested": at(3 * MINUTE)})]
    kwargs: dict[str, Any] = {"max_signals": 1, "timestamp_override": "event.ingested"}
    paged = replay(schedule(5, 5, **kwargs), events, start=T0 + 5 * MINUTE, end=T0 + 5 * MINUTE)
    assert paged.runs[0].created == ("override",)
    assert paged.runs[0].dropped == ("no-override",)
    eql = replay(schedule(5, 5, search="eql", **kwargs), events, start=T0 + 5 * MINUTE, end=T0 + 5 * MINUTE)
    assert eql.runs[0].created == ("no-override",)
    assert eql.runs[0].dropped == ("override",)


def test_downtime_adds_catch_up_windows_and_reports_the_remaining_gap() -> None:
    """Kibana down from T0+7m to T0+50m: the runs due at T0+10..T0+45 do not happen; the overdue run starts at
    T0+50m and the schedule continues from it (T0+55m). That run's gap is (50 - 5) - 6 = 39m: it adds
    min(ceil(39/5), 4) = 4 catch-up windows, each 5m further back, and reports the remaining 39 - 20 = 19m as the
    gap [T0+5m, T0+24m]. Events strictly inside it are never searched; one at T0+26m is alerted by a catch-up window.

    Sources: KIBANA/utils/utils.ts ``getGapBetweenRuns``, ``getNumCatchupIntervals`` (MAX_RULE_GAP_RATIO = 4),
    ``getCatchupTuples``, ``getRuleRangeTuples`` (``gap: {gte: previousStartedAt, lte: previousStartedAt +
    remainingGap}``); KIBANA/create_security_rule_type_wrapper.ts (the "were not queried between this rule
    execution and the last execution" error); Kibana task manager ``lib/get_next_run_at.ts`` (a late task's next
    run is one interval after it actually started).
    """
    events = [hit("g1", 10 * MINUTE), hit("g2", 20 * MINUTE), hit("caught", 26 * MINUTE), miss(21 * MINUTE)]
    result = replay(
        schedule(5, 6),
        events,
        start=T0,
        end=T0 + 55 * MINUTE,
        downtime=[(T0 + 7 * MINUTE, T0 + 50 * MINUTE)],
    )
    assert [r.started_at - T0 for r in result.runs] == [0 * MINUTE, 5 * MINUTE, 50 * MINUTE, 55 * MINUTE]
    late = result.runs[2]
    assert [s.catch_up for s in late.searches] == [True, True, True, True, False]
    assert [s.window_start - T0 for s in late.searches] == [m * MINUTE for m in (24, 29, 34, 39, 44)]
    assert late.gap is not None
    assert (late.gap.start, late.gap.end) == (T0 + 5 * MINUTE, T0 + 24 * MINUTE)
    assert "(1140000ms) were not queried" in late.gap.message()
    assert late.created == ("caught",)
    assert result.gaps == (late.gap,)
    (gap,) = [u for u in result.uncovered if u.reason == "gap"]
    assert (gap.start, gap.end, gap.events, gap.missed) == (T0 + 5 * MINUTE, T0 + 24 * MINUTE, 3, ("g1", "g2"))
    assert result.totals.gaps_reported == 1
    assert set(result.never_created) == {"g1", "g2"}


def test_short_downtime_is_covered_by_catch_up_without_a_gap() -> None:
    """Down from T0+7m to T0+30m: gap (30 - 5) - 6 = 19m, 4 catch-up windows cover it all (19 - 20 < 0): no gap
    is reported and an event in the downtime is alerted by the late run.

    Source: KIBANA/utils/utils.ts ``getRuleRangeTuples`` (remainingGap = max(gap - catchup * interval, 0)).
    """
    events = [hit("during", 12 * MINUTE)]
    result = replay(
        schedule(5, 6), events, start=T0, end=T0 + 30 * MINUTE, downtime=[(T0 + 7 * MINUTE, T0 + 30 * MINUTE)]
    )
    assert result.gaps == ()
    assert result.created_by_run == {"during": 2}
    assert [u for u in result.uncovered if u.reason == "gap"] == []


def test_interval_longer_than_look_back_leaves_unreported_holes() -> None:
    """Interval 10m over ``now-5m``: each run's gap is 10 - 5 = 5m, so Kibana adds one catch-up window, one interval
    back, which is the previous run's own window; it counts the gap as covered and reports nothing, yet
    (previous run, this run - 5m) was never searched. The replay shows the hole and the alert missed in it.

    Sources: KIBANA/utils/utils.ts ``getCatchupTuples`` (each tuple is the window shifted back by one interval);
    elastic/kibana#154963 (a window shorter than the interval leaves time un-searched).
    """
    events = [hit("seen", 7 * MINUTE), hit("in-hole", 12 * MINUTE)]
    result = replay(schedule(10, 5), events, start=T0, end=T0 + 20 * MINUTE)
    assert result.gaps == ()
    assert [len(r.searches) for r in result.runs] == [1, 2, 2]
    assert [s.window_start - T0 for s in result.runs[2].searches] == [5 * MINUTE, 15 * MINUTE]
    holes = [(u.start - T0, u.end - T0, u.missed) for u in result.uncovered if u.reason == "gap" and u.start and u.end]
    assert holes == [(0 * MINUTE, 5 * MINUTE, ()), (10 * MINUTE, 15 * MINUTE, ("in-hole",))]
    assert result.never_created == ("in-hole",)
    assert result.created_by_run == {"seen": 1}


def test_default_bounds_cover_every_event() -> None:
    """Without start/end the first run ends on the earliest event and runs continue until one has started at or
    after the latest: with a look-back at least as long as the interval, every match is alerted once."""
    events = [hit(f"x{i}", i * 7 * MINUTE) for i in range(10)] + [miss(3 * MINUTE)]
    result = replay(schedule(5, 6), events)
    assert result.runs[0].started_at == T0
    assert result.runs[-1].started_at >= T0 + 63 * MINUTE
    assert result.totals.created == 10
    assert result.uncovered == ()
    assert result.totals.events == 11


def test_candidates_computes_alert_ids_only_for_matches() -> None:
    """Events plus a predicate: the alert id function runs only on matching events."""
    seen: list[Mapping[str, Any]] = []

    def alert_id(event: Mapping[str, Any]) -> str:
        seen.append(event)
        return str(event["n"])

    events = [{"@timestamp": at(i * MINUTE), "n": i} for i in range(4)]
    result = list(candidates(events, lambda e: e["n"] % 2 == 0, alert_id))
    assert [c.alert_id for c in result] == ["0", None, "2", None]
    assert [e["n"] for e in seen] == [0, 2]


def test_epoch_millis_reads_dates_as_elasticsearch_date_fields() -> None:
    """The ``date`` type stores milliseconds since the epoch: finer fractions are truncated; numbers are epoch
    milliseconds; a date without a zone is UTC; a multi-valued field sorts by its earliest value; anything else is
    not a date. Source: https://www.elastic.co/guide/en/elasticsearch/reference/current/date.html ("internally,
    dates are converted to UTC ... and stored as a long number representing milliseconds-since-the-epoch").
    """
    base = epoch_millis("2024-03-01T12:00:00Z")
    assert base == int(T0.timestamp() * 1000)
    assert epoch_millis("2024-03-01T12:00:00.1239999Z") == base + 123
    assert epoch_millis("2024-03-01 12:00:00.123") == base + 123
    assert epoch_millis("2024-03-01T13:00:00+01:00") == base
    assert epoch_millis(base) == base
    assert epoch_millis(["2024-03-01T12:00:01Z", "2024-03-01T12:00:00Z"]) == base
    assert epoch_millis(T0) == base
    for not_a_date in (None, "yesterday", True, float("nan"), {"a": 1}):
        assert epoch_millis(not_a_date) is None


def test_matching_event_without_alert_id_is_refused() -> None:
    with pytest.raises(ValueError, match="no alert id"):
        replay(schedule(), [Candidate({"@timestamp": at(MINUTE)}, True, None)])


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=120 * 60), min_size=1, max_size=40),
    interval=st.integers(min_value=1, max_value=10),
    extra=st.integers(min_value=0, max_value=5),
    max_signals=st.integers(min_value=1, max_value=5),
    search=st.sampled_from(["eql", "search_after"]),
)
def test_replay_invariants(offsets: list[int], interval: int, extra: int, max_signals: int, search: str) -> None:
    """Whatever the stream: an alert is created at most once; every match is either created or reported never
    created; with a look-back at least the interval and an unlimited max_signals, nothing is missed
    (Kibana docs: the additional look-back "ensures there are no missing alerts when a rule does not run exactly
    at its scheduled time"; rules-ui-create.html#rule-schedule).
    """
    events = [hit(f"s{i}", timedelta(seconds=s)) for i, s in enumerate(offsets)]
    limited = replay(schedule(interval, interval + extra, max_signals=max_signals, search=search), events)
    created = [a for run in limited.runs for a in run.created]
    assert len(created) == len(set(created))
    assert set(created) | set(limited.never_created) == {f"s{i}" for i in range(len(offsets))}
    assert set(created).isdisjoint(limited.never_created)
    assert limited.totals.dropped == limited.totals.dropped_picked_up + limited.totals.dropped_lost
    unlimited = replay(schedule(interval, interval + extra, max_signals=1000, search=search), events)
    assert unlimited.never_created == ()
    assert unlimited.totals.duplicates_skipped >= 0


def test_alert_documents_replay_like_their_source_events() -> None:
    """Alerts from the hunt pipeline carry the source event's time in ``kibana.alert.original_time`` (their own
    @timestamp is the detection time) and the override field as the event had it: replaying the alerts gives the
    same runs as replaying the events with their alert ids.

    Source: Kibana alert schema, ``kibana.alert.original_time`` ("the value of @timestamp of the source event",
    https://www.elastic.co/guide/en/security/current/alert-schema.html).
    """
    rule = Rule(
        rule_id="r-override",
        name="override",
        description="d",
        type="query",
        language="kuery",
        query="*",
        ir=TRUE,
        source=RuleSource(path="r.toml"),
        interval="5m",
        from_="now-6m",
        max_signals=2,
        timestamp_override="event.ingested",
    )
    sched = RuleSchedule.from_rule(rule)
    events: list[dict[str, Any]] = [
        {"@timestamp": at(i * MINUTE), "event.ingested": at((i + 4) * MINUTE), "process.pid": i} for i in range(6)
    ] + [{"@timestamp": at(i * MINUTE + 30 * timedelta(seconds=1)), "process.pid": 100 + i} for i in range(6)]
    detected = T0 + 60 * MINUTE
    alerts = [build_alert(rule, e, origin=None, detected_at=detected) for e in events]
    from_alerts = replay(sched, [alert_candidate(a, sched) for a in alerts], start=T0, end=T0 + 20 * MINUTE)
    from_events = replay(
        sched,
        [Candidate(e, True, alert_uuid(rule, event_identity(e))) for e in events],
        start=T0,
        end=T0 + 20 * MINUTE,
    )
    assert from_alerts.runs == from_events.runs
    assert from_alerts.totals == from_events.totals
    assert from_alerts.totals.dropped > 0


class FixedSearch:
    """A rule search that finds the same alert ids in every window and records what was written."""

    def __init__(self, strategy: Any, found: list[str]) -> None:
        self.strategy = strategy
        self.found = found
        self.written: list[tuple[int, tuple[str, ...]]] = []

    def search(self, window: Window) -> WindowResult:
        return WindowResult(matches=len(self.found), found=list(self.found))

    def created(self, window: Window, alert_ids: Sequence[str]) -> None:
        self.written.append((window.run_index, tuple(alert_ids)))


def test_aggregation_cuts_before_duplicates_and_search_after_after() -> None:
    """Threshold buckets are cut to max_signals before alerts are written, so already-written ones use up the
    budget; search_after paging (query and new_terms rules) skips existing alerts first. The rule search is told
    what was written, run by run.

    Sources: KIBANA/threshold/find_threshold_signals.ts (``buckets.slice(0, maxSignals)``);
    KIBANA/new_terms/create_new_terms_alert_type.ts (``maxAlerts: params.maxSignals - result.createdSignalsCount``).
    """
    times = [epoch_millis(at(MINUTE)) or 0]
    sliced = FixedSearch("aggregation", ["a", "b", "c"])
    result = replay_search(schedule(max_signals=2), sliced, times, T0 + MINUTE, T0 + 6 * MINUTE)
    assert [run.created for run in result.runs] == [("a", "b"), ()]
    assert result.runs[1].duplicates == ("a", "b")
    assert result.totals.dropped_lost == 1
    assert sliced.written == [(0, ("a", "b")), (1, ())]
    paged = FixedSearch("search_after", ["a", "b", "c"])
    result = replay_search(schedule(max_signals=2), paged, times, T0 + MINUTE, T0 + 6 * MINUTE)
    assert [run.created for run in result.runs] == [("a", "b"), ("c",)]
    assert result.totals.dropped_picked_up == 1


def test_threshold_rules_aggregate() -> None:
    rule = Rule(
        rule_id="t",
        name="n",
        description="d",
        type="threshold",
        language="kuery",
        query="*",
        ir=TRUE,
        source=RuleSource(path="x"),
        threshold={"field": "host.name", "value": 2},
    )
    assert RuleSchedule.from_rule(rule).search == "aggregation"
