"""The disk spool of a sink: alert batches a receiver has not acknowledged yet, kept until they can be sent.

A spool is a folder owned by one sink at a time (an advisory lock on ``.lock`` keeps a second process out)::

    pending/000000000001-<batch key>.json   waiting to be sent, oldest first (the number orders them)
    rejected/<batch key>.json               refused by the receiver for good, with <batch key>.reason beside it

Each file holds one batch, exactly the bytes to send. A file appears whole or not at all: it is written to a
temporary name, fsynced, renamed into place and the folder fsynced, so a batch the spool accepted survives a crash
or a power cut. Removing a sent batch is not fsynced: if the removal is lost, the batch is sent again, which the
batch key makes harmless at the receiver. Everything is owner-only (folders 0700, files 0600), since alerts carry
command lines, user names and host names.

The spool is bounded: :meth:`Spool.put` raises :class:`~shellwatch.sinks.base.SinkError` rather than grow past
``max_bytes``. Pending and rejected batches both count, since both take disk until someone acts.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

from shellwatch.sinks.base import SinkError

DEFAULT_SPOOL_LIMIT = 256 * 1024 * 1024
"""Bytes a spool may hold before it refuses more batches."""

BATCH_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""Keys a spool can name a file by (and a webhook can send as a header): :func:`~shellwatch.sinks.base.batch_key`
gives 64 hex digits."""

_PENDING_NAME = re.compile(r"(?P<seq>[0-9]{12})-(?P<key>[A-Za-z0-9_-]{1,128})\.json")
_REJECTED_NAME = re.compile(r"(?P<key>[A-Za-z0-9_-]{1,128})\.json")
_TEMP_PREFIX = ".tmp-"


class SpooledBatch(NamedTuple):
    """One batch file in a spool."""

    key: str
    path: Path
    size: int


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (the entry lives in the folder, not in the file)."""
    if sys.platform == "win32":  # Windows cannot open a folder for fsync; its renames are journaled.
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and not applied to a folder that already existed.
    with contextlib.suppress(PermissionError):
        directory.chmod(0o700)


def _write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write ``directory/name`` whole or not at all, durable when this returns."""
    final = directory / name
    temp = directory / f"{_TEMP_PREFIX}{name}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    os.close(fd)
    os.replace(temp, final)
    _fsync_dir(directory)
    return final


