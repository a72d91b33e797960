"""EVTX files in, raw Windows event records out, every readable record of a damaged file included.

Records come from the evtx package (pyevtx-rs): ``PyEvtxParser(..., number_of_threads=1).records_json()``, one
parser thread per process being the fastest on typical files. Its iterator raises on a damaged chunk or record
and then goes on with the next one, so a first pass reads everything the parser can and reports each record it
cannot parse. The parser is silent, though, about records it never reaches: it abandons a chunk at the first
damaged record header and skips a chunk whose header is damaged. So after the first pass, the chunk headers
(512 bytes every 64 KiB) are checked against the record ids already read; only a chunk whose records are not
all accounted for is walked byte by byte and handed to the parser again in repaired form
(:mod:`shellwatch.sources.evtx_layout`), which yields the records behind the damage. A clean file costs one
extra read of its chunk headers.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import orjson
from evtx import PyEvtxParser

from shellwatch.sources.evtx_layout import (
    CHUNK_HEADER_SIZE,
    CHUNK_SIZE,
    FILE_HEADER_SIZE,
    FILLER_RECORD_ID,
    ChunkLayout,
    file_of_chunks,
    parse_chunk_header,
    repaired_chunk,
    scan_chunk,
)
from shellwatch.sources.record import Origin, RawRecord, ReadProblem

ProblemSink = Callable[[ReadProblem], None]
RecordClaim = Callable[[str], bool]
"""Given a record's JSON rendering, True when the caller accounts for the record itself, undecoded: the reader
then neither decodes nor yields it (a hunt counts the records of event classes no rule can match this way)."""

CLAIMED_MARK_EVERY = 1024
"""A ``claimed`` marker record is yielded after this many claimed records in a row (see RecordShape)."""
_CLAIMED_MARK = RawRecord({}, "claimed", Origin(""))

_RECORD_ERROR = re.compile(r"Failed to parse record number (\d+): ?")
_REPAIR_BATCH_CHUNKS = 16


def read_evtx(
    source: str | IO[bytes],
    display: str,
    on_problem: ProblemSink,
    *,
    opened: IO[bytes] | int | None = None,
    head: bytes = b"",
    claim: RecordClaim | None = None,
) -> Iterator[RawRecord]:
    """Every readable record of an EVTX file, in file order, then those recovered from damaged chunks.

    ``source`` is a path or a seekable binary file; ``display`` names it in origins and problems. ``opened``: the
    file at ``source`` already open (a seekable file, or a descriptor of it), for the chunk-header check to use
    instead of opening it again; ``head``: its first bytes when the caller has read them already, which the check
    then takes from memory. ``claim``: offered each record's JSON text first (records recovered from damaged
    chunks excepted); a record it claims is not yielded.
    """
    ledger = _Ledger()
    try:
        parser = PyEvtxParser(source, number_of_threads=1)
    # The extension raises RuntimeError (or OSError) for a damaged file header: read the chunks one by one.
    except Exception as error:
        ledger.header_damaged = f"EVTX file header damaged ({error}); reading its chunks one by one"
    else:
        yield from _read_with_parser(parser, display, ledger, on_problem, claim)
    yield from _recover_chunks(source, opened, head, display, ledger, on_problem)


class _Ledger:
    """The record ids accounted for: those read by the first pass (as runs of consecutive ids, so memory stays
    small on files of millions of records), and, one by one, those reported as unparsable or recovered later;
    plus parser errors that name no record."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int]] = []
        self.settled: set[int] = set()
        self.unexplained: list[str] = []
        self.header_damaged = ""
        """Why the parser refused the file as a whole, when it did."""
        self._starts: list[int] = []
        self._ends: list[int] = []

    def freeze(self) -> None:
        """Merge the runs for lookups; call once the first pass is over."""
        merged: list[tuple[int, int]] = []
        for start, end in sorted(self.runs):
            if merged and start <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self.runs = merged
        self._starts = [start for start, _ in merged]
        self._ends = [end for _, end in merged]

    def has(self, record_id: int) -> bool:
        """Whether the record was read or reported already."""
        if record_id in self.settled:
            return True
        index = bisect.bisect_right(self._starts, record_id) - 1
        return index >= 0 and record_id <= self._ends[index]

    def covers(self, first: int, last: int) -> bool:
        """Whether every id from ``first`` to ``last`` was read or reported."""
        if len(self._starts) == 1 and not self.settled:  # the common case: one run, nothing reported
            return first > last or (self._starts[0] <= first and last <= self._ends[0])
        record_id = first
        while record_id <= last:
            if record_id in self.settled:
                record_id += 1
                continue
            index = bisect.bisect_right(self._starts, record_id) - 1
            if index < 0 or record_id > self._ends[index]:
                return False
            record_id = self._ends[index] + 1
        return True


