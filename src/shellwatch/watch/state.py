"""The watcher's durable state: one embedded SQLite database per state folder.

What it holds, and why each part is there:

* ``input_position``: how far each followed input has been read (byte offset and line of an NDJSON file, last
  record id of an EVTX file, size and modification time of a file read whole, and how far a pass over an EVTX or
  whole file got when it was cut short), with what identifies the file (device, inode, a hash of its first bytes
  or of the last EVTX record read) so that a replaced, truncated or cleared file is noticed.
* ``pending``: matches ingested but not yet handled by their rule's next run (the flat event, where it was read, its
  alert id). A rule's run evaluates exactly the events ingested since its previous run: positions, not clocks.
* ``produced``: every alert id ever created, so that no id is created twice, whatever is read again.
* ``rule_state`` and ``rule_run``: when each rule last ran, and what every run did.
* ``outbox`` and ``outbox_sink``: alert batches created by runs and, per sink, those not yet acknowledged.

Commit order, which makes ``kill -9`` at any instant lose nothing and duplicate nothing:

1. one transaction advances an input's read position AND stores that chunk's matches in ``pending``;
2. one transaction per rule run moves its pending matches to ``produced`` and the run's alert batch to the outbox
   (one row per configured sink);
3. each sink is handed its outbox batches; once a sink returns (the batch is durable there) the row is deleted.

Killed before (1) commits, the chunk is read again and gives the same alert ids; before (2), the matches wait in
``pending``; between delivering and (3)'s delete, the batch is delivered again and the sink, idempotent by batch
key, keeps one copy.

The database runs in WAL mode with ``synchronous=FULL``: every commit is on disk before the next step starts, so a
power loss cannot roll back a position whose alerts a sink already holds. Its folder is created owner-only (0700)
and the database files 0600: alerts and read positions describe the monitored hosts.

Other modules (new-terms history, threshold buckets) keep their own tables in the same database so that their
state commits atomically with the read positions: :attr:`WatchState.connection` is the connection, and
:meth:`WatchState.transaction` the transaction every write belongs in.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from shellwatch.output.json_lines import dumps
from shellwatch.sinks.base import AlertBatch
from shellwatch.sources.record import Origin

DATABASE_NAME = "watch.sqlite3"
LOCK_NAME = "watch.lock"
SCHEMA_VERSION = 2
"""1 -> 2: ``input_position.pass_highest`` (exact resumption of an EVTX pass cut short)."""

PENDING_PAGE = 10_000
"""Pending matches read from the database at once."""

InputKind = Literal["ndjson", "evtx", "whole"]
"""How an input is followed: by byte offset after the last complete line, by last EVTX record id, or read whole
again when it changes (other formats; only alerts with new ids are created)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS input_position (
    key TEXT PRIMARY KEY,
    display TEXT NOT NULL,
    kind TEXT NOT NULL,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    line INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    head_length INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    pass_highest INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    rule_id TEXT NOT NULL,
    event BLOB NOT NULL,
    origin BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_rule ON pending (rule_id, seq);
CREATE TABLE IF NOT EXISTS produced (alert_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, run INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_state (
    rule_id TEXT PRIMARY KEY,
    last_run_ms INTEGER NOT NULL,
    events_at_last_run INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_run (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    events INTEGER NOT NULL,
    matches INTEGER NOT NULL,
    created INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    gap_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_key TEXT NOT NULL UNIQUE,
    alerts BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_sink (
    sink TEXT NOT NULL,
    batch INTEGER NOT NULL REFERENCES outbox (id),
    PRIMARY KEY (sink, batch)
) WITHOUT ROWID;
"""


class StateError(Exception):
    """The state folder cannot be used: not writable, locked by another watcher, or of a newer schema."""


def default_state_dir() -> Path:
    """Where the state lives without ``--state``: ``$XDG_STATE_HOME/shellwatch/watch`` (``~/.local/state`` when
    unset), or ``%LOCALAPPDATA%\\shellwatch\\watch`` on Windows."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "shellwatch" / "watch"


@dataclass(frozen=True, slots=True)
class InputPosition:
    """How far one input has been read, and what identifies the file that was read."""

    key: str
    """The input's real path (symbolic links resolved): the same file named two ways is one input."""
    display: str
    """The path as listed for reading: what alert origins (and content-hashed alert ids) name."""
    kind: InputKind
    device: int = 0
    inode: int = 0
    offset: int = 0
    """ndjson: bytes consumed (always at a line end); evtx: the highest record id read by finished passes (the
    records at or below it are skipped); whole: unused."""
    line: int = 0
    """ndjson: lines consumed, so that origins carry the line number a one-shot read gives; evtx and whole: records
    of an unfinished pass already handed on, in the reader's order (0: no pass under way)."""
    head_hash: bytes = b""
    """ndjson: SHA-256 of the file's first ``head_length`` bytes, to notice a file rewritten in place; evtx: SHA-256
    of the record ``offset`` names, to notice a cleared log or another log under the same name."""
    head_length: int = 0
    size: int = 0
    """evtx and whole: the size when the file was last read to its end (0: not read to its end yet)."""
    mtime_ns: int = 0
    pass_highest: int = 0
    """evtx: the highest record id an unfinished pass handed on (the records it has not reached yet are those of
    later positions in the reader's order, or with a higher id: a wrapping log writes over its oldest chunks)."""


@dataclass(frozen=True, slots=True)
class PendingMatch:
    """A match waiting for its rule's next run."""

    seq: int
    alert_id: str
    rule_id: str
    event: dict[str, Any]
    origin: Origin


@dataclass(frozen=True, slots=True)
class RuleRunRecord:
    """What one rule run did (a row of ``rule_run``)."""

    rule_id: str
    started_ms: int
    events: int
    """Events ingested (from every input) since the rule's previous run."""
    matches: int
    created: int
    duplicates: int
    dropped: int
    """New alerts not created because the run reached max_signals."""
    gap_ms: int
    """Kibana's gap between runs (time since the previous run beyond the look-back), 0 when none."""


class WatchState:
    """The open state database of one state folder; one watcher at a time holds it (an advisory file lock)."""

    def __init__(self, folder: Path, connection: sqlite3.Connection, lock: int | None) -> None:
        self.folder = folder
        self._connection = connection
        self._lock = lock
        self._in_transaction = False

    @classmethod
    def open(cls, folder: Path) -> WatchState:
        """Open (creating it if needed) the state in ``folder``; raises :class:`StateError` when the folder cannot
        be used or another watcher holds it."""
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise StateError(f"{folder}: cannot create the state folder: {error.strerror or error}") from error
        lock = _lock(folder / LOCK_NAME)
        database = folder / DATABASE_NAME
        try:
            # Created owner-only before SQLite opens it; SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(database, 0o600)
            connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.executescript(_SCHEMA)
            found = connection.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if found is None:
                connection.execute("INSERT INTO meta VALUES ('schema', ?), ('events', 0)", (SCHEMA_VERSION,))
            elif found[0] > SCHEMA_VERSION:
                raise StateError(f"{database}: written by a newer shellwatch (schema {found[0]})")
            elif found[0] < SCHEMA_VERSION:
                _upgrade(connection, found[0])
        except (OSError, sqlite3.Error) as error:
            _unlock(lock)
            raise StateError(f"{database}: cannot open the state database: {error}") from error
        except StateError:
            _unlock(lock)
            raise
        return cls(folder, connection, lock)

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (autocommit mode: write inside :meth:`transaction`). Other modules may create
        their own tables here (``CREATE TABLE IF NOT EXISTS``, names prefixed with the module's concept)."""
        return self._connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed when the block ends, rolled back on an exception.
        Nested use joins the outer transaction."""
        if self._in_transaction:
            yield self._connection
            return
        self._connection.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        else:
            self._connection.execute("COMMIT")
        finally:
            self._in_transaction = False

    def close(self) -> None:
        """Close the database and release the folder for another watcher."""
        self._connection.close()
        _unlock(self._lock)
        self._lock = None

    # ---------------------------------------------------------------------------------------------- positions

    def positions(self) -> dict[str, InputPosition]:
        """Every stored input position, by key."""
        rows = self._connection.execute(
            "SELECT key, display, kind, device, inode, offset, line, head_hash, head_length, size, mtime_ns,"
            " pass_highest FROM input_position"
        )
        return {row[0]: InputPosition(*row) for row in rows}

    def save_position(self, position: InputPosition) -> None:
        """Store an input's position (inside a transaction)."""
        p = position
        self._connection.execute(
            "INSERT OR REPLACE INTO input_position VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (p.key, p.display, p.kind, p.device, p.inode, p.offset, p.line, p.head_hash, p.head_length, p.size,
             p.mtime_ns, p.pass_highest),
        )  # fmt: skip

    def forget_position(self, key: str) -> None:
        """Drop an input's position (a file followed under another name now)."""
        self._connection.execute("DELETE FROM input_position WHERE key = ?", (key,))

    # ------------------------------------------------------------------------------------- events and matches

    def count_events(self, events: int) -> None:
        """Add ``events`` to the number of events ever ingested (inside the transaction that ingested them)."""
        self._connection.execute("UPDATE meta SET value = value + ? WHERE name = 'events'", (events,))

    def events_ingested(self) -> int:
        """Events ingested since the state was created."""
        row = self._connection.execute("SELECT value FROM meta WHERE name = 'events'").fetchone()
        return int(row[0])

    def add_pending(self, alert_id: str, rule_id: str, event: Mapping[str, Any], origin: Origin) -> bool:
        """Keep a match for its rule's next run; False when its alert id is already pending or produced."""
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO pending (alert_id, rule_id, event, origin)"
            " SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM produced WHERE alert_id = ?)",
            (
                alert_id,
                rule_id,
                orjson.dumps(dict(event), default=str),
                orjson.dumps([origin.path, origin.record_id, origin.line]),
                alert_id,
            ),
        )
        return cursor.rowcount == 1

    def iter_pending(self, rule_id: str, page: int | None = None) -> Iterator[PendingMatch]:
        """The rule's pending matches, in ingestion order, read ``page`` rows (:data:`PENDING_PAGE`) at a time: a
        backlog (or a flood of forged matching events) never has to be in memory at once."""
        page = page or PENDING_PAGE
        after = 0
        while True:
            rows = self._connection.execute(
                "SELECT seq, alert_id, rule_id, event, origin FROM pending WHERE rule_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (rule_id, after, page),
            ).fetchall()
            for seq, alert_id, rule, event, origin in rows:
                yield PendingMatch(seq, alert_id, rule, orjson.loads(event), Origin(*orjson.loads(origin)))
            if len(rows) < page:
                return
            after = rows[-1][0]

    def pending_for(self, rule_id: str) -> list[PendingMatch]:
        """Every pending match of the rule, in ingestion order (for the rule types that need them all at once)."""
        return list(self.iter_pending(rule_id))

    def pending_rules(self) -> dict[str, int]:
        """Rule id -> matches pending for it."""
        return dict(self._connection.execute("SELECT rule_id, count(*) FROM pending GROUP BY rule_id").fetchall())

    def clear_pending(self, rule_id: str) -> None:
        self._connection.execute("DELETE FROM pending WHERE rule_id = ?", (rule_id,))

    def is_produced(self, alert_id: str) -> bool:
        found = self._connection.execute("SELECT 1 FROM produced WHERE alert_id = ?", (alert_id,)).fetchone()
        return found is not None

    def produced_count(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM produced").fetchone()[0])

    # -------------------------------------------------------------------------------------------------- runs

    def last_run(self, rule_id: str) -> tuple[int, int] | None:
        """(start of the rule's last run in epoch milliseconds, events ingested at that moment), or None."""
        row = self._connection.execute(
            "SELECT last_run_ms, events_at_last_run FROM rule_state WHERE rule_id = ?", (rule_id,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def record_run(self, run: RuleRunRecord, created: Sequence[str], events_now: int) -> int:
        """Store a run, the alert ids it created, and the rule's new last run (inside a transaction); its id."""
        cursor = self._connection.execute(
            "INSERT INTO rule_run (rule_id, started_ms, events, matches, created, duplicates, dropped, gap_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run.rule_id, run.started_ms, run.events, run.matches, run.created, run.duplicates, run.dropped,
             run.gap_ms),
        )  # fmt: skip
        run_id = int(cursor.lastrowid or 0)
        self._connection.executemany(
            "INSERT OR IGNORE INTO produced VALUES (?, ?, ?)", [(alert_id, run.rule_id, run_id) for alert_id in created]
        )
        self._connection.execute(
            "INSERT OR REPLACE INTO rule_state VALUES (?, ?, ?)", (run.rule_id, run.started_ms, events_now)
        )
        return run_id

    def run_count(self, rule_id: str) -> int:
        """How many runs of the rule are stored."""
        row = self._connection.execute("SELECT count(*) FROM rule_run WHERE rule_id = ?", (rule_id,)).fetchone()
        return int(row[0])

    def runs(self, rule_id: str | None = None) -> list[RuleRunRecord]:
        """Stored runs, oldest first (of one rule, or all)."""
        query = "SELECT rule_id, started_ms, events, matches, created, duplicates, dropped, gap_ms FROM rule_run"
        parameters: tuple[str, ...] = ()
        if rule_id is not None:
            query += " WHERE rule_id = ?"
            parameters = (rule_id,)
        return [RuleRunRecord(*row) for row in self._connection.execute(query + " ORDER BY id", parameters)]

    # ------------------------------------------------------------------------------------------------ outbox

    def enqueue(self, batch: AlertBatch, sinks: Sequence[str]) -> None:
        """Put a batch in the outbox of each sink (inside the transaction that created its alerts)."""
        payload = b"".join(dumps(alert) + b"\n" for alert in batch.alerts)
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO outbox (batch_key, alerts) VALUES (?, ?)", (batch.key, payload)
        )
        if cursor.rowcount != 1:
            return  # the same alerts already wait: a batch key is a function of its alert ids
        batch_id = cursor.lastrowid
        self._connection.executemany("INSERT INTO outbox_sink VALUES (?, ?)", [(sink, batch_id) for sink in sinks])

    def undelivered(self, sink: str) -> Iterator[AlertBatch]:
        """The batches waiting for ``sink``, oldest first (read lazily: one batch in memory at a time)."""
        ids = [
            row[0]
            for row in self._connection.execute(
                "SELECT batch FROM outbox_sink WHERE sink = ? ORDER BY batch", (sink,)
            ).fetchall()
        ]
        for batch_id in ids:
            row = self._connection.execute("SELECT batch_key, alerts FROM outbox WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                continue
            alerts = tuple(orjson.loads(line) for line in bytes(row[1]).splitlines() if line)
            yield AlertBatch(row[0], alerts)

    def mark_delivered(self, sink: str, batch_key: str) -> None:
        """``sink`` holds the batch: drop it from that sink's outbox, and from the outbox once every sink has it."""
        with self.transaction() as connection:
            row = connection.execute("SELECT id FROM outbox WHERE batch_key = ?", (batch_key,)).fetchone()
            if row is None:
                return
            connection.execute("DELETE FROM outbox_sink WHERE sink = ? AND batch = ?", (sink, row[0]))
            left = connection.execute("SELECT 1 FROM outbox_sink WHERE batch = ?", (row[0],)).fetchone()
            if left is None:
                connection.execute("DELETE FROM outbox WHERE id = ?", (row[0],))

    def waiting_by_sink(self) -> dict[str, int]:
        """Sink name -> batches waiting for it (sinks no longer configured included)."""
        return dict(self._connection.execute("SELECT sink, count(*) FROM outbox_sink GROUP BY sink").fetchall())


def _upgrade(connection: sqlite3.Connection, version: int) -> None:
    """Bring a database of an earlier schema to this one, in one transaction."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        if version < 2:
            connection.execute("ALTER TABLE input_position ADD COLUMN pass_highest INTEGER NOT NULL DEFAULT 0")
        connection.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION,))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _lock(path: Path) -> int | None:
    """Take the folder's advisory lock (released by the kernel when the process dies, even by kill -9)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one watcher per state folder is then up to the user
        return None
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise StateError(f"{path}: cannot create the lock file: {error.strerror or error}") from error
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(descriptor)
        raise StateError(f"{path.parent}: another shellwatch watch uses this state folder") from error
    return descriptor


def _unlock(descriptor: int | None) -> None:
    if descriptor is not None:
        os.close(descriptor)
