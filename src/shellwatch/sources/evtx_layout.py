"""The byte layout of an EVTX file, read where the evtx parser gives up: chunk headers, the chain of records
inside a chunk, and repaired copies of damaged chunks that the parser can read again.

Layout (libyal's "Windows XML Event Log (EVTX) format" and omerbenamram/evtx ``evtx_chunk.rs``): a 4096-byte
file header (``ElfFile\\0``), then 65536-byte chunks. A chunk starts with a 512-byte header (``ElfChnk\\0``,
the first and last record ids it holds, the offset of its free space, then tables of string and template
offsets) followed by records, back to back. A record is ``**\\0\\0``, its size (u32), its id (u64), a
FILETIME, BinXML, and a copy of its size in its last four bytes.

Why repair instead of skipping: the parser walks a chunk's records by their size fields and stops the whole
chunk at the first damaged record header (a zero size, a zeroed stretch), and it drops a chunk whose header is
damaged. The records behind the damage are often intact, and BinXML inside them refers to templates and names
by their offset in the chunk, so they can only be read in place. A repaired copy keeps every byte where it was
and changes only what the parser trips on:

* a record whose header is damaged but whose place is known (the next intact header follows) gets its size
  fields rewritten, so the parser reads it or reports its own error for it;
* bytes that are no record at all (a zeroed or overwritten stretch) get a filler record header spanning them,
  with :data:`FILLER_RECORD_ID` and an empty body; the reader drops what the parser says about it;
* a damaged chunk header is rebuilt from the records found in the chunk;
* the string and template offset tables are zeroed: they are caches (the parser then finds every name and
  template at the offset the record gives), and a damaged table otherwise makes the parser drop the whole
  chunk.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
CHUNK_HEADER_SIZE = 512
_FILE_MAGIC = b"ElfFile\x00"
_CHUNK_MAGIC = b"ElfChnk\x00"
_RECORD_MAGIC = b"\x2a\x2a\x00\x00"
_RECORD_HEADER_SIZE = 24
MIN_RECORD_SIZE = 28
"""Header, at least one BinXML byte, and the trailing size copy; the parser rejects anything smaller."""

_CACHE_TABLES = slice(128, CHUNK_HEADER_SIZE)
_MAX_RECORDS_PER_CHUNK = (CHUNK_SIZE - CHUNK_HEADER_SIZE) // MIN_RECORD_SIZE

FILLER_RECORD_ID = 0
"""Record id of the filler records a repair writes over unreadable bytes. Windows numbers records from 1."""

_BINXML_END_OF_STREAM = 0x00

_CHUNK_HEADER = struct.Struct("<8sQQQQIII")
_RECORD_HEADER = struct.Struct("<4sIQQ")
_U32 = struct.Struct("<I")


class ChunkHeader(NamedTuple):
    """The fields of a chunk header that locate its records (a named tuple: one is read for every chunk of every
    file, and tuples are the cheapest objects to make)."""

    first_record_id: int
    last_record_id: int
    free_space_offset: int

    @property
    def is_consistent(self) -> bool:
        """Whether the header's record range and free space offset can describe a real chunk."""
        return (
            0 < self.first_record_id <= self.last_record_id
            and self.last_record_id - self.first_record_id < _MAX_RECORDS_PER_CHUNK
            and CHUNK_HEADER_SIZE <= self.free_space_offset <= CHUNK_SIZE
        )


def parse_chunk_header(chunk: bytes) -> ChunkHeader | None:
    """The header of a chunk, or None when the chunk does not start with the chunk magic."""
    if len(chunk) < _CHUNK_HEADER.size or not chunk.startswith(_CHUNK_MAGIC):
        return None
    _, _, _, first_id, last_id, _, _, free_space = _CHUNK_HEADER.unpack_from(chunk)
    return ChunkHeader(first_id, last_id, free_space)


@dataclass(frozen=True, slots=True)
class RecordSpan:
    """Where one record sits in its chunk. ``repaired``: its header's size fields were damaged and the span
    was inferred from where the next intact record starts."""

    offset: int
    size: int
    record_id: int
    repaired: bool = False


@dataclass(frozen=True, slots=True)
class Gap:
    """Chunk bytes between two records that hold no readable record."""

    start: int
    end: int


@dataclass(slots=True)
class ChunkLayout:
    """The records found in one chunk by walking it byte by byte.

    ``lost_from``: chunk offset from which no record could be found although the chunk header says records
    follow (the rest of the record area is zeroed or overwritten).
    """

    header: ChunkHeader | None
    records: list[RecordSpan] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    lost_from: int | None = None

    @property
    def needs_repair(self) -> bool:
        """Whether the parser, given the chunk as it is, would miss some of the records found here."""
        return (
            self.header is None
            or bool(self.gaps)
            or any(record.repaired for record in self.records)
            or self.lost_from is not None
        )