def _read_with_parser(
    parser: Any, display: str, ledger: _Ledger, on_problem: ProblemSink, claim: RecordClaim | None
) -> Iterator[RawRecord]:
    records = parser.records_json()
    runs = ledger.runs
    loads = orjson.loads
    run_start = run_end = -2  # no run yet: no record id is -1
    claimed = 0
    while True:
        try:
            # The iterator resumes with the next record or chunk after raising, so the loop is simply
            # re-entered.
            for item in records:
                record_id = item["event_record_id"]
                if record_id == run_end + 1:
                    run_end = record_id
                else:
                    if run_start >= 0:
                        runs.append((run_start, run_end))
                    run_start = run_end = record_id
                # _event_data, written out: this runs for every record of every file.
                text = item["data"]
                if claim is not None and claim(text):
                    claimed += 1
                    if claimed == CLAIMED_MARK_EVERY:
                        claimed = 0
                        yield _CLAIMED_MARK
                    continue
                try:
                    data = loads(text)
                except orjson.JSONDecodeError:
                    data = _lenient_json(text, display, record_id, on_problem)
                if data is not None and "Event" not in data:
                    data = _rerooted(data, display, record_id, on_problem)
                if data is not None:
                    yield RawRecord(data, "windows_event", Origin(display, record_id))
            break
        except RuntimeError as error:
            _parser_error(str(error), display, ledger, on_problem)
    if run_start >= 0:
        runs.append((run_start, run_end))


def _event_data(text: str, display: str, record_id: int, on_problem: ProblemSink) -> dict[str, Any] | None:
    """A record's JSON rendering decoded, as ``{"Event": ...}``; None, reported, when it cannot be one."""
    try:
        data: dict[str, Any] | None = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = _lenient_json(text, display, record_id, on_problem)
    if data is None or "Event" in data:
        return data
    return _rerooted(data, display, record_id, on_problem)


def _rerooted(data: dict[str, Any], display: str, record_id: int, on_problem: ProblemSink) -> dict[str, Any] | None:
    """A record whose root element name is damaged, under ``Event`` again, or None when it has no root.

    Element names are stored once per chunk and shared by its records: one damaged byte there renames the root
    of every record in the chunk. Their data is intact, and dropping them would hide the whole chunk.
    """
    if len(data) == 1:
        ((name, event),) = data.items()
        if isinstance(event, dict):
            reason = f"damaged root element name {name!r} read as Event"
            on_problem(ReadProblem(Origin(display, record_id), reason))
            return {"Event": event}
    on_problem(ReadProblem(Origin(display, record_id), "record rendered without an Event element; skipped"))
    return None


def _lenient_json(text: str, display: str, record_id: int, on_problem: ProblemSink) -> dict[str, Any] | None:
    # orjson rejects what stdlib json accepts, e.g. an escaped unpaired surrogate from a UTF-16 string: keep
    # the event, an attacker must not hide one behind a malformed character.
    try:
        value = json.loads(text)
    except ValueError as error:
        on_problem(ReadProblem(Origin(display, record_id), f"record rendered as invalid JSON: {error}"))
        return None
    if not isinstance(value, dict):
        on_problem(ReadProblem(Origin(display, record_id), "record rendered as JSON that is not an object"))
        return None
    return _without_surrogates(value)  # type: ignore[no-any-return]


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    return value


