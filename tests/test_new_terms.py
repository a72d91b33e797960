"""new_terms rules as Kibana runs them: per window, the value combinations first seen after the window's start within
the history window alert once, on their earliest event.

Kibana sources cited as NT/<file> live in elastic/kibana under ``x-pack/solutions/security/plugins/
security_solution/server/lib/detection_engine/rule_types/new_terms/``.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.alerts.document import build_alert
from shellwatch.query.ir import TRUE
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.schedule.new_terms import (
    MAX_COMBINATIONS,
    MemoryNewTermsStore,
    NewTermsEvent,
    NewTermsSearch,
    NewTermsSettings,
    NewTermsState,
    SqliteNewTermsStore,
    combinations,
    first_appearances,
    terms_key,
)
from shellwatch.schedule.runs import RuleSchedule, replay_search

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
FIELDS = ("host.id", "process.command_line")


def ms(offset: timedelta) -> int:
    return int((T0 + offset - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def make_rule(history: str = "now-7d", max_signals: int = 100, **kwargs: Any) -> Rule:
    return Rule(
        rule_id="nt-webshell",
        name="web shell new terms",
        description="d",
        type="new_terms",
        language="kuery",
        query="process.parent.name:w3wp.exe",
        ir=TRUE,
        source=RuleSource(path="test"),
        interval="5m",
        from_="now-9m",
        max_signals=max_signals,
        new_terms_fields=FIELDS,
        history_window_start=history,
        **kwargs,
    )


def event(offset: timedelta, host: Any, command: Any, n: int) -> dict[str, Any]:
    stamp = (T0 + offset).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"@timestamp": stamp, "host.id": host, "process.command_line": command, "event.id": f"e{n}"}


def alerts_of(rule: Rule, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [build_alert(rule, e, origin=None, detected_at=T0) for e in events]


def backtest(
    rule: Rule, events: list[dict[str, Any]], start: datetime | None = None, end: datetime | None = None
) -> tuple[Any, NewTermsSearch]:
    schedule = RuleSchedule.from_rule(rule)
    search = NewTermsSearch(rule, alerts_of(rule, events), schedule)
    return replay_search(schedule, search, search.times, start, end, untimed=search.untimed), search


def created_terms(result: Any, search: NewTermsSearch) -> list[tuple[Any, ...]]:
    return [search.found[a].terms for a in sorted(result.created_by_run, key=lambda a: result.created_by_run[a])]


def webshell_stream() -> list[dict[str, Any]]:
    """Two hosts; whoami and ipconfig on host h1 and whoami on h2, each repeated every 10 minutes for 3 hours; a
    week and a day later whoami on h1 again; on day 3 a new command on h2."""
    events: list[dict[str, Any]] = []
    for minute in range(0, 180, 10):
        events.append(event(minute * MINUTE, "h1", "cmd /c whoami", len(events)))
        events.append(event((minute + 1) * MINUTE, "h1", "cmd /c ipconfig", len(events)))
        events.append(event((minute + 2) * MINUTE, "h2", "cmd /c whoami", len(events)))
    events.append(event(3 * DAY, "h2", "cmd /c net user", len(events)))
    events.append(event(3 * DAY + 5 * MINUTE, "h2", "cmd /c net user", len(events)))
    events.append(event(8 * DAY, "h1", "cmd /c whoami", len(events)))
    return events


def test_fires_once_per_new_pair_quiet_on_repeats_and_again_after_ageing_out() -> None:
    """The seed rule's new_terms version: one alert per new (host.id, command line) pair, none for its repeats in
    later runs (they have history before the window), one again when the pair was last seen more than the history
    window before.

    Sources: NT/README.md ("If a term is found between the times history_window_start and from then it will not be
    classified as a new term"); NT/build_new_terms_aggregation.ts (``params.first_seen_value >
    params.start_time``); Elastic's persistence_webshell_detection new_terms rule (history_window_start now-7d).
    """
    rule = make_rule()
    result, search = backtest(rule, webshell_stream())
    assert created_terms(result, search) == [
        ("h1", "cmd /c whoami"),
        ("h1", "cmd /c ipconfig"),
        ("h2", "cmd /c whoami"),
        ("h2", "cmd /c net user"),
        ("h1", "cmd /c whoami"),
    ]
    # Each alert's source is the pair's earliest event of its appearance.
    sources = sorted((search.found[a].event.effective, search.found[a].terms) for a in result.created_by_run)
    assert sources[0] == (ms(timedelta(0)), ("h1", "cmd /c whoami"))
    assert sources[-1] == (ms(8 * DAY), ("h1", "cmd /c whoami"))
    # The first run to see a pair alerts; the run after (9-minute look-back over 5-minute runs) finds the same first
    # event again: the same alert id, skipped as a duplicate.
    assert result.totals.created == 5
    assert result.totals.duplicates_skipped > 0
    document = search.alert(next(iter(result.created_by_run)))
    assert document["kibana.alert.new_terms"] == ["h1", "cmd /c whoami"]
    assert document["kibana.alert.uuid"] == next(iter(result.created_by_run))


def test_a_week_minus_a_day_is_still_history() -> None:
    """A pair last seen 6 days earlier is in the 7-day history: no alert."""
    rule = make_rule()
    events = [event(timedelta(0), "h1", "whoami", 0), event(6 * DAY, "h1", "whoami", 1)]
    result, search = backtest(rule, events)
    assert created_terms(result, search) == [("h1", "whoami")]


def settings_for(rule: Rule) -> NewTermsSettings:
    return NewTermsSettings.from_rule(rule)


def nt_event(offset: timedelta, terms: tuple[Any, ...], seq: int) -> NewTermsEvent:
    return NewTermsEvent(ms(offset), seq, f"id{seq}", (terms,), None)


def test_window_start_and_history_start_bounds() -> None:
    """History is ``[history_window_start, from]``, both inclusive (a range ``gte``/``lte``, and new means first seen
    strictly after ``from``); ``history_window_start`` is resolved with now = the window's end.

    Sources: NT/create_new_terms_alert_type.ts (``parseDateString({ date: historyWindowStart, forceNow:
    tuple.to })``, phase 2 searches ``from: parsedHistoryWindowSize`` to ``tuple.to``);
    NT/build_new_terms_aggregation.ts (``first_seen_value > start_time``).
    """
    rule = make_rule(history="now-1h")
    low, high = ms(timedelta(0)), ms(9 * MINUTE)
    history_start = high - 3_600_000
    cases = {
        "at window start": (low, False),
        "just after window start": (low + 1, True),
        "at history start": (history_start, False),
        "just before history start": (history_start - 1, True),
    }
    for name, (previous, expect_new) in cases.items():
        state = NewTermsState(rule, MemoryNewTermsStore())
        earlier = NewTermsEvent(previous, 0, "a", (("h", "c"),), None)
        current = NewTermsEvent(ms(5 * MINUTE), 1, "b", (("h", "c"),), None)
        state.observe([earlier, current])
        found = state.search([earlier, current], low, high)
        assert bool(found) is expect_new, name
        if found:
            expected_source = earlier if low <= previous else current
            assert found[0].event is expected_source, name


def test_combinations_expand_arrays_skip_missing_and_are_capped() -> None:
    """A composite aggregation gives each combination of a multi-valued field's values (deduplicated, in key order);
    an event missing a field has none; shellwatch stops at MAX_COMBINATIONS per event (Kibana 8.4-8.8's runtime field
    ``emitLimit = 100``).

    Sources: NT/multi_terms_composite.ts; NT/README.md ("A single source document may have multiple new terms if the
    source document contains an array of values ... multiple alerts will be generated from the single source
    document"); NT/utils.ts of Kibana 8.8 (``int emitLimit = 100``).
    """
    flat = {"host.id": ["h2", "h1", "h2"], "process.command_line": ["b", "a", None]}
    assert combinations(flat, FIELDS) == (("h1", "a"), ("h1", "b"), ("h2", "a"), ("h2", "b"))
    assert combinations({"host.id": "h1"}, FIELDS) == ()
    assert combinations({"host.id": "h1", "process.command_line": []}, FIELDS) == ()
    assert combinations({"host.id": "h1", "process.command_line": None}, FIELDS) == ()
    many = {"host.id": [f"h{i:03}" for i in range(50)], "process.command_line": [f"c{i:03}" for i in range(50)]}
    capped = combinations(many, FIELDS)
    assert len(capped) == MAX_COMBINATIONS
    assert capped[0] == ("h000", "c000")
    # Numbers keep their type (and order numerically, as a numeric field's terms do).
    assert combinations({"n": [10, 9]}, ("n",)) == ((9,), (10,))


def test_one_event_with_two_new_commands_makes_two_alerts() -> None:
    """One alert per new term, the same source event for both; the ids differ because they hash the terms.

    Source: NT/wrap_new_terms_alerts.ts (``objectHash([_index, _id, _version, rule, newTerms])``).
    """
    rule = make_rule()
    result, search = backtest(rule, [event(timedelta(0), "h1", ["whoami", "hostname"], 0)])
    assert sorted(created_terms(result, search)) == [("h1", "hostname"), ("h1", "whoami")]
    ids = list(result.created_by_run)
    assert len(set(ids)) == 2
    assert search.found[ids[0]].event is search.found[ids[1]].event


def test_max_signals_takes_the_first_combinations_in_key_order() -> None:
    """Buckets come in composite key order; alerts are created until max_signals new ones exist, the rest dropped
    (a later run whose window still holds their first event picks them up, duplicates not using up its budget).

    Sources: NT/create_new_terms_alert_type.ts (``maxAlerts: params.maxSignals - result.createdSignalsCount``);
    Elasticsearch composite aggregation docs (buckets sorted by their key's natural order).
    """
    rule = make_rule(max_signals=2)
    events = [event(timedelta(seconds=s), "h1", command, s) for s, command in enumerate(["d", "c", "b", "a", "e"])]
    result, search = backtest(rule, events, start=T0 + MINUTE, end=T0 + 6 * MINUTE)
    first_run = result.runs[0]
    assert [search.found[a].terms[1] for a in first_run.created] == ["a", "b"]
    assert len(first_run.dropped) == 3
    # The next run's window still holds the events: it creates the next two in key order; the fifth is lost.
    assert [search.found[a].terms[1] for a in result.runs[1].created] == ["c", "d"]
    assert result.totals.dropped_picked_up == 2
    assert result.totals.dropped_lost == 1


def test_history_search_counts_events_no_window_searched() -> None:
    """Kibana's history is a search over the index, not a memory of windows: an event in a gap between runs (Kibana
    down for a day) still makes its pair old for later runs.

    Source: NT/create_new_terms_alert_type.ts (phase 2 searches ``[historyWindowStart, to]`` of the index).
    """
    rule = make_rule()
    events = [event(timedelta(0), "h1", "whoami", 0), event(DAY, "h1", "whoami", 1)]
    schedule = RuleSchedule.from_rule(rule)
    search = NewTermsSearch(rule, alerts_of(rule, events), schedule)
    down = [(T0 + 10 * MINUTE, T0 + DAY - 5 * MINUTE)]
    result = replay_search(schedule, search, search.times, downtime=down)
    assert result.totals.gaps_reported == 1
    assert result.totals.created == 1


# ---------------------------------------------------------------------------------------------------------------
# Live: the store across runs and restarts


def live_runs(
    rule: Rule, events: list[dict[str, Any]], db: Path | None, restart_every: int, *, kill: bool = False
) -> list[str]:
    """Run the rule as ``watch`` would: each run observes the events read since the last one (those not later than
    its start), searches its window and writes the new alert ids; the SQLite state is committed per run, and the
    connection is dropped and reopened every ``restart_every`` runs. With ``kill``, each restart first loses a
    run's uncommitted work (the process died mid-run) and that run is done again."""
    schedule = RuleSchedule.from_rule(rule)
    alerts = alerts_of(rule, events)
    search_events = NewTermsSearch(rule, alerts, schedule).matches.events
    interval = 5 * 60_000
    lookback = 9 * 60_000
    connection: sqlite3.Connection | None = None

    def open_state() -> tuple[NewTermsState, sqlite3.Connection | None]:
        if db is None:
            return NewTermsState(rule, memory), None
        conn = sqlite3.connect(db, isolation_level="DEFERRED")
        conn.execute("CREATE TABLE IF NOT EXISTS test_alerts (id TEXT PRIMARY KEY, run INTEGER)")
        conn.execute("CREATE TABLE IF NOT EXISTS test_progress (observed INTEGER)")
        return NewTermsState(rule, SqliteNewTermsStore(conn)), conn

    memory = MemoryNewTermsStore()
    written: list[str] = []
    observed = 0
    killed: set[int] = set()
    state, connection = open_state()
    started = search_events[0].effective
    last = search_events[-1].effective
    index = 0
    while started <= last + lookback:
        if connection is not None:
            row = connection.execute("SELECT observed FROM test_progress").fetchone()
            observed = row[0] if row else 0
            written = [r[0] for r in connection.execute("SELECT id FROM test_alerts ORDER BY run, rowid")]
        arrived = [e for e in search_events[observed:] if e.effective <= started]
        state.observe(arrived)
        observed += len(arrived)
        window = [e for e in search_events[:observed] if started - lookback <= e.effective <= started]
        found = state.search(window, started - lookback, started)
        new = [n.alert_id for n in found if n.alert_id not in written][: rule.max_signals]
        state.prune(started)
        if connection is not None:
            connection.executemany("INSERT INTO test_alerts VALUES (?, ?)", [(a, index) for a in new])
            connection.execute("DELETE FROM test_progress")
            connection.execute("INSERT INTO test_progress VALUES (?)", (observed,))
        if kill and connection is not None and index % restart_every == restart_every - 1 and index not in killed:
            killed.add(index)
            connection.close()  # dies before committing: this run's work is lost and done again
            state, connection = open_state()
            continue
        written.extend(new)
        if connection is not None:
            connection.commit()
            if index % restart_every == restart_every - 1:
                connection.close()
                state, connection = open_state()
        index += 1
        started += interval
    if connection is not None:
        written = [r[0] for r in connection.execute("SELECT id FROM test_alerts ORDER BY run, rowid")]
        connection.close()
    return written


def hourly_stream() -> list[dict[str, Any]]:
    """The webshell stream for a one-hour history window: repeats for 3 hours, a new pair 30 minutes later, the
    first pair again after 75 minutes of silence."""
    events: list[dict[str, Any]] = []
    for minute in range(0, 180, 10):
        events.append(event(minute * MINUTE, "h1", "cmd /c whoami", len(events)))
        events.append(event((minute + 1) * MINUTE, "h1", "cmd /c ipconfig", len(events)))
        events.append(event((minute + 3) * MINUTE, "h2", "cmd /c whoami", len(events)))
    events.append(event(200 * MINUTE, "h2", "cmd /c net user", len(events)))
    events.append(event(245 * MINUTE, "h1", "cmd /c whoami", len(events)))
    return events


def test_live_runs_match_the_backtest_in_memory_and_through_sqlite_restarts(tmp_path: Path) -> None:
    """The store-based history gives, run by run, the alerts of Kibana's search-based history: in memory, in a
    SQLite file reopened every 7 runs, and when every 5th run dies before committing and is done again."""
    rule = make_rule(history="now-1h")
    stream = hourly_stream()
    result, _search = backtest(rule, stream)
    expected = sorted(result.created_by_run)
    assert created_terms(result, _search) == [
        ("h1", "cmd /c whoami"),
        ("h1", "cmd /c ipconfig"),
        ("h2", "cmd /c whoami"),
        ("h2", "cmd /c net user"),
        ("h1", "cmd /c whoami"),
    ]
    assert sorted(live_runs(rule, stream, None, 10**9)) == expected
    restarted = live_runs(rule, stream, tmp_path / "state.db", 7)
    assert sorted(restarted) == expected
    assert len(restarted) == len(set(restarted))
    killed = live_runs(rule, stream, tmp_path / "killed.db", 5, kill=True)
    assert sorted(killed) == expected
    assert len(killed) == len(set(killed))


def test_sqlite_store_writes_only_inside_the_callers_transaction(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = sqlite3.connect(path)
    store = SqliteNewTermsStore(first)
    first.commit()
    store.record("s", [("k", 10)], span=5)
    first.close()  # never committed: the sighting is gone
    second = sqlite3.connect(path)
    assert SqliteNewTermsStore(second).seen("s", ["k"], 0, 100) == set()
    SqliteNewTermsStore(second).record("s", [("k", 10)], span=5)
    second.commit()
    second.close()
    third = sqlite3.connect(path)
    assert SqliteNewTermsStore(third).seen("s", ["k"], 5, 10) == {"k"}
    third.close()


sightings_strategy = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 200)), max_size=40)


