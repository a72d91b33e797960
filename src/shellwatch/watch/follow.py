"""Following inputs: what each file (or stdin) gained since its stored position, as raw records.

Every record comes from the hunt's own readers (:mod:`shellwatch.sources`); this module only decides which part of
an input is new, and how to say where reading got to:

* NDJSON (a UTF-8 file whose first value is an object): read from the byte offset after the last complete line. A
  last line without its newline is not consumed until the writer finishes it. Lines keep the numbers a one-shot
  read gives them (the position stores the line count too), so content-identified events get the alert ids
  ``hunt`` gives them. A file replaced by another (new inode), truncated (shorter than the offset) or rewritten in
  place (its first bytes changed) is read again from its start.
* EVTX: the file is parsed again whenever its size or modification time changes (an export rewritten, a log
  copied again); records whose id is not above the highest id already read are skipped.
* Anything else the readers know (event XML, CSV, a JSON array, archives): read whole again when it changes; the
  matches whose alert ids already exist are not alerted again.
* stdin (``-``): NDJSON, read as it arrives; a pipe cannot be read again, so it has no stored position.

A file renamed within the followed paths (log rotation) keeps its position under its new name: it is recognized by
device, inode and first bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import select
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import orjson

from shellwatch.normalize.context import DEFAULT_PROCESS_MEMORY, SourceContext
from shellwatch.sources.inputs import STDIN, Input, list_inputs
from shellwatch.sources.json_records import MAX_RECORD_BYTES, read_json
from shellwatch.sources.reader import read_input
from shellwatch.sources.record import Origin, RawRecord, ReadProblem
from shellwatch.sources.sniff import sniff
from shellwatch.sources.streams import PEEK_SIZE
from shellwatch.watch.state import InputKind, InputPosition

ProblemSink = Callable[[ReadProblem], None]

HEAD_BYTES = 4096
"""How many first bytes of an NDJSON file identify it (a rewrite in place changes them)."""
CHUNK_BYTES = 4 << 20
"""An NDJSON poll reads at most this much (more only to finish one long line): one commit's worth."""
CHUNK_RECORDS = 5000
"""A re-read input (EVTX, whole files) hands on at most this many records per poll."""
_UTF8_BOM = b"\xef\xbb\xbf"


class Chunk(NamedTuple):
    """Records an input gained, and the position to store once their matches are stored."""

    records: list[RawRecord]
    position: InputPosition
    note: str | None = None
    """Something the user should know about the input (replaced, truncated, renamed)."""


class Follower(Protocol):
    """One followed input."""

    @property
    def position(self) -> InputPosition: ...

    @property
    def context(self) -> SourceContext:
        """The normalizers' memory for this input (a CrowdStrike process for its children)."""
        ...

    @property
    def persistent(self) -> bool:
        """Whether the position is stored (not for stdin)."""
        ...

    @property
    def done(self) -> bool:
        """Nothing more can come (stdin at its end)."""
        ...

    def poll(self) -> Chunk | None:
        """The next chunk, or None when nothing new is complete yet."""
        ...

    def advance(self, position: InputPosition) -> None:
        """The chunk's position was stored: continue from it."""
        ...


def input_kind(head: bytes, size: int) -> InputKind | None:
    """How to follow a file that starts with ``head``; None when too little is written yet to tell."""
    sniffed = sniff(head)
    if sniffed.format == "evtx":
        return "evtx"
    if sniffed.format == "empty":
        return None
    if sniffed.format == "json" and sniffed.encoding == "utf-8":
        return "ndjson" if head.removeprefix(_UTF8_BOM).lstrip()[:1] == b"{" else "whole"
    if sniffed.format == "unknown" and size < PEEK_SIZE:
        return None  # perhaps the first bytes of something still being written
    return "whole"


def _file_identity(position: InputPosition, status: os.stat_result) -> InputPosition:
    return dataclasses.replace(position, device=status.st_dev, inode=status.st_ino)


