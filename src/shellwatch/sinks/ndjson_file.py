"""An NDJSON alert file: append-only, one alert per line, durable per batch, idempotent by alert id.

Each batch is written with one append of whole lines and fsynced before :meth:`NdjsonFileSink.deliver` returns, so
a reader tailing the file (``tail -f``, an agent shipping it) only ever sees a partial line while a write is in
progress, never between batches. A crash in the middle of a write leaves a torn last line: opening the file cuts
it off. Opening also learns which alert ids the file already holds, so a batch delivered again after a crash adds
only the alerts the file is missing; alert revisions are the identity, not the batch key, because a torn batch is
half in the file. A revision is the alert id (``kibana.alert.uuid``), and for a suppressed alert also its
``kibana.alert.suppression.docs_count``: a later run that folds more events into the alert delivers it again, and
that update is a new line (the one with the largest count is current). The file is created owner-only (0600):
alerts describe the monitored hosts.

If the file is replaced or truncated behind the sink's back (a rotation), the next delivery opens the path again
and learns its content afresh.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import orjson

from shellwatch.output.json_lines import dumps
from shellwatch.sinks.base import ALERT_ID, AlertBatch, SinkError, revision

_READ_BLOCK = 1 << 20


class NdjsonFileSink:
    """Alerts appended to an NDJSON file (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._descriptor: int | None = None
        self._identity: tuple[int, int] = (0, 0)
        self._size = 0
        self.held: set[str] = set()
        """Alert ids the file holds."""
        self.torn_bytes = 0
        """Bytes of a torn last line cut off when the file was last opened."""
        self._open()

    @property
    def name(self) -> str:
        return f"ndjson:{self.path.resolve()}"

    def _open(self) -> None:
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise SinkError(f"{self.path}: cannot open: {error.strerror or error}") from error
        try:
            held, complete, size = _scan(descriptor)
            if complete < size:
                # A write cut short by a crash: the alerts on that line are delivered again in full.
                os.ftruncate(descriptor, complete)
                os.fsync(descriptor)
            if size == 0:
                _fsync_directory(self.path)
            status = os.fstat(descriptor)
        except OSError as error:
            os.close(descriptor)
            raise SinkError(f"{self.path}: cannot read: {error.strerror or error}") from error
        self._close_descriptor()
        self._descriptor = descriptor
        self._identity = (status.st_dev, status.st_ino)
        self._size = complete
        self.torn_bytes = size - complete
        self.held = held

    def _still_ours(self) -> bool:
        """Whether the path is still the file this sink has open, at least as long as it wrote it."""
        try:
            status = os.stat(self.path)
        except OSError:
            return False
        return (status.st_dev, status.st_ino) == self._identity and status.st_size >= self._size

    def deliver(self, batch: AlertBatch) -> None:
        if self._descriptor is None or not self._still_ours():
            self._open()
        descriptor = self._descriptor
        assert descriptor is not None
        lines: list[bytes] = []
        adding: set[str] = set()
        for alert in batch.alerts:
            alert_id = revision(alert)
            if alert_id in self.held or alert_id in adding:
                continue
            adding.add(alert_id)
            lines.append(dumps(alert) + b"\n")
        if not lines:
            return
        data = memoryview(b"".join(lines))
        try:
            while data:
                written = os.write(descriptor, data)
                data = data[written:]
            os.fsync(descriptor)
        except OSError as error:
            # Leave no partial line behind for the next batch to follow: cut back to what was there.
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, self._size)
            raise SinkError(f"{self.path}: cannot write: {error.strerror or error}") from error
        self._size = os.fstat(descriptor).st_size
        self.held |= adding

    def flush(self, timeout: float | None = None) -> int:
        """Nothing is ever pending: every delivery is written and fsynced before it returns."""
        return 0

    def close(self) -> None:
        self._close_descriptor()

    def _close_descriptor(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _scan(descriptor: int) -> tuple[set[str], int, int]:
    """(alert ids of the complete lines, bytes up to the end of the last complete line, file size)."""
    held: set[str] = set()
    offset = 0
    complete = 0
    rest = b""
    os.lseek(descriptor, 0, os.SEEK_SET)
    while block := os.read(descriptor, _READ_BLOCK):
        offset += len(block)
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            complete += len(line) + 1
            alert_id = _alert_id(line)
            if alert_id is not None:
                held.add(alert_id)
    return held, complete, offset


def _alert_id(line: bytes) -> str | None:
    if not line.strip():
        return None
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # a line this sink did not write whole; left as it is
    if not isinstance(document, dict) or not isinstance(document.get(ALERT_ID), str):
        return None
    return revision(document)


def _fsync_directory(path: Path) -> None:
    """Make a new file's directory entry durable (the file's own fsync does not cover it)."""
    try:
        descriptor = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
