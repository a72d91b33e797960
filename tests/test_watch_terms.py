"""new_terms, threshold and alert suppression in ``shellwatch watch``: state in the watch database, across runs,
restarts and kill -9.

Events are Elastic Defend process starts (ECS NDJSON: host.id, process.command_line, process.args, parent
w3wp.exe, event.ingested and @timestamp). Sources for the semantics:

- new_terms: elastic/kibana ``rule_types/new_terms/`` (a combination of ``new_terms_fields`` alerts when it has no
  sighting in the history window before the search window), measured in event time by the watcher as the hunt
  measures it (``shellwatch.schedule.new_terms.first_appearances``): new when no sighting in ``[t - 7d, t)`` for
  ``history_window_start: now-7d``; ``t`` is the rule's ``timestamp_override`` (``event.ingested`` for the seed
  rule), as Kibana's range filter reads it (``build_events_query.ts``);
- threshold: elastic/kibana ``rule_types/threshold/`` (``threshold.ts``, ``get_threshold_bucket_filters.ts``: a
  group alerted before counts only events later than its last alert's time, ``bulk_create_threshold_signals.ts``);
- suppression: Elastic's "Suppress detection alerts" docs (per rule execution / per time period, docs_count).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import hunt
from shellwatch.rules.loader import load_bundled_rules, load_rule_file
from shellwatch.rules.model import Rule
from shellwatch.sinks.base import AlertBatch
from shellwatch.watch.runner import Watcher
from shellwatch.watch.state import WatchState
from test_watch_runner import FakeClock, RecordingSink, sink_ids

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shell_start(moment: datetime, host: str, command: str, *, ingested: datetime | None = None) -> dict[str, Any]:
    """An Elastic Defend process start: w3wp.exe spawning ``cmd.exe /c <command>`` on host ``host``."""
    args = ["cmd.exe", "/c", *command.split()]
    return {
        "@timestamp": iso(moment),
        "agent": {"type": "endpoint"},
        "data_stream": {"dataset": "endpoint.events.process", "namespace": "default", "type": "logs"},
        "event": {
            "action": "start",
            "category": ["process"],
            "dataset": "endpoint.events.process",
            "ingested": iso(ingested if ingested is not None else moment + timedelta(seconds=2)),
            "kind": "event",
            "module": "endpoint",
            "type": ["start"],
        },
        "host": {"id": f"id-{host}", "name": host.upper(), "os": {"type": "windows", "family": "windows"}},
        "process": {
            "name": "cmd.exe",
            "executable": "C:\\Windows\\System32\\cmd.exe",
            "command_line": " ".join(args),
            "args": args,
            "pid": 4000 + int(moment.timestamp()) % 1000,
            "parent": {"name": "w3wp.exe", "executable": "C:\\Windows\\System32\\inetsrv\\w3wp.exe", "pid": 812},
        },
        "user": {"name": "IIS APPPOOL\\DefaultAppPool"},
    }


def append(path: Path, events: list[dict[str, Any]]) -> None:
    with path.open("ab") as file:
        file.write(b"".join(json.dumps(event).encode() + b"\n" for event in events))


def new_terms_rule() -> Rule:
    """The new_terms version of the seed rule, as the bundled pack carries it."""
    found = [rule for rule in load_bundled_rules().rules if rule.type == "new_terms"]
    if not found:
        pytest.skip("the bundled pack carries no new_terms rule")
    (rule,) = found
    assert rule.new_terms_fields == ("host.id", "process.command_line")
    assert (rule.history_window_start, rule.timestamp_override) == ("now-7d", "event.ingested")
    return rule


def pairs(sink: RecordingSink) -> list[tuple[str, str]]:
    return [tuple(alert["kibana.alert.new_terms"]) for batch in sink.batches for alert in batch.alerts]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[WatchState]:
    opened = WatchState.open(tmp_path / "state")
    yield opened
    opened.close()


# ----------------------------------------------------------------------------------------------------- new_terms


def test_new_terms_fires_once_per_new_pair_stays_quiet_on_repeats_and_fires_again_after_seven_days(
    tmp_path: Path,
) -> None:
    """Runs over an appended log, with a restart (state reopened) in between: each (host.id, command_line) pair
    alerts on its first event only, repeats within 7 days are quiet whatever run reads them, and a pair silent for
    more than 7 days of event time alerts again. The alert carries kibana.alert.new_terms; the watcher's alert ids
    equal a one-shot hunt's over the finished log (the same first appearances)."""
    rule = new_terms_rule()
    log = tmp_path / "agent.ndjson"
    clock = FakeClock()
    sink = RecordingSink()

    def run_once() -> list[tuple[str, str]]:
        state = WatchState.open(tmp_path / "state")
        try:
            watcher = Watcher([str(log)], RuleSet([rule]), state, [sink], clock_ms=clock)
            before = len(pairs(sink))
            watcher.ingest()
            watcher.run_rules(force=True)
            watcher.deliver()
            clock.advance(5)
            return pairs(sink)[before:]
        finally:
            state.close()

    append(log, [
        shell_start(T0, "web01", "whoami"),
        shell_start(T0 + MINUTE, "web01", "whoami"),
        shell_start(T0 + 2 * MINUTE, "web01", "net user"),
        shell_start(T0 + 3 * MINUTE, "web02", "whoami"),
        shell_start(T0 + 4 * MINUTE, "web01", "whoami"),
    ])  # fmt: skip
    assert sorted(run_once()) == [
        ("id-web01", "cmd.exe /c net user"),
        ("id-web01", "cmd.exe /c whoami"),
        ("id-web02", "cmd.exe /c whoami"),
    ]
    append(log, [shell_start(T0 + DAY, "web01", "whoami"), shell_start(T0 + DAY, "web02", "ipconfig")])
    assert run_once() == [("id-web02", "cmd.exe /c ipconfig")]
    append(log, [shell_start(T0 + 6 * DAY, "web01", "whoami")])
    assert run_once() == []
    # Day 8: web01 "net user" was last seen on day 0 (8 days ago): new again; web01 whoami was seen on day 6.
    append(log, [shell_start(T0 + 8 * DAY, "web01", "net user"), shell_start(T0 + 8 * DAY, "web01", "whoami")])
    assert run_once() == [("id-web01", "cmd.exe /c net user")]

    alerts = [alert for batch in sink.batches for alert in batch.alerts]
    assert all(alert["kibana.alert.rule.type"] == "new_terms" for alert in alerts)
    hunted = {alert["kibana.alert.uuid"] for alert in hunt([str(log)], RuleSet([rule]), workers=1)}
    assert set(sink.ids()) == hunted
    assert len(sink.ids()) == len(hunted) == 5