class NdjsonFollower:
    """An NDJSON file, read from the offset after its last complete line."""

    persistent = True
    done = False

    def __init__(self, position: InputPosition, on_problem: ProblemSink, process_memory: int) -> None:
        self.position = position
        self.context = SourceContext(process_memory=process_memory)
        self._on_problem = on_problem
        self._process_memory = process_memory

    def advance(self, position: InputPosition) -> None:
        self.position = position

    def poll(self) -> Chunk | None:
        try:
            file = open(self.position.display, "rb")  # noqa: SIM115 -- closed by the with below
        except OSError:
            return None  # gone for now (rotated away, being replaced): its position waits
        with file:
            status = os.fstat(file.fileno())
            position, note = self._checked(file, status)
            available = status.st_size - position.offset
            if available <= 0:
                return Chunk([], position, note) if note else None
            file.seek(position.offset)
            data = file.read(min(available, CHUNK_BYTES))
            end = data.rfind(b"\n")
            if end < 0 and available > len(data):
                # One line longer than a chunk: read it whole if a record may be that long.
                file.seek(position.offset)
                data = file.read(min(available, MAX_RECORD_BYTES + 1))
                end = data.rfind(b"\n")
                if end < 0 and len(data) > MAX_RECORD_BYTES:
                    return self._skip_long_line(file, position, note)
            if end < 0:
                return Chunk([], position, note) if note else None  # a partial line: wait for its end
            data = data[: end + 1]
            records = self._records(data, position)
            offset = position.offset + len(data)
            head_length, head_hash = position.head_length, position.head_hash
            if head_length < HEAD_BYTES:
                head_length = min(HEAD_BYTES, offset)
                file.seek(0)
                head_hash = hashlib.sha256(file.read(head_length)).digest()
            advanced = dataclasses.replace(
                position,
                offset=offset,
                line=position.line + data.count(b"\n"),
                head_hash=head_hash,
                head_length=head_length,
                size=status.st_size,
                mtime_ns=status.st_mtime_ns,
            )
            return Chunk(records, advanced, note)

    def _checked(self, file: io.BufferedReader, status: os.stat_result) -> tuple[InputPosition, str | None]:
        """The position to read from: the stored one, or the start when the file is no longer the one read."""
        position = self.position
        if position.device == 0 and position.inode == 0:
            return _file_identity(position, status), None
        reason = None
        if (status.st_dev, status.st_ino) != (position.device, position.inode):
            reason = "replaced by another file"
        elif status.st_size < position.offset:
            reason = "truncated"
        elif position.head_length:
            file.seek(0)
            if hashlib.sha256(file.read(position.head_length)).digest() != position.head_hash:
                reason = "rewritten"
        if reason is None:
            return position, None
        self.context = SourceContext(process_memory=self._process_memory)
        fresh = InputPosition(key=position.key, display=position.display, kind="ndjson")
        return _file_identity(fresh, status), f"{position.display}: {reason}; reading it from the start"

    def _records(self, data: bytes, position: InputPosition) -> list[RawRecord]:
        base = position.line

        def shifted(problem: ReadProblem) -> None:
            origin = problem.origin
            line = None if origin.line is None else origin.line + base
            self._on_problem(ReadProblem(Origin(origin.path, origin.record_id, line), problem.reason))

        text = data[len(_UTF8_BOM) :] if position.offset == 0 and data.startswith(_UTF8_BOM) else data
        records = list(read_json(io.BytesIO(text), position.display, shifted))
        for record in records:
            if record.origin.line is not None:
                record.origin.line += base
        return records

    def _skip_long_line(self, file: io.BufferedReader, position: InputPosition, note: str | None) -> Chunk | None:
        """A line over the record limit: skipped once its end is written, as the hunt's reader skips it."""
        offset = position.offset + MAX_RECORD_BYTES + 1
        file.seek(offset)
        while block := file.read(1 << 20):
            found = block.find(b"\n")
            if found >= 0:
                line = position.line + 1
                self._on_problem(
                    ReadProblem(
                        Origin(position.display, line=line), f"line longer than {MAX_RECORD_BYTES >> 20} MiB; skipped"
                    )
                )
                return Chunk([], dataclasses.replace(position, offset=offset + found + 1, line=line), note)
            offset += len(block)
        return Chunk([], position, note) if note else None


def record_digest(record: RawRecord) -> bytes:
    """SHA-256 of a record's content: what tells the record an EVTX id names from another with the same id."""
    return hashlib.sha256(orjson.dumps(record.data, option=orjson.OPT_SORT_KEYS, default=str)).digest()