def _parser_error(message: str, display: str, ledger: _Ledger, on_problem: ProblemSink) -> None:
    match = _RECORD_ERROR.match(message)
    if match is None:
        # Chunk-level errors name a chunk the recovery pass walks and explains in its own words.
        ledger.unexplained.append(message)
        return
    record_id = int(match.group(1))
    ledger.settled.add(record_id)
    reason = message[match.end() :]
    on_problem(ReadProblem(Origin(display, record_id), f"record could not be parsed: {reason}"))


@dataclass(frozen=True, slots=True)
class _Repair:
    slot: int
    chunk: bytes
    repaired_ids: frozenset[int]
    """Records whose header was repaired, to explain a later parse failure."""


def _recover_chunks(
    source: str | IO[bytes],
    opened: IO[bytes] | int | None,
    head: bytes,
    display: str,
    ledger: _Ledger,
    on_problem: ProblemSink,
) -> Iterator[RawRecord]:
    ledger.freeze()
    target = source if opened is None else opened
    if not ledger.header_damaged and not ledger.unexplained:
        if isinstance(target, str):
            with _random_access(target) as file:
                clean = _every_chunk_read(file, head, ledger)
        else:
            clean = _every_chunk_read(target, head, ledger)
        if clean:
            return
    explained = False
    if ledger.header_damaged:
        on_problem(ReadProblem(Origin(display), ledger.header_damaged))
        explained = True
    pending: list[_Repair] = []
    with _random_access(target) as file:
        for slot, chunk in _damaged_chunks(file, ledger):
            layout = scan_chunk(chunk)
            for reason in _describe_damage(slot, chunk, layout, ledger):
                on_problem(ReadProblem(Origin(display), reason))
                explained = True
            fixed = repaired_chunk(chunk, layout)
            if fixed is None or all(ledger.has(record.record_id) for record in layout.records):
                continue
            explained = True
            repaired_ids = frozenset(record.record_id for record in layout.records if record.repaired)
            pending.append(_Repair(slot, fixed, repaired_ids))
            if len(pending) == _REPAIR_BATCH_CHUNKS:
                yield from _read_repaired(pending, display, ledger, on_problem)
                pending = []
    yield from _read_repaired(pending, display, ledger, on_problem)
    if not explained:
        for message in ledger.unexplained:
            on_problem(ReadProblem(Origin(display), message))


@contextmanager
def _random_access(source: str | IO[bytes] | int) -> Iterator[IO[bytes]]:
    """A seekable binary file for the source: the path opened, the caller's file, or a file over the caller's
    descriptor (both left open)."""
    if isinstance(source, int):
        with open(source, "rb", closefd=False) as over_descriptor:
            yield over_descriptor
        return
    if not isinstance(source, str):
        yield source
        return
    # Unbuffered: the chunk-header check reads 512 bytes every 64 KiB, not a buffer's worth.
    with open(source, "rb", buffering=0) as opened:
        yield opened


def _damaged_chunks(file: IO[bytes], ledger: _Ledger) -> Iterator[tuple[int, bytes]]:
    """Chunk slots holding records the first pass did not account for, with their bytes."""
    size, read_at = _random_reads(file)
    # The parser raises for every whole slot that is neither a chunk nor all zeros; when it raised nothing, a
    # slot without a chunk header is free space and need not be read.
    parser_saw_every_slot = not ledger.unexplained and not ledger.header_damaged
    slot = 0
    while FILE_HEADER_SIZE + slot * CHUNK_SIZE < size:
        offset = FILE_HEADER_SIZE + slot * CHUNK_SIZE
        head = read_at(offset, CHUNK_HEADER_SIZE)
        header = parse_chunk_header(head)
        if header is None and parser_saw_every_slot and offset + CHUNK_SIZE <= size:
            slot += 1
            continue
        accounted = (
            header is not None and header.is_consistent and ledger.covers(header.first_record_id, header.last_record_id)
        )
        if not accounted:
            chunk = head + read_at(offset + len(head), CHUNK_SIZE - len(head))
            # A zeroed slot is free space (the parser skips it too); anything else may hold records.
            if header is not None or chunk.count(0) != len(chunk):
                yield slot, chunk
        slot += 1