class Spool:
    """A folder of batches waiting to be sent (see the module docstring for its layout and guarantees)."""

    def __init__(self, directory: Path | str, *, max_bytes: int = DEFAULT_SPOOL_LIMIT) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool limit must be positive, not {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.pending_dir = self.directory / "pending"
        self.rejected_dir = self.directory / "rejected"
        self._pending: dict[str, SpooledBatch] = {}
        self._rejected: dict[str, SpooledBatch] = {}
        self._next_seq = 1
        self._bytes = 0
        self._lock_fd: int | None = None
        try:
            for folder in (self.directory, self.pending_dir, self.rejected_dir):
                _make_private_dir(folder)
            self._lock()
            self._load()
        except OSError as exc:
            self.close()
            raise SinkError(f"spool folder {self.directory} is not usable: {exc.strerror or exc}") from exc

    def _lock(self) -> None:
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SinkError(f"spool folder {self.directory} is in use by another sink") from None
        self._lock_fd = fd

    def _load(self) -> None:
        """Index what an earlier run left: whole batch files; temporary files are batches never accepted."""
        for path in self.pending_dir.iterdir():
            if path.name.startswith(_TEMP_PREFIX):
                path.unlink(missing_ok=True)
                continue
            match = _PENDING_NAME.fullmatch(path.name)
            if match is None:
                continue
            seq, key = int(match["seq"]), match["key"]
            entry = SpooledBatch(key, path, path.stat().st_size)
            earlier = self._pending.get(key)
            if earlier is not None:  # the same batch spooled twice (a crash between rename and unlink): keep one
                keep, drop = sorted((earlier, entry), key=lambda item: item.path.name)
                drop.path.unlink(missing_ok=True)
                entry = keep
            self._pending[key] = entry
            self._next_seq = max(self._next_seq, seq + 1)
        self._pending = dict(sorted(self._pending.items(), key=lambda item: item[1].path.name))
        for path in self.rejected_dir.iterdir():
            if path.name.startswith(_TEMP_PREFIX):
                path.unlink(missing_ok=True)
                continue
            match = _REJECTED_NAME.fullmatch(path.name)
            if match is not None:
                self._rejected[match["key"]] = SpooledBatch(match["key"], path, path.stat().st_size)
        self._bytes = sum(entry.size for entry in self._pending.values()) + sum(
            entry.size for entry in self._rejected.values()
        )

    def __len__(self) -> int:
        """Batches waiting to be sent."""
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        """Whether the spool holds the batch ``key``, waiting or rejected."""
        return key in self._pending or key in self._rejected

    @property
    def bytes_used(self) -> int:
        """Bytes held by pending and rejected batches, the figure ``max_bytes`` bounds."""
        return self._bytes

    def pending(self) -> list[SpooledBatch]:
        """The batches waiting to be sent, oldest first."""
        return list(self._pending.values())

    def rejected(self) -> list[SpooledBatch]:
        """The batches the receiver refused for good."""
        return list(self._rejected.values())

    def put(self, key: str, body: bytes) -> SpooledBatch:
        """Keep ``body`` as batch ``key``, durable when this returns; a batch already held is not written again.

        Raises :class:`SinkError` when the spool is full or the folder cannot be written."""
        if not BATCH_KEY.fullmatch(key):
            raise ValueError(f"batch key {key[:80]!r} is not 1-128 letters, digits, '-' or '_'")
        held = self._pending.get(key) or self._rejected.get(key)
        if held is not None:
            return held
        self._check_room(len(body))
        name = f"{self._next_seq:012d}-{key}.json"
        try:
            path = _write_atomically(self.pending_dir, name, body)
        except OSError as exc:
            raise SinkError(f"cannot write to spool folder {self.pending_dir}: {exc.strerror or exc}") from exc
        self._next_seq += 1
        self._bytes += len(body)
        entry = SpooledBatch(key, path, len(body))
        self._pending[key] = entry
        return entry

    def _check_room(self, size: int) -> None:
        used = self._bytes
        if used + size > self.max_bytes:
            raise SinkError(
                f"spool folder {self.directory} is full: {len(self._pending)} batches waiting and "
                f"{len(self._rejected)} rejected take {used:,} bytes; this batch ({size:,} bytes) would pass "
                f"the limit of {self.max_bytes:,} bytes. Bring the receiver back (or clear rejected/) or raise "
                "the limit."
            )

    def read(self, entry: SpooledBatch) -> bytes:
        """The bytes of a spooled batch."""
        return entry.path.read_bytes()

    def remove(self, entry: SpooledBatch) -> None:
        """Forget a batch the receiver acknowledged."""
        if self._pending.pop(entry.key, None) is not None:
            self._bytes -= entry.size
        entry.path.unlink(missing_ok=True)

    def reject(self, entry: SpooledBatch, reason: str) -> Path:
        """Move a pending batch to ``rejected/`` with ``reason`` beside it; where it now is."""
        target = self.rejected_dir / f"{entry.key}.json"
        try:
            _write_atomically(self.rejected_dir, f"{entry.key}.reason", reason.encode() + b"\n")
            os.replace(entry.path, target)
            _fsync_dir(self.rejected_dir)
        except OSError as exc:
            raise SinkError(f"cannot move a rejected batch to {self.rejected_dir}: {exc.strerror or exc}") from exc
        self._pending.pop(entry.key, None)
        self._rejected[entry.key] = SpooledBatch(entry.key, target, entry.size)
        return target

    def put_rejected(self, key: str, body: bytes, reason: str) -> Path:
        """Keep a batch the receiver refused for good (it was never pending); where it is."""
        held = self._pending.get(key) or self._rejected.get(key)
        if held is not None:
            return held.path if key in self._rejected else self.reject(held, reason)
        if not BATCH_KEY.fullmatch(key):
            raise ValueError(f"batch key {key[:80]!r} is not 1-128 letters, digits, '-' or '_'")
        self._check_room(len(body))
        try:
            _write_atomically(self.rejected_dir, f"{key}.reason", reason.encode() + b"\n")
            path = _write_atomically(self.rejected_dir, f"{key}.json", body)
        except OSError as exc:
            raise SinkError(f"cannot write to spool folder {self.rejected_dir}: {exc.strerror or exc}") from exc
        self._bytes += len(body)
        self._rejected[key] = SpooledBatch(key, path, len(body))
        return path

    def close(self) -> None:
        """Release the folder's lock; the batches stay for the next sink that opens it."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None