def test_new_terms_history_is_measured_on_the_timestamp_override_to_the_millisecond(
    tmp_path: Path, state: WatchState
) -> None:
    """``H = to - history_window_start`` = 7 days on event.ingested (the seed rule's timestamp_override), not on
    @timestamp nor on the run clock: a pair seen again exactly 7 days later is still in the window ([t - 7d, t)
    holds the earlier sighting); 7 days and 1 ms later it is new. @timestamps 30 days apart change nothing."""
    rule = new_terms_rule()
    log = tmp_path / "agent.ndjson"
    base = T0 + timedelta(seconds=2)
    append(log, [
        shell_start(T0, "web01", "whoami", ingested=base),
        shell_start(T0 + 30 * DAY, "web01", "whoami", ingested=base + 7 * DAY),
        shell_start(T0, "web02", "whoami", ingested=base),
        shell_start(T0, "web02", "whoami", ingested=base + 7 * DAY + timedelta(milliseconds=1)),
    ])  # fmt: skip
    sink = RecordingSink()
    watcher = Watcher([str(log)], RuleSet([rule]), state, [sink], clock_ms=FakeClock())
    watcher.ingest()
    (summary,) = watcher.run_rules()
    watcher.deliver()
    assert summary.matches == 4
    assert Counter(pairs(sink)) == {("id-web01", "cmd.exe /c whoami"): 1, ("id-web02", "cmd.exe /c whoami"): 2}


