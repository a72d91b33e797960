"""Fault injection: ``shellwatch watch`` killed with SIGKILL at random moments, at least 20 times, while an agent
keeps appending NDJSON events (finished lines, lines written in two halves, identical lines repeated); restarted
each time. Once the file is finished and the watcher has caught up, the NDJSON sink holds exactly the alerts a
one-shot ``hunt`` over the finished file creates (compared by ``kibana.alert.uuid``), each once.

The randomness is seeded and the seed printed (``pytest -s`` shows it); ``SHELLWATCH_FAULT_SEED=N`` repeats a run.
"""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from shellwatch.watch.state import WatchState
from test_watch_runner import event_lines, hunt_ids, sink_ids

KILLS = 20
POLL_SECONDS = "0.05"
RUN_EVERY_SECONDS = "0.2"
STARTUP_KILLS = 0.2
"""The share of kills at any moment from the start; the others come at a random moment after start-up (loading
the rules takes about a second, which would otherwise absorb most kills)."""


def _wait_for_banner(process: subprocess.Popen[bytes]) -> None:
    """Until the watcher says it is watching (its first line on stderr)."""
    assert process.stderr is not None
    ready, _, _ = select.select([process.stderr], [], [], 60)
    assert ready, "the watcher did not start within 60 s"
    assert b"watching" in process.stderr.readline()


def _watch(log: Path, state: Path, alerts: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "shellwatch", "watch", str(log), "--state", str(state), "-o", str(alerts),
        "--poll", POLL_SECONDS, "--run-every", RUN_EVERY_SECONDS, *extra,
    ]  # fmt: skip


class Agent(threading.Thread):
    """Appends events to the log until told to stop: batches of lines, some split across two writes.

    About 15 events a second, a third of them matching: even several watchers in a row killed before their first
    run leave far fewer than max_signals (100) matches for the next run, which would otherwise drop the rest, as
    Kibana does, and the alert sets could not be equal."""

    def __init__(self, log: Path, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.log = log
        self.rng = rng
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        with self.log.open("ab", buffering=0) as file:
            while not self.stop.is_set():
                lines = list(event_lines(self.rng.randint(1, 4), self.rng, start=self.written))
                self.written += len(lines)
                if self.rng.random() < 0.1:
                    lines.append(lines[-1])  # the same line twice: two events, two alerts (line numbers differ)
                data = b"".join(lines)
                if self.rng.random() < 0.3:
                    cut = self.rng.randrange(1, len(data))
                    file.write(data[:cut])
                    time.sleep(self.rng.uniform(0.01, 0.15))  # a partial last line, for the watcher to wait on
                    file.write(data[cut:])
                else:
                    file.write(data)
                time.sleep(self.rng.uniform(0.05, 0.25))


def test_kill_9_at_random_moments_loses_and_duplicates_no_alert(tmp_path: Path) -> None:
    seed = int(os.environ.get("SHELLWATCH_FAULT_SEED") or time.time_ns() % 2**31)
    print(f"fault test seed {seed} (SHELLWATCH_FAULT_SEED={seed} repeats it)")
    rng = random.Random(seed)
    log, state, alerts = tmp_path / "agent.ndjson", tmp_path / "state", tmp_path / "alerts.ndjson"
    agent = Agent(log, random.Random(rng.random()))
    agent.start()
    delivered_before_final = 0
    try:
        for _ in range(KILLS):
            process = subprocess.Popen(_watch(log, state, alerts), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if rng.random() < STARTUP_KILLS:
                time.sleep(rng.uniform(0.0, 1.0))  # perhaps still starting, perhaps at work
            else:
                _wait_for_banner(process)
                time.sleep(rng.uniform(0.0, 0.6))  # at work: ingesting, running rules, delivering
            process.kill()
            process.wait(timeout=30)
            assert process.returncode == -9, "the watcher ended before it was killed"
            assert process.stderr is not None
            process.stderr.close()
    finally:
        agent.stop.set()
        agent.join(timeout=10)
    if alerts.exists():
        delivered_before_final = len(sink_ids(alerts))

    caught_up = subprocess.run(_watch(log, state, alerts, "--once"), capture_output=True, timeout=120)
    assert caught_up.returncode == 0, caught_up.stderr.decode()

    expected = hunt_ids(log)
    found = sink_ids(alerts)
    print(f"{agent.written} events, {len(expected)} alerts; {delivered_before_final} delivered before the final pass")
    assert len(expected) > 50
    assert delivered_before_final > 0, "the killed watchers never delivered anything: the kills tested nothing"
    state_after = WatchState.open(state)
    try:
        assert sum(run.dropped for run in state_after.runs()) == 0, "a run reached max_signals: the agent is too fast"
    finally:
        state_after.close()
    assert len(found) == len(set(found)), "an alert id is in the sink twice"
    assert set(found) == expected
