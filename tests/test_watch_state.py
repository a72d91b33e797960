"""The watcher's SQLite state: round trips of every table, the outbox's per-sink bookkeeping, transactions that
commit whole or not at all, the folder lock, durability pragmas and owner-only permissions."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shellwatch.sinks.base import make_batch
from shellwatch.sources.record import Origin
from shellwatch.watch.state import (
    SCHEMA_VERSION,
    InputPosition,
    RuleRunRecord,
    StateError,
    WatchState,
    default_state_dir,
)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[WatchState]:
    opened = WatchState.open(tmp_path / "state")
    yield opened
    opened.close()


def test_positions_runs_and_produced_ids_survive_a_reopen(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    position = InputPosition(
        key="/logs/a.ndjson", display="logs/a.ndjson", kind="ndjson", device=3, inode=99, offset=1234, line=17,
        head_hash=b"\x01" * 32, head_length=1234, size=1300, mtime_ns=5,
    )  # fmt: skip
    state = WatchState.open(folder)
    with state.transaction():
        state.save_position(position)
        assert state.add_pending("id-1", "rule-a", {"process.name": "cmd.exe", "n": [1, 2]}, Origin("a", None, 3))
        state.count_events(10)
        state.record_run(
            RuleRunRecord(rule_id="rule-b", started_ms=1000, events=10, matches=1, created=1, duplicates=0,
                          dropped=0, gap_ms=0),
            ["id-2"],
            10,
        )  # fmt: skip
    state.close()

    state = WatchState.open(folder)
    try:
        assert state.positions() == {"/logs/a.ndjson": position}
        (pending,) = state.pending_for("rule-a")
        assert (pending.alert_id, pending.event, pending.origin) == (
            "id-1",
            {"process.name": "cmd.exe", "n": [1, 2]},
            Origin("a", None, 3),
        )
        assert state.events_ingested() == 10
        assert state.last_run("rule-b") == (1000, 10)
        assert (state.run_count("rule-b"), state.run_count("rule-a")) == (1, 0)
        assert state.is_produced("id-2") and not state.is_produced("id-1")
        assert [r.rule_id for r in state.runs()] == ["rule-b"]
    finally:
        state.close()


def test_a_match_already_pending_or_produced_is_not_kept_again(state: WatchState) -> None:
    with state.transaction():
        assert state.add_pending("id-1", "rule-a", {}, Origin("a"))
        assert not state.add_pending("id-1", "rule-a", {}, Origin("a"))
        state.record_run(RuleRunRecord("rule-a", 1, 0, 0, 1, 0, 0, 0), ["id-9"], 0)
        assert not state.add_pending("id-9", "rule-a", {}, Origin("a"))
    assert state.pending_rules() == {"rule-a": 1}


def test_a_failed_transaction_leaves_nothing_behind(state: WatchState) -> None:
    with pytest.raises(RuntimeError), state.transaction():
        state.save_position(InputPosition(key="k", display="k", kind="ndjson", offset=10))
        state.add_pending("id-1", "rule-a", {}, Origin("a"))
        raise RuntimeError("killed")
    assert state.positions() == {}
    assert state.pending_rules() == {}


def test_the_outbox_keeps_a_batch_until_every_sink_has_it(state: WatchState) -> None:
    batch = make_batch([{"kibana.alert.uuid": "a1", "x": 1}, {"kibana.alert.uuid": "a2", "x": 2}])
    with state.transaction():
        state.enqueue(batch, ["ndjson:/alerts", "webhook:http://x"])
        state.enqueue(batch, ["ndjson:/alerts", "webhook:http://x"])  # the same alerts again: one batch
    assert state.waiting_by_sink() == {"ndjson:/alerts": 1, "webhook:http://x": 1}
    (waiting,) = state.undelivered("ndjson:/alerts")
    assert waiting.key == batch.key
    assert [dict(a) for a in waiting.alerts] == [dict(a) for a in batch.alerts]
    state.mark_delivered("ndjson:/alerts", batch.key)
    assert list(state.undelivered("ndjson:/alerts")) == []
    assert state.waiting_by_sink() == {"webhook:http://x": 1}
    state.mark_delivered("webhook:http://x", batch.key)
    assert state.waiting_by_sink() == {}
    assert state.connection.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_durability_settings_and_owner_only_files(state: WatchState) -> None:
    """WAL with synchronous=FULL (2): a commit is on disk before the next step (https://sqlite.org/pragma.html)."""
    assert state.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert state.connection.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert stat.S_IMODE(os.stat(state.folder).st_mode) == 0o700
    for name in os.listdir(state.folder):
        assert stat.S_IMODE(os.stat(state.folder / name).st_mode) & 0o077 == 0, name


def test_one_watcher_per_state_folder(state: WatchState) -> None:
    with pytest.raises(StateError, match="another shellwatch watch"):
        WatchState.open(state.folder)


def test_other_modules_keep_their_tables_in_the_same_transaction(state: WatchState) -> None:
    """A new-terms history table commits (or not) together with the read positions."""
    state.connection.execute("CREATE TABLE IF NOT EXISTS new_terms_seen (rule_id TEXT, terms TEXT)")
    with pytest.raises(RuntimeError), state.transaction() as connection:
        state.save_position(InputPosition(key="k", display="k", kind="ndjson", offset=10))
        connection.execute("INSERT INTO new_terms_seen VALUES ('r', 'host-a')")
        raise RuntimeError("killed")
    assert state.connection.execute("SELECT count(*) FROM new_terms_seen").fetchone()[0] == 0
    assert state.positions() == {}


def test_default_state_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "shellwatch" / "watch"


def test_a_state_of_the_first_schema_is_upgraded_keeping_its_positions(tmp_path: Path) -> None:
    """Schema 2 adds ``input_position.pass_highest`` (an EVTX pass cut short resumes exactly); a schema 1 database
    is upgraded in place, its positions kept, and an older shellwatch then refuses it instead of writing rows it
    does not know the shape of."""
    folder = tmp_path / "state"
    kept = InputPosition(key="/logs/a.evtx", display="a.evtx", kind="evtx", device=1, inode=2, offset=77)
    state = WatchState.open(folder)
    with state.transaction():
        state.save_position(kept)
    state.connection.execute("ALTER TABLE input_position DROP COLUMN pass_highest")
    state.connection.execute("UPDATE meta SET value = 1 WHERE name = 'schema'")
    state.close()

    upgraded = WatchState.open(folder)
    try:
        assert upgraded.positions() == {kept.key: kept}
        cut_short = dataclasses.replace(kept, line=5, pass_highest=90)
        with upgraded.transaction():
            upgraded.save_position(cut_short)
        assert upgraded.positions() == {kept.key: cut_short}
        schema = upgraded.connection.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()[0]
        assert schema == SCHEMA_VERSION == 2
    finally:
        upgraded.close()
