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
import subprocess
import time
from pathlib import Path

from test_watch_fault import Agent, _wait_for_banner, _watch
from test_watch_runner import hunt_ids
from webhook_receiver import WebhookReceiver

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
