"""The watch loop in process (schedule, max_signals, gaps, outbox, no id twice) and the command's signal handling.

Events are Elastic Defend process starts shaped like samples/web03-endpoint.ndjson; the bundled rules (the seed EQL
rule and the seed Sigma rule) decide which match. Time is a fake clock wherever the schedule matters.

Kibana semantics followed and where they come from: gaps as ``getGapBetweenRuns`` / ``getNumCatchupIntervals``
(elastic/kibana security_solution ``rule_types/utils/utils.ts``, modelled in shellwatch.schedule.runs); the earliest
events first when max_signals cuts a run (``eql/build_eql_search_request.ts``: EQL returns the earliest matches).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.sinks.base import AlertBatch, SinkError
from shellwatch.sinks.ndjson_file import NdjsonFileSink
from shellwatch.sources.record import Origin
from shellwatch.watch import state as state_module
from shellwatch.watch.runner import Watcher, WatchSettings
from shellwatch.watch.state import WatchState

WEB_PARENTS = ("w3wp.exe", "httpd.exe", "nginx.exe", "php-cgi.exe", "tomcat.exe", "sqlservr.exe")
OTHER_PARENTS = ("explorer.exe", "services.exe", "svchost.exe")
SHELLS = ("cmd.exe", "powershell.exe", "whoami.exe", "wscript.exe")
OTHER_CHILDREN = ("notepad.exe", "conhost.exe", "msedge.exe")
MINUTE_MS = 60_000


def process_start(number: int, parent: str, child: str, *, second: int | None = None) -> dict[str, Any]:
    """An Elastic Defend process start event (the shape of samples/web03-endpoint.ndjson)."""
    moment = number if second is None else second
    return {
        "@timestamp": f"2024-03-16T{11 + moment // 3600:02d}:{moment // 60 % 60:02d}:{moment % 60:02d}.000Z",
        "agent": {"type": "endpoint"},
        "data_stream": {"dataset": "endpoint.events.process", "namespace": "default", "type": "logs"},
        "event": {
            "action": "start",
            "category": ["process"],
            "dataset": "endpoint.events.process",
            "kind": "event",
            "module": "endpoint",
            "type": ["start"],
        },
        "host": {"hostname": "web03", "name": "WEB03", "os": {"type": "windows", "family": "windows"}},
        "process": {
            "name": child,
            "executable": f"C:\\Windows\\System32\\{child}",
            "command_line": f"{child} /c echo {number}",
            "pid": 1000 + number,
            "args": [child, "/c", "echo", str(number)],
            "parent": {"name": parent, "executable": f"C:\\inetpub\\{parent}", "pid": 500},
        },
        "user": {"name": "www", "domain": "WEB03"},
    }


def event_lines(count: int, rng: random.Random, start: int = 0) -> Iterator[bytes]:
    """NDJSON lines of ``count`` process starts, about a third of them a web server spawning a shell."""
    for number in range(start, start + count):
        if rng.random() < 0.35:
            event = process_start(number, rng.choice(WEB_PARENTS), rng.choice(SHELLS))
        else:
            event = process_start(number, rng.choice(OTHER_PARENTS), rng.choice(SHELLS + OTHER_CHILDREN))
        yield json.dumps(event).encode() + b"\n"


def bundled_rules() -> RuleSet:
    return RuleSet(load_bundled_rules().rules)


def seed_rules() -> RuleSet:
    """The bundled rules that make one alert per match: the seed EQL rule and the seed Sigma rule (the pack's
    new_terms version of the seed rule is exercised in test_watch_terms.py)."""
    return RuleSet([rule for rule in load_bundled_rules().rules if rule.type in ("eql", "sigma")])


def hunt_ids(path: Path, rules: RuleSet | None = None) -> set[str]:
    """The alert ids a one-shot hunt over ``path`` creates (with every bundled rule by default)."""
    chosen = rules if rules is not None else bundled_rules()
    return {alert["kibana.alert.uuid"] for alert in hunt([str(path)], chosen, workers=1)}


def sink_ids(path: Path) -> list[str]:
    """The alert id of every line of an NDJSON alert file (a line that is not a whole alert fails the test)."""
    return [json.loads(line)["kibana.alert.uuid"] for line in path.read_bytes().splitlines()]


class FakeClock:
    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, minutes: float) -> None:
        self.now_ms += int(minutes * MINUTE_MS)


class RecordingSink:
    """A sink that keeps batches in memory and can be told to refuse them."""

    def __init__(self, name: str = "memory:test") -> None:
        self.name = name
        self.batches: list[AlertBatch] = []
        self.refuse = False

    def deliver(self, batch: AlertBatch) -> None:
        if self.refuse:
            raise SinkError("receiver down")
        self.batches.append(batch)

    def flush(self, timeout: float | None = None) -> int:
        return 0

    def close(self) -> None:
        pass

    def ids(self) -> list[str]:
        return [alert["kibana.alert.uuid"] for batch in self.batches for alert in batch.alerts]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[WatchState]:
    opened = WatchState.open(tmp_path / "state")
    yield opened
    opened.close()


def write(path: Path, lines: list[bytes]) -> None:
    with path.open("ab") as file:
        file.write(b"".join(lines))


def test_a_run_evaluates_the_events_ingested_since_the_previous_run_whatever_their_timestamps(
    tmp_path: Path, state: WatchState
) -> None:
    """Positions, not clocks: an event that arrives late with an old @timestamp is still evaluated by the next run
    (Kibana's window ``[now-9m, now]`` would not search it)."""
    log = tmp_path / "agent.ndjson"
    write(log, [json.dumps(process_start(1, "w3wp.exe", "cmd.exe")).encode() + b"\n"])
    clock = FakeClock()
    sink = RecordingSink()
    watcher = Watcher([str(log)], seed_rules(), state, [sink], clock_ms=clock)
    watcher.ingest()
    first = watcher.run_rules()
    assert [s.created for s in first] == [1, 1]  # both seed rules match w3wp -> cmd
    watcher.deliver()
    assert len(sink.ids()) == 2

    # A day-old event arrives two minutes later: no rule is due yet, so nothing is created...
    write(log, [json.dumps(process_start(2, "nginx.exe", "powershell.exe", second=0)).encode() + b"\n"])
    clock.advance(2)
    watcher.ingest()
    assert watcher.run_rules() == []
    # ...until the interval (5m) has elapsed since the previous run.
    clock.advance(3)
    second = watcher.run_rules()
    assert [s.events for s in second] == [1, 1]
    assert sum(s.created for s in second) == 2
    watcher.deliver()
    assert len(set(sink.ids())) == 4
    assert [r.created for r in state.runs()] == [1, 1, 1, 1]


def test_max_signals_cuts_a_run_at_its_earliest_events_and_reports_the_rest_dropped(
    tmp_path: Path, state: WatchState
) -> None:
    """At most max_signals alerts a run; the earliest events (by @timestamp, not arrival) are kept, as an EQL
    search of ``size: max_signals`` returns the earliest matches; the others are counted as dropped."""
    eql = next(rule for rule in load_bundled_rules().rules if rule.language == "eql")
    capped = dataclasses.replace(eql, max_signals=2)
    log = tmp_path / "agent.ndjson"
    # Written latest first: arrival order is the reverse of time order.
    write(log, [json.dumps(process_start(n, "w3wp.exe", "cmd.exe")).encode() + b"\n" for n in (50, 40, 30, 20, 10)])
    sink = RecordingSink()
    watcher = Watcher([str(log)], RuleSet([capped]), state, [sink], clock_ms=FakeClock())
    watcher.ingest()
    (summary,) = watcher.run_rules()
    assert (summary.matches, summary.created, summary.dropped) == (5, 2, 3)
    watcher.deliver()
    created_numbers = sorted(alert["process"]["pid"] - 1000 for batch in sink.batches for alert in batch.alerts)
    assert created_numbers == [10, 20]
    assert state.runs()[0].dropped == 3


def test_a_plain_rule_run_reads_its_backlog_page_by_page_and_keeps_only_max_signals(
    tmp_path: Path, state: WatchState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog of matches (a first start on a big file, or events forged to match) is read from the database a
    page at a time, and only the earliest max_signals of them are kept while reading: never every match at once.
    Which alerts are created is unchanged: the earliest by @timestamp across every page, duplicates left out."""
    monkeypatch.setattr(state_module, "PENDING_PAGE", 7)
    eql = next(rule for rule in load_bundled_rules().rules if rule.language == "eql")
    capped = dataclasses.replace(eql, max_signals=4)
    log = tmp_path / "agent.ndjson"
    numbers = list(range(60, 0, -2))  # 30 matches, latest first: the earliest sit in the last page
    write(log, [json.dumps(process_start(n, "w3wp.exe", "cmd.exe")).encode() + b"\n" for n in numbers])
    sink = RecordingSink()
    watcher = Watcher([str(log)], RuleSet([capped]), state, [sink], clock_ms=FakeClock())
    watcher.ingest()

    def every_match_at_once(rule_id: str) -> list[Any]:
        raise AssertionError(f"the run of {rule_id} loaded all its pending matches")

    pages: list[int] = []
    real_iter_pending = state.iter_pending

    def counted(rule_id: str, page: int | None = None) -> Iterator[Any]:
        for match in real_iter_pending(rule_id, page):
            pages.append(match.seq)
            yield match

    monkeypatch.setattr(state, "pending_for", every_match_at_once)
    monkeypatch.setattr(state, "iter_pending", counted)
    (summary,) = watcher.run_rules()
    assert len(pages) == 30 == summary.matches
    assert (summary.created, summary.dropped, summary.duplicates) == (4, 26, 0)
    watcher.deliver()
    assert sorted(alert["process"]["pid"] - 1000 for alert in sink.batches[0].alerts) == [2, 4, 6, 8]


def test_paged_pending_matches_come_in_ingestion_order_across_pages(state: WatchState) -> None:
    with state.transaction():
        for number in range(23):
            state.add_pending(f"alert-{number}", "rule-a", {"n": number}, Origin("a.ndjson", line=number + 1))
        state.add_pending("alert-other", "rule-b", {"n": -1}, Origin("b.ndjson", line=1))
    assert [m.event["n"] for m in state.iter_pending("rule-a", page=5)] == list(range(23))
    assert [m.event["n"] for m in state.iter_pending("rule-a", page=23)] == list(range(23))
    assert [m.alert_id for m in state.iter_pending("rule-b", page=1)] == ["alert-other"]


def test_no_alert_id_is_created_twice_when_a_file_is_read_again(tmp_path: Path, state: WatchState) -> None:
    """A file read whole again (a JSON array rewritten) offers the same events: their alerts already exist."""
    log = tmp_path / "export.json"
    events = [process_start(n, "httpd.exe", "cmd.exe") for n in range(3)]
    log.write_text(json.dumps(events))
    clock = FakeClock()
    sink = RecordingSink()
    watcher = Watcher([str(log)], seed_rules(), state, [sink], clock_ms=clock)
    watcher.ingest()
    watcher.run_rules()
    log.write_text(json.dumps([*events, process_start(3, "httpd.exe", "cmd.exe")]))
    os.utime(log, ns=(time.time_ns(), time.time_ns() + 10**9))
    watcher.ingest()
    clock.advance(5)
    runs = watcher.run_rules()
    assert sum(r.created for r in runs) == 2  # only event 3, for each of the two rules
    watcher.deliver()
    ids = sink.ids()
    assert len(ids) == len(set(ids)) == 8
    assert set(ids) == hunt_ids(log, seed_rules())


def test_a_late_run_reports_the_gap_kibana_would_and_fills_it(tmp_path: Path, state: WatchState) -> None:
    """Down 30 minutes with interval 5m and look-back 9m (the seed EQL rule): Kibana's gap between runs is
    30 - 9 = 21 minutes, it searches min(ceil(21/5), 4) = 4 catch-up windows and reports the remaining 1 minute
    (``getGapBetweenRuns``, ``getNumCatchupIntervals``); the watcher reads every event ingested meanwhile."""
    eql = next(rule for rule in load_bundled_rules().rules if rule.language == "eql")
    assert (eql.interval, eql.from_) == ("5m", "now-9m")
    log = tmp_path / "agent.ndjson"
    write(log, [json.dumps(process_start(1, "w3wp.exe", "cmd.exe")).encode() + b"\n"])
    clock = FakeClock()
    watcher = Watcher([str(log)], RuleSet([eql]), state, [RecordingSink()], clock_ms=clock)
    watcher.ingest()
    watcher.run_rules()
    write(log, [json.dumps(process_start(n, "w3wp.exe", "cmd.exe")).encode() + b"\n" for n in range(2, 6)])

    clock.advance(30)
    restarted = Watcher([str(log)], RuleSet([eql]), state, [RecordingSink()], clock_ms=clock)
    restarted.ingest()
    (summary,) = restarted.run_rules()
    gap = summary.gap
    assert gap is not None
    assert gap.gap == timedelta(minutes=21)
    assert gap.catch_up_windows == 4
    assert gap.kibana_gap is not None and gap.kibana_gap.duration == timedelta(minutes=1)
    assert "were not queried between this rule execution and the last execution" in gap.message()
    assert "Filled" in gap.message()
    assert summary.created == 4
    assert state.runs()[-1].gap_ms == 21 * MINUTE_MS

    # 12 minutes later: a gap of 3 minutes, which one catch-up window would cover in Kibana.
    clock.advance(12)
    (covered,) = restarted.run_rules()
    assert covered.gap is not None and covered.gap.gap == timedelta(minutes=3)
    assert covered.gap.catch_up_windows == 1 and covered.gap.kibana_gap is None
    # On time: no gap.
    clock.advance(5)
    (on_time,) = restarted.run_rules()
    assert on_time.gap is None


def test_run_every_overrides_the_interval_and_keeps_the_additional_look_back(tmp_path: Path, state: WatchState) -> None:
    eql = next(rule for rule in load_bundled_rules().rules if rule.language == "eql")
    clock = FakeClock()
    watcher = Watcher([str(tmp_path)], RuleSet([eql]), state, [], settings=WatchSettings(run_every=60), clock_ms=clock)
    assert len(watcher.run_rules()) == 1
    clock.advance(0.5)
    assert watcher.run_rules() == []
    clock.advance(0.5)
    assert len(watcher.run_rules()) == 1
    # Look-back 60 s + the rule's 4 additional minutes: 6 minutes late is a 1-minute gap.
    clock.advance(6)
    (late,) = watcher.run_rules()
    assert late.gap is not None and late.gap.gap == timedelta(minutes=1)


def test_undelivered_batches_wait_in_the_outbox_and_a_redelivery_adds_nothing_twice(
    tmp_path: Path, state: WatchState
) -> None:
    """A sink that refuses keeps its batches in the outbox; a batch delivered but not marked (killed in between)
    is delivered again and the NDJSON sink keeps one copy of each alert."""
    log = tmp_path / "agent.ndjson"
    write(log, [json.dumps(process_start(n, "php-cgi.exe", "cmd.exe")).encode() + b"\n" for n in range(4)])
    down = RecordingSink("memory:down")
    down.refuse = True
    alerts_file = tmp_path / "alerts.ndjson"
    ndjson = NdjsonFileSink(alerts_file)
    watcher = Watcher([str(log)], seed_rules(), state, [ndjson, down], clock_ms=FakeClock())
    watcher.ingest()
    watcher.run_rules()
    assert watcher.deliver() == 2  # the NDJSON sink took both rules' batches; the other refused
    assert state.waiting_by_sink() == {"memory:down": 2}

    # Delivered to the file but "killed" before the outbox row went: the batches are handed over again.
    batches = list(state.undelivered("memory:down"))
    ndjson.close()
    for batch in batches:
        NdjsonFileSink(alerts_file).deliver(batch)
    reopened = NdjsonFileSink(alerts_file)
    for batch in batches:
        reopened.deliver(batch)
    ids = sink_ids(alerts_file)
    assert len(ids) == len(set(ids)) == 8

    down.refuse = False
    assert watcher.deliver() == 2
    assert sorted(down.ids()) == sorted(ids)
    assert state.waiting_by_sink() == {}


def _start_watch(tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shellwatch", "watch", str(tmp_path / "agent.ndjson"), "--state",
         str(tmp_path / "state"), "-o", str(tmp_path / "alerts.ndjson"), *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_cleanly_with_state_committed(tmp_path: Path, signal_number: int) -> None:
    log = tmp_path / "agent.ndjson"
    write(log, list(event_lines(40, random.Random(7))))
    process = _start_watch(tmp_path, "--poll", "0.05", "--run-every", "0.1")
    assert process.stderr is not None
    banner = process.stderr.readline()
    assert b"watching" in banner
    deadline = time.monotonic() + 20
    while not (tmp_path / "alerts.ndjson").exists() or not sink_ids(tmp_path / "alerts.ndjson"):
        assert time.monotonic() < deadline, "no alert delivered"
        time.sleep(0.05)
    process.send_signal(signal_number)
    _, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors
    assert b"stopped:" in errors
    assert b"Traceback" not in errors
    reopened = WatchState.open(tmp_path / "state")  # the lock was released
    try:
        (position,) = reopened.positions().values()
        assert position.offset == log.stat().st_size
    finally:
        reopened.close()
    ids = sink_ids(tmp_path / "alerts.ndjson")
    assert len(ids) == len(set(ids))
    assert set(ids) <= hunt_ids(log)


def test_stdin_is_followed_to_its_end_with_the_alert_ids_hunt_gives(tmp_path: Path) -> None:
    log = tmp_path / "agent.ndjson"
    write(log, list(event_lines(30, random.Random(11))))
    alerts = tmp_path / "alerts.ndjson"
    result = subprocess.run(
        [sys.executable, "-m", "shellwatch", "watch", "-", "--state", str(tmp_path / "state"), "-o", str(alerts),
         "--poll", "0.05"],
        input=log.read_bytes(),
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    hunted = subprocess.run(
        [sys.executable, "-m", "shellwatch", "hunt", "-", "--format", "ndjson"],
        input=log.read_bytes(),
        capture_output=True,
        timeout=60,
    )
    expected = {json.loads(line)["kibana.alert.uuid"] for line in hunted.stdout.splitlines()}
    assert expected
    assert set(sink_ids(alerts)) == expected


def test_a_second_watcher_on_the_same_state_is_refused(tmp_path: Path, state: WatchState) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shellwatch", "watch", str(tmp_path), "--state", str(state.folder), "--once"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"another shellwatch watch uses this state folder" in result.stderr


def test_signal_handlers_only_set_the_stop_flag(tmp_path: Path, state: WatchState) -> None:
    """The loop returns once the stop event is set, after finishing its step."""
    watcher = Watcher([str(tmp_path)], seed_rules(), state, [], settings=WatchSettings(poll=0.05))
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    began = time.monotonic()
    watcher.run(stop)
    assert time.monotonic() - began < 5
    assert watcher.totals.runs == 2  # each rule ran once, at start