def test_new_terms_history_is_fed_at_ingestion_so_a_late_run_sees_every_event(
    tmp_path: Path, state: WatchState
) -> None:
    """Events read in several chunks before one run: the history holds all of them (observed with their read
    position), and the run alerts the earliest event of each pair, whatever the order of arrival."""
    rule = new_terms_rule()
    log = tmp_path / "agent.ndjson"
    sink = RecordingSink()
    watcher = Watcher([str(log)], RuleSet([rule]), state, [sink], clock_ms=FakeClock())
    append(log, [shell_start(T0 + 3 * MINUTE, "web01", "whoami")])
    watcher.ingest()
    append(log, [shell_start(T0 + MINUTE, "web01", "whoami")])  # earlier event, read later
    watcher.ingest()
    rows = state.connection.execute("SELECT count(*) FROM new_terms_seen").fetchone()[0]
    assert rows == 1  # one burst for the pair, both sightings in it
    (summary,) = watcher.run_rules()
    watcher.deliver()
    assert summary.created == 1
    (batch,) = sink.batches
    (alert,) = batch.alerts
    assert alert["event"]["ingested"] == iso(T0 + MINUTE + timedelta(seconds=2))


def _watch_command(log: Path, state: Path, alerts: Path, rules: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "shellwatch", "watch", str(log), "--rules", rules, "--state", str(state),
        "-o", str(alerts), "--poll", "0.05", "--run-every", "0.2", *extra,
    ]  # fmt: skip


def _stream(rng: random.Random, count: int, start: datetime) -> Iterator[dict[str, Any]]:
    """Events over ~16 days of event time, in time order, drawn from a few hosts and commands: many repeats, pairs
    that go silent for more than 7 days and come back."""
    hosts = ["web01", "web02", "web03"]
    commands = ["whoami", "net user", "ipconfig", "systeminfo", "tasklist", "hostname"]
    moment = start
    for _ in range(count):
        moment += timedelta(minutes=rng.uniform(5, 10 * 60))
        yield shell_start(moment, rng.choice(hosts), rng.choice(commands))


KILLS = 6


def test_new_terms_watch_killed_with_sigkill_alerts_each_first_appearance_once(tmp_path: Path) -> None:
    """``python -m shellwatch watch`` with the new_terms seed rule, killed with SIGKILL at random moments while the
    log grows and restarted each time; after a final ``--once`` the sink holds exactly the new_terms alerts a
    one-shot hunt over the finished log creates (first appearances and re-appearances after 7 days), each once.
    ``SHELLWATCH_FAULT_SEED=N`` repeats a run."""
    rule = new_terms_rule()
    seed = int(os.environ.get("SHELLWATCH_FAULT_SEED") or time.time_ns() % 2**31)
    print(f"new_terms fault seed {seed}")
    rng = random.Random(seed)
    log, state, alerts = tmp_path / "agent.ndjson", tmp_path / "state", tmp_path / "alerts.ndjson"
    events = list(_stream(rng, 240, T0))
    assert events[-1]["@timestamp"] > iso(T0 + 14 * DAY)
    per_round = len(events) // (KILLS + 1)
    append(log, events[:per_round])
    written = per_round
    for round_number in range(KILLS):
        process = subprocess.Popen(
            _watch_command(log, state, alerts, rule.source.path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], 60)
        assert ready and b"watching" in process.stderr.readline()
        # The log grows while the watcher works, in a few appends.
        chunk = events[written : written + per_round]
        for part in (chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]):
            append(log, part)
            time.sleep(rng.uniform(0.05, 0.4))
        written += len(chunk)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, f"round {round_number}: the watcher ended before the kill"
        process.stderr.close()
    append(log, events[written:])
    delivered_before = len(sink_ids(alerts)) if alerts.exists() else 0
    final = subprocess.run(_watch_command(log, state, alerts, rule.source.path, "--once"), capture_output=True,
                           timeout=120)  # fmt: skip
    assert final.returncode == 0, final.stderr.decode()

    expected = {alert["kibana.alert.uuid"] for alert in hunt([str(log)], RuleSet([rule]), workers=1)}
    found = sink_ids(alerts)
    print(f"{len(events)} events, {len(expected)} new_terms alerts, {delivered_before} delivered before the final pass")
    assert delivered_before > 0, "the killed watchers delivered nothing: the kills tested nothing"
    assert len(found) == len(set(found)), "an alert id is in the sink twice"
    assert set(found) == expected
    by_pair = Counter(
        (doc["host"]["id"], doc["process"]["command_line"]) for doc in map(json.loads, alerts.read_bytes().splitlines())
    )
    assert len(by_pair) <= 18 and max(by_pair.values()) >= 2, "no pair came back after 7 days: the test proves little"


# ----------------------------------------------------------------------------------------------------- threshold

