"""Fault injection with a webhook sink: ``shellwatch watch --webhook URL`` while the receiver (a real HTTP server on
127.0.0.1) goes down and comes back, and while the watcher itself is killed with SIGKILL and restarted.

Once the log is finished and the watcher has caught up, the receiver -- which stores a batch once per
Idempotency-Key, as a receiver honouring the header does -- holds every alert a one-shot ``hunt`` over the finished
file creates, each exactly once, and it did see repeated deliveries (the keys made them safe). The randomness is
seeded and printed; ``SHELLWATCH_FAULT_SEED=N`` repeats a run.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from shellwatch.cli.watch import EXIT_STATE_FAILED, build_sinks, watch_command, webhook_spool_dir
from shellwatch.watch.state import DATABASE_NAME, WatchState
from test_watch_fault import Agent, _wait_for_banner, _watch
from test_watch_runner import event_lines, hunt_ids
from webhook_receiver import Accept, Answer, WebhookReceiver

ROUNDS = 8


def test_webhook_down_and_watcher_killed_every_alert_arrives_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("SHELLWATCH_FAULT_SEED") or time.time_ns() % 2**31)
    print(f"webhook fault test seed {seed} (SHELLWATCH_FAULT_SEED={seed} repeats it)")
    rng = random.Random(seed)
    log, state, alerts = tmp_path / "agent.ndjson", tmp_path / "state", tmp_path / "alerts.ndjson"
    receiver = WebhookReceiver().start()
    agent = Agent(log, random.Random(rng.random()))
    agent.start()
    down_rounds = 0
    try:
        for _ in range(ROUNDS):
            process = subprocess.Popen(
                _watch(log, state, alerts, "--webhook", receiver.url),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            _wait_for_banner(process)
            time.sleep(rng.uniform(0.2, 0.8))
            if receiver.running and rng.random() < 0.5:
                receiver.stop()  # the receiver goes away while the watcher delivers
                down_rounds += 1
            time.sleep(rng.uniform(0.2, 0.8))
            process.kill()
            process.wait(timeout=30)
            assert process.stderr is not None
            process.stderr.close()
            if not receiver.running and rng.random() < 0.6:
                receiver.start()  # back, on the same port; otherwise still away when the next watcher starts
    finally:
        agent.stop.set()
        agent.join(timeout=10)
    try:
        if not receiver.running:
            receiver.start()
        caught_up = subprocess.run(
            _watch(log, state, alerts, "--webhook", receiver.url, "--once"), capture_output=True, timeout=120
        )
        assert caught_up.returncode == 0, caught_up.stderr.decode()
    finally:
        receiver.stop()

    expected = hunt_ids(log)
    print(f"{agent.written} events, {len(expected)} alerts, receiver down in {down_rounds} rounds")
    assert len(expected) > 20
    assert down_rounds > 0, "the receiver never went down: the test tested nothing"
    assert set(receiver.alert_counts) == expected
    assert set(receiver.alert_counts.values()) == {1}, "an alert id was stored twice"
    resent = sum(1 for count in receiver.key_counts.values() if count > 1)
    print(f"{len(receiver.stored_keys)} batches stored, {resent} of them received more than once")


def _once(log: Path, state: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "shellwatch", "watch", str(log), "--state", str(state), "--once", *extra],
        capture_output=True,
        timeout=120,
    )


def _matching_log(path: Path) -> Path:
    path.write_bytes(b"".join(event_lines(40, random.Random(5))))
    return path


def test_a_rotated_token_finds_the_batches_spooled_under_the_old_one(tmp_path: Path) -> None:
    """The spool folder is named by the receiver (scheme, host, port, path, query names), not by the raw URL: a
    token changed between two runs still sends what the first spooled. A spool that holds batches for a receiver
    not named in this run is reported at start, with the receiver it belongs to."""
    log, state = _matching_log(tmp_path / "agent.ndjson"), tmp_path / "state"
    receiver = WebhookReceiver().start()
    try:
        receiver.default = Answer(503, {"Retry-After": "3600"})
        away = _once(log, state, "--webhook", f"{receiver.url}?token=s3cr3t-1")
        assert away.returncode == 0, away.stderr.decode()
        assert b"not yet delivered wait in" in away.stderr
        assert receiver.stored_keys == []

        receiver.default = Accept()
        elsewhere = _once(log, state, "--webhook", f"http://127.0.0.1:{receiver.port}/other?token=x")
        assert elsewhere.returncode == 0, elsewhere.stderr.decode()
        stranded = [line for line in elsewhere.stderr.decode().splitlines() if "not configured in this run" in line]
        assert len(stranded) == 1 and f"127.0.0.1:{receiver.port}/hook?token=***" in stranded[0], stranded
        assert "s3cr3t" not in stranded[0]

        rotated = _once(log, state, "--webhook", f"{receiver.url}?token=s3cr3t-2")
        assert rotated.returncode == 0, rotated.stderr.decode()
        assert b"not configured in this run" not in rotated.stderr
    finally:
        receiver.stop()
    assert set(receiver.alert_counts) == hunt_ids(log)
    assert {request.path for request in receiver.requests if isinstance(request.behaviour, Accept)} == {
        "/hook?token=s3cr3t-2"
    }


def test_the_summary_says_where_batches_refused_for_good_are_kept(tmp_path: Path) -> None:
    log, state = _matching_log(tmp_path / "agent.ndjson"), tmp_path / "state"
    receiver = WebhookReceiver().start()
    try:
        receiver.default = Answer(422)
        refused = _once(log, state, "--webhook", receiver.url)
    finally:
        receiver.stop()
    assert refused.returncode == 0, refused.stderr.decode()
    (line,) = [text for text in refused.stderr.decode().splitlines() if "refused for good" in text]
    rejected_dir = Path(line.split(" are kept in ")[1].split(" (")[0])
    assert rejected_dir.name == "rejected" and rejected_dir.is_relative_to(state)
    assert list(rejected_dir.glob("*.json")) and list(rejected_dir.glob("*.reason"))


def test_a_failing_state_database_ends_watch_with_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full or an I/O error while watching: one message naming the state database, a non-zero status, no
    traceback; the sinks and the database are closed (the folder can be opened again)."""
    log, state = _matching_log(tmp_path / "agent.ndjson"), tmp_path / "state"

    def disk_full(self: WatchState, position: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(WatchState, "save_position", disk_full)
    result = CliRunner().invoke(
        watch_command, [str(log), "--state", str(state), "-o", str(tmp_path / "alerts.ndjson"), "--once"]
    )
    assert result.exit_code == EXIT_STATE_FAILED
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    failed = [line for line in result.stderr.splitlines() if "disk is full" in line]
    assert failed == [f"shellwatch: state database {state / DATABASE_NAME} failed: database or disk is full; "
                      "stopped, committed work is kept"]  # fmt: skip
    WatchState.open(state).close()  # the lock was released


def test_when_a_later_sink_cannot_be_built_the_earlier_ones_are_closed(tmp_path: Path) -> None:
    """The first sink holds a spool lock: if the second fails, the first is closed before the error is reported, so
    that the same spool can be opened at once (here, by the next build)."""
    state = tmp_path / "state"
    url = "http://127.0.0.1:9/hook"
    with pytest.raises(click.BadParameter):
        build_sinks([], state, [url, "ftp://elsewhere/hook"])
    sinks = build_sinks([], state, [url])  # the spool of the first attempt is free again
    for sink in sinks:
        sink.close()
    assert webhook_spool_dir(state, url) == webhook_spool_dir(state, "http://user:pw@127.0.0.1:9/hook")
    assert webhook_spool_dir(state, url) != webhook_spool_dir(state, "http://127.0.0.1:9/other")