@dataclass(slots=True)
class _Pass:
    """One read of a whole file in the reader's order (file order: a wrapped EVTX log does not give ids in order)."""

    status: os.stat_result
    threshold: int
    """evtx: records with an id at or below it were read by finished passes."""
    anchor: bytes
    """evtx: the digest the record ``threshold`` had when it was read (empty: nothing to check)."""
    resume_at: int = 0
    """Records a pass cut short had consumed: those of them at or below ``resume_highest`` were handed on."""
    resume_highest: int = 0
    consumed: int = 0
    highest: int = 0
    highest_record: RawRecord | None = None
    """The record ``highest`` names while its digest is not taken yet."""
    highest_digest: bytes = b""
    anchor_seen: bool = False
    lower_seen: bool = False
    """evtx: a record at or below ``threshold`` other than the anchor was met."""

    def __post_init__(self) -> None:
        self.highest = self.threshold
        self.highest_digest = self.anchor

    def seal(self) -> None:
        """Take the digest of the highest record before it is handed on (normalizing may change its data)."""
        if self.highest_record is not None:
            self.highest_digest = record_digest(self.highest_record)
            self.highest_record = None


class RereadFollower:
    """An EVTX file (new record ids only) or a file of another format, read again whenever it changes.

    An EVTX log is known by the record its highest read id names: when that record has other content, or is gone
    while lower ids are there (a cleared log restarts its ids, another export sits under the same name), the file
    is read from its start, and the alert ids already produced keep what was alerted from being alerted again.
    A pass cut short (a crash between two chunks) resumes exactly: the stored position says how many records, in
    the reader's order, it had handed on, and the highest id among them, so that a wrapped log's lower ids that
    come later in the file are still read."""

    persistent = True
    done = False

    def __init__(
        self, position: InputPosition, on_problem: ProblemSink, process_memory: int, batch: int = CHUNK_RECORDS
    ) -> None:
        self.position = position
        self.context = SourceContext(process_memory=process_memory)
        self._on_problem = on_problem
        self._batch = batch
        self._reading: Iterator[RawRecord] | None = None
        self._pass: _Pass | None = None
        self._reported: set[str] = set()

    def advance(self, position: InputPosition) -> None:
        self.position = position

    def _problem(self, problem: ReadProblem) -> None:
        # A file read again shows the same damage again: each problem is reported once per process.
        text = str(problem)
        if text not in self._reported:
            self._reported.add(text)
            self._on_problem(problem)

    def _begin(self) -> str | None:
        """Start a pass if the file changed since it was read; the note about it. None without a pass."""
        position = self.position
        try:
            status = os.stat(position.display)
        except OSError:
            return None
        same_file = (status.st_dev, status.st_ino) == (position.device, position.inode)
        if same_file and (status.st_size, status.st_mtime_ns) == (position.size, position.mtime_ns):
            return None
        if status.st_size == 0:
            return None
        evtx = position.kind == "evtx"
        note = None
        threshold, anchor = (position.offset, position.head_hash) if evtx else (0, b"")
        if position.inode and not same_file:
            if evtx and not anchor:
                threshold = 0  # nothing tells whether it holds the same log: every record is read again
            checked = " (record ids already read are skipped if it holds the same log)" if threshold else ""
            note = f"{position.display}: replaced by another file; reading it again{checked}"
        resuming = same_file and position.size == 0 and position.line > 0
        self._pass = _Pass(
            status,
            threshold,
            anchor,
            resume_at=position.line if resuming else 0,
            resume_highest=position.pass_highest if resuming else 0,
        )
        self._reading = read_input(Input(position.display, status.st_size), self._problem)
        return note or ""

    def _restart(self, reason: str) -> str:
        """Read the file again from its start, every record: it is not the log that was read."""
        run = self._pass
        assert run is not None
        self._pass = _Pass(run.status, 0, b"")
        self._reading = read_input(Input(self.position.display, run.status.st_size), self._problem)
        display = self.position.display
        return f"{display}: {reason} (a cleared log, or another one under this name); reading it from the start"

    def poll(self) -> Chunk | None:
        note: str | None = None
        if self._pass is None:
            note = self._begin()
            if note is None:
                return None
        run, reading = self._pass, self._reading
        assert run is not None and reading is not None
        evtx = self.position.kind == "evtx"
        records: list[RawRecord] = []
        for record in reading:
            run.consumed += 1
            record_id = record.origin.record_id if evtx else None
            if record_id is not None and record_id <= run.threshold:
                if record_id == run.threshold and run.anchor:
                    if record_digest(record) != run.anchor:
                        # The records of this pass are handed on again by the new one.
                        return self._poll_restarted(f"record {record_id} is not the one read before", note)
                    run.anchor_seen = True
                else:
                    run.lower_seen = True
                continue
            handed_before = run.consumed <= run.resume_at and (record_id is None or record_id <= run.resume_highest)
            if record_id is not None and record_id > run.highest:
                run.highest, run.highest_record = record_id, record
            if handed_before:
                continue
            records.append(record)
            if len(records) >= self._batch:
                run.seal()
                return Chunk(records, self._unfinished(run), note or None)
        if evtx and run.anchor and not run.anchor_seen and run.lower_seen:
            return self._poll_restarted(f"record {run.threshold}, read last, is gone while lower ids are there", note)
        run.seal()
        self._pass = self._reading = None
        finished = dataclasses.replace(
            _file_identity(self.position, run.status),
            offset=run.highest if evtx else 0,
            line=0,
            head_hash=run.highest_digest if evtx else b"",
            size=run.status.st_size,
            mtime_ns=run.status.st_mtime_ns,
            pass_highest=0,
        )
        return Chunk(records, finished, note or None)

    def _poll_restarted(self, reason: str, earlier_note: str | None) -> Chunk:
        notes = [text for text in (earlier_note, self._restart(reason)) if text]
        chunk = self.poll()
        assert chunk is not None  # a pass under way always ends in a chunk
        return chunk._replace(note="; ".join(notes))

    def _unfinished(self, run: _Pass) -> InputPosition:
        """The position of a pass cut short after this chunk: size 0 makes a restart read the file again."""
        return dataclasses.replace(
            _file_identity(self.position, run.status),
            offset=run.threshold,
            head_hash=run.anchor,
            line=run.consumed,
            size=0,
            mtime_ns=0,
            pass_highest=run.highest,
        )