THRESHOLD_RULE = """
[metadata]
creation_date = "2024/01/01"
maturity = "production"
updated_date = "2024/01/01"

[rule]
author = ["shellwatch tests"]
description = "Three or more shells spawned by IIS on one host within a run's window."
from = "now-9m"
interval = "5m"
index = ["logs-endpoint.events.process-*"]
language = "kuery"
license = "Elastic License v2"
name = "IIS shells by host"
risk_score = 47
rule_id = "5d0c7a0e-55b2-4c55-9d3b-3a9b1f0e2a11"
severity = "medium"
type = "threshold"
query = 'process.parent.name:"w3wp.exe"'

[rule.threshold]
field = ["host.id"]
value = 3
"""


def toml_rule(tmp_path: Path, text: str) -> Rule:
    path = tmp_path / "rule.toml"
    path.write_text(text)
    (outcome,) = load_rule_file(path, cache=False)
    assert outcome.rule is not None, outcome.reason
    return outcome.rule


def threshold_results(sink: RecordingSink) -> list[tuple[Any, int, str]]:
    return [
        (
            alert["kibana.alert.threshold_result"]["terms"][0]["value"],
            alert["kibana.alert.threshold_result"]["count"],
            alert["kibana.alert.original_time"],
        )
        for batch in sink.batches
        for alert in batch.alerts
    ]


def test_threshold_buckets_span_runs_and_the_signal_history_survives_a_restart(tmp_path: Path) -> None:
    """Windows [k*5m - 9m, k*5m] in event time, each searched once. Run 1 reads 10:01 and 10:02 (no window complete
    yet); run 2 reads 10:03, 10:04, 10:07: the window ending 10:05 holds four events of web01 -> one alert, count 4,
    original time 10:04 (the bucket's max). After a restart, run 3 reads 10:08 and 10:09 with the inputs caught up:
    the window ending 10:10 counts only web01's events after 10:04 (signal history) -> count 3; the window ending
    10:15 finds them all at or before the last alert (10:09) -> nothing. An event of 9:50 read afterwards is late."""
    rule = toml_rule(tmp_path, THRESHOLD_RULE)
    log = tmp_path / "agent.ndjson"
    clock = FakeClock(int((T0 + DAY).timestamp() * 1000))
    sink = RecordingSink()

    def at(minute: int, host: str = "web01") -> dict[str, Any]:
        return shell_start(T0 + minute * MINUTE, host, f"echo {minute}", ingested=T0 + minute * MINUTE)

    state = WatchState.open(tmp_path / "state")
    watcher = Watcher([str(log)], RuleSet([rule]), state, [sink], clock_ms=clock)
    append(log, [at(1), at(2)])
    watcher.ingest()
    (first,) = watcher.run_rules()
    assert first.created == 0
    append(log, [at(3), at(4), at(7), at(4, "web02")])
    watcher.ingest()
    clock.advance(5)
    (second,) = watcher.run_rules()
    watcher.deliver()
    assert second.created == 1
    assert threshold_results(sink) == [("id-web01", 4, "2024-03-01T10:04:00.000Z")]
    state.close()

    state = WatchState.open(tmp_path / "state")
    try:
        watcher = Watcher([str(log)], RuleSet([rule]), state, [sink], clock_ms=clock)
        append(log, [at(8), at(9)])
        watcher.ingest()
        assert watcher.ingest() == 0  # caught up: windows close on the wall clock now
        clock.advance(5)
        (third,) = watcher.run_rules()
        watcher.deliver()
        assert third.created == 1
        assert threshold_results(sink)[1:] == [("id-web01", 3, "2024-03-01T10:09:00.000Z")]
        append(log, [at(-10)])
        watcher.ingest()
        clock.advance(5)
        (fourth,) = watcher.run_rules()
        assert (fourth.created, fourth.late) == (0, 1)
        (alert,) = sink.batches[-1].alerts
        assert alert["kibana.alert.rule.type"] == "threshold"
        assert alert["kibana.alert.threshold_result"]["from"] == "2024-03-01T10:07:00.000Z"
    finally:
        state.close()


# --------------------------------------------------------------------------------------------------- suppression


def suppressing_rule(tmp_path: Path, duration: str) -> Rule:
    text = THRESHOLD_RULE.replace('type = "threshold"', 'type = "query"').replace(
        '[rule.threshold]\nfield = ["host.id"]\nvalue = 3\n',
        f'[rule.alert_suppression]\ngroup_by = ["host.name"]\n{duration}',
    )
    return toml_rule(tmp_path, text.replace("5d0c7a0e", "6e1d8b1f"))