@given(batches=st.lists(sightings_strategy, min_size=1, max_size=4), span=st.integers(1, 50), data=st.data())
@settings(max_examples=150, deadline=None)
def test_bursts_answer_like_a_search_over_every_sighting(
    batches: list[list[tuple[str, int]]], span: int, data: st.DataObject
) -> None:
    """Whatever the order sightings arrive in, "a sighting in [start, start + span]" from the bursts equals the
    answer over every sighting, in memory and in SQLite."""
    memory = MemoryNewTermsStore()
    connection = sqlite3.connect(":memory:")
    sql = SqliteNewTermsStore(connection)
    for batch in batches:
        memory.record("s", batch, span)
        sql.record("s", batch, span)
    every = [s for batch in batches for s in batch]
    for _ in range(10):
        start = data.draw(st.integers(-60, 260))
        truth = {k for k, t in every if start <= t <= start + span}
        assert memory.seen("s", "abc", start, start + span) == truth
        assert sql.seen("s", "abc", start, start + span) == truth
    before = data.draw(st.integers(0, 200))
    assert memory.prune("s", before) == sql.prune("s", before)
    start = data.draw(st.integers(before, 260))
    truth = {k for k, t in every if start <= t <= start + span}
    assert memory.seen("s", "abc", start, start + span) == sql.seen("s", "abc", start, start + span) == truth
    connection.close()