class StdinFollower:
    """NDJSON arriving on stdin, read without blocking; its position is not stored (a pipe is read once).

    A poll hands on the complete lines read so far, reading at most :data:`CHUNK_BYTES` once a line end is in hand,
    or more, up to :data:`MAX_RECORD_BYTES`, to finish one long line. A line longer than that is reported and its
    bytes are dropped as they arrive, up to its end: memory stays bounded whatever is piped in."""

    persistent = False

    def __init__(self, on_problem: ProblemSink, process_memory: int, stream: io.RawIOBase | None = None) -> None:
        self.position = InputPosition(key=STDIN, display=STDIN, kind="ndjson")
        self.context = SourceContext(process_memory=process_memory)
        self.done = False
        self._on_problem = on_problem
        self._descriptor = (stream or sys.stdin.buffer).fileno()
        self._buffer = bytearray()
        self._complete = False
        """Whether the buffer holds a line end."""
        self._skipping = False
        """Dropping the rest of a line over the record limit."""
        self._skipped_lines = 0
        """Lines skipped whole since the last chunk, still to be counted in the position."""

    def advance(self, position: InputPosition) -> None:
        self.position = position

    def _take(self, data: bytes) -> None:
        """Add what was read: to the buffer, or dropped while the line being skipped goes on."""
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return
            self._skipping = False
            self._skipped_lines += 1
            data = data[end + 1 :]
        if b"\n" in data:
            self._complete = True
        self._buffer += data
        if not self._complete and len(self._buffer) > MAX_RECORD_BYTES:
            line = self.position.line + self._skipped_lines + 1
            self._on_problem(
                ReadProblem(Origin(STDIN, line=line), f"line longer than {MAX_RECORD_BYTES >> 20} MiB; skipped")
            )
            self._buffer.clear()
            self._skipping = True

    def _fill(self) -> bool:
        """Read what stdin has ready, until a chunk's worth of complete lines; True once stdin has ended."""
        budget = MAX_RECORD_BYTES + CHUNK_BYTES  # one poll never reads for ever from a fast writer
        while budget > 0 and not (self._complete and len(self._buffer) >= CHUNK_BYTES):
            ready, _, _ = select.select([self._descriptor], [], [], 0)
            if not ready:
                return False
            data = os.read(self._descriptor, 1 << 20)
            if not data:
                return True
            budget -= len(data)
            self._take(data)
        return False

    def poll(self) -> Chunk | None:
        if self.done:
            return None
        ended = self._fill()
        if ended:
            self.done = True
            data = bytes(self._buffer)
            self._buffer.clear()
            if self._skipping:  # the last line, over the limit, ended with the stream
                self._skipping = False
                self._skipped_lines += 1
        else:
            end = self._buffer.rfind(b"\n")
            data = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._complete = False
        if not data and not self._skipped_lines:
            return None
        base = self.position.line + self._skipped_lines
        self._skipped_lines = 0
        records = list(read_json(io.BytesIO(data), STDIN, self._shifted(base)))
        for record in records:
            if record.origin.line is not None:
                record.origin.line += base
        lines = data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))
        return Chunk(records, dataclasses.replace(self.position, line=base + lines))

    def _shifted(self, base: int) -> ProblemSink:
        """Problems of a chunk, with the lines numbered from the start of stdin."""

        def report(problem: ReadProblem) -> None:
            origin = problem.origin
            line = None if origin.line is None else origin.line + base
            self._on_problem(ReadProblem(Origin(origin.path, origin.record_id, line), problem.reason))

        return report