def suppression_view(batches: list[AlertBatch]) -> list[tuple[str, list[Any], int]]:
    return [
        (alert["kibana.alert.uuid"], [t["value"] for t in alert["kibana.alert.suppression.terms"]],
         alert["kibana.alert.suppression.docs_count"])
        for batch in batches
        for alert in batch.alerts
    ]  # fmt: skip


def test_suppression_per_run_gives_one_alert_per_group_per_run(tmp_path: Path) -> None:
    """Per rule execution (no duration): each run makes one alert per host.name over the events it read, with
    kibana.alert.suppression.{terms,start,end,docs_count}; the next run opens new alerts."""
    rule = suppressing_rule(tmp_path, "")
    log = tmp_path / "agent.ndjson"
    clock = FakeClock()
    sink = RecordingSink()
    with_state = WatchState.open(tmp_path / "state")
    try:
        watcher = Watcher([str(log)], RuleSet([rule]), with_state, [sink], clock_ms=clock)
        append(log, [shell_start(T0 + n * MINUTE, "web01" if n < 4 else "web02", f"echo {n}") for n in range(5)])
        watcher.ingest()
        (first,) = watcher.run_rules()
        append(log, [shell_start(T0 + 10 * MINUTE, "web01", "whoami")])
        watcher.ingest()
        clock.advance(5)
        (second,) = watcher.run_rules()
        watcher.deliver()
    finally:
        with_state.close()
    assert (first.created, first.suppressed, second.created) == (2, 3, 1)
    view = suppression_view(sink.batches)
    assert [(terms, count) for _, terms, count in view] == [(["WEB01"], 3), (["WEB02"], 0), (["WEB01"], 0)]
    first_alert = sink.batches[0].alerts[0]
    assert first_alert["kibana.alert.suppression.start"] == iso(T0)
    assert first_alert["kibana.alert.suppression.end"] == iso(T0 + 3 * MINUTE)
    assert len({uuid for uuid, _, _ in view}) == 3


def test_suppression_per_duration_updates_the_alert_across_runs_and_restarts_as_new_revisions(tmp_path: Path) -> None:
    """With duration 1h the second run's web01 events fold into the first run's alert, after a restart (the
    suppressor's state is in the database). The updated alert is delivered again, whole, in a batch whose key
    differs from the first (it hashes docs_count too), so a sink deduping by batch key keeps both revisions; the
    pair (kibana.alert.uuid, docs_count) is unique. Events read again (the log rewritten) change nothing."""
    rule = suppressing_rule(tmp_path, 'duration = {value = 1, unit = "h"}\n')
    log = tmp_path / "agent.ndjson"
    clock = FakeClock()
    sink = RecordingSink()

    def run_in_a_fresh_process() -> list[Any]:
        state = WatchState.open(tmp_path / "state")
        try:
            watcher = Watcher([str(log)], RuleSet([rule]), state, [sink], clock_ms=clock)
            watcher.ingest()
            summaries = watcher.run_rules()
            watcher.deliver()
            clock.advance(10)
            return summaries
        finally:
            state.close()

    append(log, [shell_start(T0 + n * MINUTE, "web01", f"echo {n}") for n in range(3)])
    (first,) = run_in_a_fresh_process()
    append(log, [shell_start(T0 + (20 + n) * MINUTE, "web01", f"echo {n}") for n in range(2)])
    (second,) = run_in_a_fresh_process()
    assert (first.created, first.suppressed, second.created, second.updated, second.suppressed) == (1, 2, 0, 1, 2)
    view = suppression_view(sink.batches)
    assert [count for _, _, count in view] == [2, 4]
    assert len({uuid for uuid, _, _ in view}) == 1
    assert len({batch.key for batch in sink.batches}) == 2
    updated = sink.batches[1].alerts[0]
    assert updated["kibana.alert.suppression.end"] == iso(T0 + 21 * MINUTE)
    assert updated["kibana.alert.suppression.start"] == iso(T0)

    # The log replaced by a copy of itself (a new inode: read again from its start): every event is known.
    copy = tmp_path / "copy.ndjson"
    copy.write_bytes(log.read_bytes())
    copy.replace(log)
    (again,) = run_in_a_fresh_process()
    assert (again.matches, again.created, again.updated) == (0, 0, 0)
    assert len(sink.batches) == 2