def scan_chunk(chunk: bytes) -> ChunkLayout:
    """Walk a chunk's records from the end of its header, stepping over damage to the next intact record.

    The walk follows size fields as the parser does, as long as a header has the record magic, a size that
    fits and an id above the previous record's (and within the chunk header's range, when that range is
    consistent). Where that fails, it looks for the next intact header (the same, plus the size copy in the
    record's last four bytes); only ids greater than the last one found are accepted, so stale records left in
    a reused chunk's slack are not mistaken for live ones.
    """
    header = parse_chunk_header(chunk)
    layout = ChunkLayout(header)
    consistent = header is not None and header.is_consistent
    end = header.free_space_offset if header is not None and consistent else len(chunk)
    low_id = header.first_record_id if header is not None and consistent else 1
    high_id = header.last_record_id if header is not None and consistent else None
    offset = CHUNK_HEADER_SIZE
    while offset + MIN_RECORD_SIZE <= end:
        found = _record_header_at(chunk, offset, end, low_id, high_id)
        if found is not None:
            size, record_id = found
            layout.records.append(RecordSpan(offset, size, record_id))
            offset += size
            low_id = record_id + 1
            if record_id == high_id:
                break  # the parser stops at the header's last record too
            continue
        resume = _next_intact_record(chunk, offset + MIN_RECORD_SIZE, end, low_id, high_id)
        if resume is None:
            if high_id is not None and low_id <= high_id:
                layout.lost_from = offset
            break
        next_offset, next_id = resume
        damaged_id = _damaged_record_id(chunk, offset, low_id, next_id)
        if damaged_id is not None:
            layout.records.append(RecordSpan(offset, next_offset - offset, damaged_id, repaired=True))
            low_id = damaged_id + 1
        else:
            layout.gaps.append(Gap(offset, next_offset))
        offset = next_offset
    return layout


def _record_header_at(chunk: bytes, offset: int, end: int, low_id: int, high_id: int | None) -> tuple[int, int] | None:
    """The size and id of the record at ``offset`` when its header is usable as the parser uses it (magic,
    size within the chunk, id in range). Its trailing size copy is not required: a record whose tail was
    zeroed still has a trustworthy extent, and the parser reads what is left of it."""
    if offset + _RECORD_HEADER_SIZE > len(chunk):
        return None
    magic, size, record_id, _ = _RECORD_HEADER.unpack_from(chunk, offset)
    if magic != _RECORD_MAGIC or size < MIN_RECORD_SIZE or offset + size > end:
        return None
    if record_id < low_id or (high_id is not None and record_id > high_id):
        return None
    return size, record_id


def _intact_record_at(chunk: bytes, offset: int, end: int, low_id: int, high_id: int | None) -> tuple[int, int] | None:
    """Like :func:`_record_header_at`, and the trailing size copy matches: the test for resuming after damage,
    where a lone ``**\\0\\0`` inside record data must not be taken for a record."""
    found = _record_header_at(chunk, offset, end, low_id, high_id)
    if found is None or _U32.unpack_from(chunk, offset + found[0] - 4)[0] != found[0]:
        return None
    return found


def _next_intact_record(chunk: bytes, start: int, end: int, low_id: int, high_id: int | None) -> tuple[int, int] | None:
    position = chunk.find(_RECORD_MAGIC, start, end)
    while position >= 0:
        found = _intact_record_at(chunk, position, end, low_id, high_id)
        if found is not None:
            return position, found[1]
        position = chunk.find(_RECORD_MAGIC, position + 1, end)
    return None


def _damaged_record_id(chunk: bytes, offset: int, low_id: int, next_id: int) -> int | None:
    """The id of a record whose header has the magic and a plausible id but broken size fields."""
    magic, _, record_id, _ = _RECORD_HEADER.unpack_from(chunk, offset)
    if magic == _RECORD_MAGIC and low_id <= record_id < next_id:
        return int(record_id)
    return None


def repaired_chunk(chunk: bytes, layout: ChunkLayout) -> bytes | None:
    """A copy of the chunk the parser reads to the last record found, or None when no record was found.

    ``chunk`` may be shorter than a chunk (the end of a truncated file); the copy is padded with zeros.
    """
    if not layout.records:
        return None
    data = bytearray(chunk.ljust(CHUNK_SIZE, b"\x00"))
    data[_CACHE_TABLES] = bytes(_CACHE_TABLES.stop - _CACHE_TABLES.start)
    for record in layout.records:
        if record.repaired:
            _U32.pack_into(data, record.offset + 4, record.size)
            _U32.pack_into(data, record.offset + record.size - 4, record.size)
    for gap in layout.gaps:
        size = gap.end - gap.start
        _RECORD_HEADER.pack_into(data, gap.start, _RECORD_MAGIC, size, FILLER_RECORD_ID, 0)
        data[gap.start + _RECORD_HEADER_SIZE] = _BINXML_END_OF_STREAM
        _U32.pack_into(data, gap.end - 4, size)
    first, last = layout.records[0], layout.records[-1]
    # The parser stops at the header's last record id or at the free space offset: point both at the last
    # record found, so it neither stops early nor wanders into what follows.
    _CHUNK_HEADER.pack_into(
        data,
        0,
        _CHUNK_MAGIC,
        first.record_id,
        last.record_id,
        first.record_id,
        last.record_id,
        128,
        last.offset,
        last.offset + last.size,
    )
    return bytes(data)


def file_of_chunks(chunks: list[bytes]) -> bytes:
    """An EVTX file holding the given chunks, behind a minimal file header (the parser checks only its magic
    and uses its chunk count to tell the end of the file)."""
    header = bytearray(FILE_HEADER_SIZE)
    struct.pack_into("<8sQQQIHHHH", header, 0, _FILE_MAGIC, 0, len(chunks) - 1, 0, 128, 1, 3, 4096, len(chunks))
    return bytes(header) + b"".join(chunks)