class InputCatalog:
    """The inputs the watched paths name, found again at every poll (new files in folders), each with its
    follower."""

    def __init__(
        self,
        paths: Sequence[str],
        stored: dict[str, InputPosition],
        on_problem: ProblemSink,
        *,
        process_memory: int = DEFAULT_PROCESS_MEMORY,
    ) -> None:
        self.paths = list(paths)
        self.followers: list[Follower] = []
        self.renamed: dict[str, str] = {}
        """New key -> old key of inputs found under a new name; the old key is forgotten at the first commit."""
        self._stored = dict(stored)
        self._following: set[str] = set()
        self._on_problem = on_problem
        self._process_memory = process_memory
        self._reported: set[str] = set()

    def _problem(self, problem: ReadProblem) -> None:
        text = str(problem)
        if text not in self._reported:
            self._reported.add(text)
            self._on_problem(problem)

    def refresh(self) -> list[Follower]:
        """Look for inputs not followed yet; the followers added."""
        added: list[Follower] = []
        for item in list_inputs(self.paths, on_problem=self._problem):
            if item.path == STDIN:
                if STDIN not in self._following:
                    self._following.add(STDIN)
                    added.append(StdinFollower(self._on_problem, self._process_memory))
                continue
            key = os.path.realpath(item.path)
            if key in self._following:
                continue
            follower = self._follower(key, item.path)
            if follower is not None:
                self._following.add(key)
                added.append(follower)
        self.followers.extend(added)
        return added

    def _follower(self, key: str, display: str) -> Follower | None:
        position = self._stored.get(key)
        if position is None:
            try:
                with open(display, "rb") as file:
                    status = os.fstat(file.fileno())
                    head = file.read(PEEK_SIZE)
            except OSError as error:
                self._problem(ReadProblem(Origin(display), f"cannot open: {error.strerror or error}"))
                return None
            kind = input_kind(head, status.st_size)
            if kind is None:
                return None  # looked at again at the next poll
            position = self._renamed(key, display, kind, status, head) or InputPosition(
                key=key, display=display, kind=kind
            )
        if position.kind == "ndjson":
            return NdjsonFollower(position, self._on_problem, self._process_memory)
        return RereadFollower(position, self._on_problem, self._process_memory)

    def _renamed(
        self, key: str, display: str, kind: InputKind, status: os.stat_result, head: bytes
    ) -> InputPosition | None:
        """The position of the same file under its former name, when it was renamed (rotated): taken from the
        follower of the former name in this process, or from the stored positions."""
        live = {follower.position.key: follower.position for follower in self.followers if follower.persistent}
        candidates = [(old_key, old, True) for old_key, old in live.items()]
        candidates += [(old_key, old, False) for old_key, old in self._stored.items() if old_key not in live]
        for old_key, old, followed in candidates:
            if old.kind != kind or (old.device, old.inode) != (status.st_dev, status.st_ino) or old_key == key:
                continue
            if old.kind == "ndjson" and hashlib.sha256(head[: old.head_length]).digest() != old.head_hash:
                continue
            try:
                still_there = os.stat(old_key)
            except OSError:
                still_there = None
            if still_there is not None and (still_there.st_dev, still_there.st_ino) == (status.st_dev, status.st_ino):
                continue  # a second name (hard link) of a file still there under the first
            if not followed:
                # Not followed under its old name any more: that position is forgotten at the first commit.
                del self._stored[old_key]
                self.renamed[key] = old_key
            # A follower of the old name finds a new file there, or none, and goes on with that on its own.
            return dataclasses.replace(old, key=key, display=display)
        return None