def _every_chunk_read(file: IO[bytes] | int, head: bytes, ledger: _Ledger) -> bool:
    """Whether each whole chunk slot of a file the parser reported nothing about is a chunk whose records were
    all read, or free space: a clean file, told apart with one read of 512 bytes per chunk (none for chunks within
    ``head``, the file's first bytes as already read). Anything else is left to :func:`_damaged_chunks`."""
    size, read_at = _random_reads(file, head)
    offset = FILE_HEADER_SIZE
    while offset < size:
        if offset + CHUNK_SIZE > size:
            return False  # a truncated last chunk
        header = parse_chunk_header(read_at(offset, CHUNK_HEADER_SIZE))
        # No chunk header: free space, since the parser raised nothing (it raises for a slot that is neither).
        if header is not None and not (
            header.is_consistent and ledger.covers(header.first_record_id, header.last_record_id)
        ):
            return False
        offset += CHUNK_SIZE
    return True


def _random_reads(file: IO[bytes] | int, head: bytes = b"") -> tuple[int, Callable[[int, int], bytes]]:
    """The file's size, and a function reading ``size`` bytes at ``offset``: from ``head`` (the file's first
    bytes, when already read) where it holds them, else one ``pread`` where the file has a descriptor (no seek, no
    buffer filled for 512 bytes), else a seek and a read. A descriptor is only passed where ``os`` has ``pread``."""
    if isinstance(file, int):
        readable = file
    else:
        descriptor = _descriptor(file)
        if descriptor is None:
            return _seek_reads(file)
        readable = descriptor
    head_size = len(head)

    def read_at(offset: int, size: int) -> bytes:
        if offset + size <= head_size:
            return head[offset : offset + size]
        return os.pread(readable, size, offset)

    # The size by a seek: cheaper than fstat's whole status.
    return os.lseek(readable, 0, os.SEEK_END), read_at


def _seek_reads(stream: IO[bytes]) -> tuple[int, Callable[[int, int], bytes]]:
    """:func:`_random_reads` for a file without a descriptor: a seek and a read."""

    def seek_and_read(offset: int, size: int) -> bytes:
        stream.seek(offset)
        return stream.read(size)

    return stream.seek(0, os.SEEK_END), seek_and_read


def _descriptor(file: IO[bytes]) -> int | None:
    """The file's descriptor for ``pread``; None where there is no ``pread`` or the file has no descriptor."""
    if not hasattr(os, "pread"):
        return None
    try:
        return file.fileno()
    except (AttributeError, OSError, ValueError):  # a file in memory has no descriptor
        return None