def test_a_busy_pair_is_one_burst() -> None:
    store = MemoryNewTermsStore()
    store.record("s", [("k", t) for t in range(0, 10_000, 7)], span=10)
    store.record("s", [("k", 50_000)], span=10)
    assert store.bursts("s", "k") == [(0, 9996), (50_000, 50_000)]
    assert store.prune("s", 10_000) == 1
    assert store.bursts("s", "k") == [(50_000, 50_000)]


def test_history_must_start_before_from() -> None:
    """Source: NT/utils.ts ``validateHistoryWindowStart``."""
    with pytest.raises(ValueError, match="must be earlier than 'from'"):
        NewTermsSettings.from_rule(make_rule(history="now-9m"))


# ---------------------------------------------------------------------------------------------------------------
# Hunt


def test_hunt_first_appearances_in_time_order_whatever_the_input_order() -> None:
    """A hunt has no schedule: in time order, a pair alerts when unseen for the history span before it."""
    rule = make_rule()
    stream = webshell_stream()
    alerts = alerts_of(rule, stream)
    expected = [a["kibana.alert.new_terms"] for a in first_appearances(rule, alerts)]
    assert expected == [
        ["h1", "cmd /c whoami"],
        ["h1", "cmd /c ipconfig"],
        ["h2", "cmd /c whoami"],
        ["h2", "cmd /c net user"],
        ["h1", "cmd /c whoami"],
    ]
    shuffled = alerts[:]
    random.Random(7).shuffle(shuffled)
    again = list(first_appearances(rule, shuffled))
    assert [a["kibana.alert.uuid"] for a in again] == [a["kibana.alert.uuid"] for a in first_appearances(rule, alerts)]
    assert again[0]["kibana.alert.original_time"] == stream[0]["@timestamp"]
    # The hunt's alerts are the backtest's: the same first events, the same ids.
    result, _ = backtest(rule, stream)
    assert sorted(a["kibana.alert.uuid"] for a in again) == sorted(result.created_by_run)


def test_hunt_ties_go_to_the_earlier_input_and_untimed_alerts_are_reported() -> None:
    rule = make_rule()
    twins = [event(timedelta(0), "h1", "whoami", n) for n in range(2)]
    alerts = alerts_of(rule, twins)
    untimed = build_alert(rule, {"host.id": "h1", "process.command_line": "x"}, origin=None, detected_at=T0)
    skipped: list[Any] = []
    out = list(first_appearances(rule, [alerts[1], untimed, alerts[0]], on_untimed=skipped.append))
    assert len(out) == 1
    assert out[0]["event"]["id"] == "e1"  # the earlier input, not the earlier event id
    assert skipped == [untimed]
    assert terms_key(("h1", "whoami")) == '["h1","whoami"]'