def _describe_damage(slot: int, chunk: bytes, layout: ChunkLayout, ledger: _Ledger) -> list[str]:
    where = f"chunk {slot} (file offset {FILE_HEADER_SIZE + slot * CHUNK_SIZE:#x})"
    reasons: list[str] = []
    if len(chunk) < CHUNK_SIZE:
        reasons.append(f"{where}: the file ends {len(chunk)} bytes into this chunk (truncated file)")
    gaps = list(layout.gaps)
    if layout.header is None:
        if not layout.records:
            reasons.append(f"{where}: not a valid chunk (bad header magic) and no record found in it; skipped")
            return reasons
        first, last = layout.records[0], layout.records[-1]
        lost = ""
        if gaps and gaps[0].start == CHUNK_HEADER_SIZE:
            lost = f"; chunk bytes {CHUNK_HEADER_SIZE:#x}-{first.offset:#x} before them hold no readable record"
            gaps.pop(0)
        reasons.append(
            f"{where}: chunk header damaged; records {_id_range(first.record_id, last.record_id)} "
            f"found by scanning the chunk{lost}"
        )
    for gap in gaps:
        before = [record.record_id for record in layout.records if record.offset < gap.start]
        after = [record.record_id for record in layout.records if record.offset >= gap.end]
        lost_ids = ""
        if before and after and after[0] > before[-1] + 1:
            lost_ids = f"; records {_id_range(before[-1] + 1, after[0] - 1)} lost"
        resumes = f"; reading resumes at record {after[0]}" if after else ""
        reasons.append(f"{where}: chunk bytes {gap.start:#x}-{gap.end:#x} hold no readable record{lost_ids}{resumes}")
    if layout.lost_from is not None and layout.header is not None:
        first_lost = layout.records[-1].record_id + 1 if layout.records else layout.header.first_record_id
        # The parser may have read a record the walk rejects (a zeroed tail still renders): it was yielded.
        while first_lost <= layout.header.last_record_id and ledger.has(first_lost):
            first_lost += 1
        if first_lost <= layout.header.last_record_id:
            reasons.append(
                f"{where}: records {_id_range(first_lost, layout.header.last_record_id)} named in the chunk "
                f"header are unreadable (no intact record header from chunk offset {layout.lost_from:#x} on)"
            )
    return reasons


def _id_range(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _read_repaired(
    repairs: list[_Repair], display: str, ledger: _Ledger, on_problem: ProblemSink
) -> Iterator[RawRecord]:
    if not repairs:
        return
    repaired_ids = frozenset().union(*(repair.repaired_ids for repair in repairs))
    parser = PyEvtxParser(io.BytesIO(file_of_chunks([repair.chunk for repair in repairs])), number_of_threads=1)
    records: Any = parser.records_json()  # yields dicts, raises RuntimeError per damaged record
    failures: list[tuple[int, str]] = []
    while True:
        try:
            for item in records:
                record_id = item["event_record_id"]
                if record_id == FILLER_RECORD_ID or ledger.has(record_id):
                    continue
                ledger.settled.add(record_id)
                data = _event_data(item["data"], display, record_id, on_problem)
                if data is not None:
                    yield RawRecord(data, "windows_event", Origin(display, record_id))
            break
        except RuntimeError as error:
            failure = _repaired_parser_error(str(error), ledger, repaired_ids)
            if failure is None:
                slots = ", ".join(str(repair.slot) for repair in repairs)
                on_problem(ReadProblem(Origin(display), f"repaired chunks {slots} could not be read: {error}"))
            elif failure[0] != FILLER_RECORD_ID:
                failures.append(failure)
    _report_failures(failures, display, on_problem)


def _repaired_parser_error(message: str, ledger: _Ledger, repaired_ids: frozenset[int]) -> tuple[int, str] | None:
    """The record id and reason of a record the parser failed on in a repaired chunk (the filler's id for
    errors to ignore), or None for an error that names no record."""
    match = _RECORD_ERROR.match(message)
    if match is None:
        return None
    record_id = int(match.group(1))
    if record_id == FILLER_RECORD_ID or ledger.has(record_id):
        return FILLER_RECORD_ID, ""
    ledger.settled.add(record_id)
    context = " (its record header was damaged)" if record_id in repaired_ids else ""
    return record_id, f"could not be parsed{context}: {message[match.end() :]}"


def _report_failures(failures: list[tuple[int, str]], display: str, on_problem: ProblemSink) -> None:
    # Records behind damage often fail together (the templates they use were in the damaged bytes): one
    # problem per run of consecutive ids failing for the same reason.
    index = 0
    while index < len(failures):
        first_id, reason = failures[index]
        last_id = first_id
        index += 1
        while index < len(failures) and failures[index] == (last_id + 1, reason):
            last_id += 1
            index += 1
        what = "record" if first_id == last_id else f"records {first_id}-{last_id}"
        on_problem(ReadProblem(Origin(display, first_id), f"{what} {reason}"))
