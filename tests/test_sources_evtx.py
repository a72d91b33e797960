"""EVTX: every corpus file reads without an exception escaping, clean files give exactly what the bare evtx
parser gives, and damaged files give every readable record, justified byte by byte.

EVTX layout used by the checks below (libyal "Windows XML Event Log (EVTX) format"; omerbenamram/evtx
``src/evtx_chunk.rs``): 4096-byte file header, then 64 KiB chunks; chunk header = ``ElfChnk\\0``, first/last
record number and id (u64 at 8, 16, 24, 32), free space offset (u32 at 48); records from chunk offset 512,
each ``**\\0\\0``, size (u32), record id (u64), FILETIME, BinXML, and the size again in its last four bytes.
"""

from __future__ import annotations

import io
import random
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from evtx import PyEvtxParser

from conftest import shared_path
from shellwatch.sources.evtx_file import read_evtx
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import RawRecord, ReadProblem

FILE_HEADER = 4096
CHUNK = 65536
RECORD_MAGIC = b"**\x00\x00"


def samples(name: str) -> Path:
    return shared_path("corpus", "omerbenamram-evtx", "samples", name)


def read(source: str | io.BytesIO, name: str = "log.evtx") -> tuple[list[RawRecord], list[ReadProblem]]:
    problems: list[ReadProblem] = []
    records = list(read_evtx(source, name, problems.append))
    return records, problems


@dataclass
class Bare:
    """What the evtx package gives on its own: records by id, and how many times its iterator raised."""

    records: dict[int, Any]
    errors: list[str]


def bare(source: str | bytes) -> Bare:
    parser = PyEvtxParser(source if isinstance(source, str) else io.BytesIO(source), number_of_threads=1)
    iterator = parser.records_json()
    records: dict[int, Any] = {}
    errors: list[str] = []
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return Bare(records, errors)
        except RuntimeError as error:
            errors.append(str(error))
            continue
        records[item["event_record_id"]] = orjson.loads(item["data"])


def ids(records: list[RawRecord]) -> list[int]:
    return [r.origin.record_id for r in records if r.origin.record_id is not None]


@dataclass
class Chunk:
    index: int
    data: bytes
    claimed: range | None  # ids the chunk header says it holds; None when the header magic is damaged
    free_space: int


def chunks(data: bytes) -> Iterator[Chunk]:
    for index, offset in enumerate(range(FILE_HEADER, len(data), CHUNK)):
        chunk = data[offset : offset + CHUNK]
        if chunk.startswith(b"ElfChnk\x00"):
            first, last = struct.unpack_from("<QQ", chunk, 24)
            yield Chunk(index, chunk, range(first, last + 1), struct.unpack_from("<I", chunk, 48)[0])
        else:
            yield Chunk(index, chunk, None, len(chunk))


def carved_ids(chunk: Chunk) -> set[int]:
    """Ids of intact record headers found at any offset of the chunk's record area: record magic, a size that
    fits, and the same size in the record's last four bytes. A brute-force search, independent of the
    reader."""
    found: set[int] = set()
    end = chunk.free_space if chunk.claimed is not None else len(chunk.data)
    position = chunk.data.find(RECORD_MAGIC, 512, end)
    while position >= 0:
        if position + 24 <= end:
            size, record_id = struct.unpack_from("<IQ", chunk.data, position + 4)
            fits = size >= 28 and position + size <= end
            if fits and struct.unpack_from("<I", chunk.data, position + size - 4)[0] == size:
                found.add(record_id)
        position = chunk.data.find(RECORD_MAGIC, position + 1, end)
    return found


def has_header_for(chunk: Chunk, record_id: int) -> bool:
    """Whether any record magic in the chunk is followed (after the size) by this record id."""
    return RECORD_MAGIC in chunk.data and any(
        chunk.data[match.start() + 8 : match.start() + 16] == struct.pack("<Q", record_id)
        for match in re.finditer(re.escape(RECORD_MAGIC), chunk.data)
    )


_NAMED = re.compile(r"records? (\d+)(?:-(\d+))? (?:lost|named in the chunk header are unreadable|could not be)")


def named_ids(problems: list[ReadProblem]) -> set[int]:
    """Record ids the problems say were lost, unreadable or unparsable."""
    named: set[int] = set()
    for problem in problems:
        for match in _NAMED.finditer(problem.reason):
            first = int(match.group(1))
            named.update(range(first, int(match.group(2) or first) + 1))
        if problem.reason.startswith("record could not be parsed") and problem.origin.record_id is not None:
            named.add(problem.origin.record_id)
    return named


# --- the whole corpus ---------------------------------------------------------------------------------------


def test_every_corpus_evtx_reads_and_gives_at_least_what_the_bare_parser_gives() -> None:
    files = sorted(shared_path("corpus").rglob("*.evtx"))
    assert len(files) > 400
    damaged = {"sample-with-zero-data-size-event.evtx", "sample_with_a_bad_chunk_magic.evtx", "sysmon.evtx"}
    for path in files:
        records, problems = read(str(path), path.name)
        expected = bare(str(path))
        assert len(set(ids(records))) == len(records), path
        assert set(expected.records) <= set(ids(records)), path
        if path.name not in damaged:
            assert problems == [] and expected.errors == [], path
            assert [r.data for r in records] == list(expected.records.values()), path


def test_attack_samples_counts_equal_the_bare_parsers() -> None:
    root = shared_path("corpus", "evtx-attack-samples")
    total = 0
    for path in sorted(root.rglob("*.evtx")):
        problems: list[ReadProblem] = []
        records = list(read_paths([str(path)], on_problem=problems.append))
        assert problems == []
        assert len(records) == len(bare(str(path)).records), path
        assert all(r.shape == "windows_event" and r.origin.path == str(path) for r in records)
        total += len(records)
    assert total > 8000


_RECORD_ID_TEXT = re.compile(r'"EventRecordID":(\d+)')


@pytest.mark.parametrize("name", ["security.evtx", "sample-with-zero-data-size-event.evtx"])
def test_claims_leave_records_out_in_order(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Over a file of 2,261 records and one whose parser raises in the middle of a chunk: the records a claim
    takes are left out, every other one comes in file order, the problems are the same as without a claim, and
    a marker stands for every CLAIMED_MARK_EVERY claimed records."""
    from shellwatch.sources import evtx_file

    path = str(samples(name))
    everything, expected_problems = read(path, name)
    monkeypatch.setattr(evtx_file, "CLAIMED_MARK_EVERY", 50)
    claimed: list[int] = []

    def claim(text: str) -> bool:
        if len(text) % 3:
            return False
        match = _RECORD_ID_TEXT.search(text)
        assert match is not None
        claimed.append(int(match.group(1)))
        return True

    problems: list[ReadProblem] = []
    records = list(read_evtx(path, name, problems.append, claim=claim))
    marks = [record for record in records if record.shape == "claimed"]
    kept = [record for record in records if record.shape != "claimed"]
    assert len(claimed) > 100
    assert [r.origin.record_id for r in kept] == [
        r.origin.record_id for r in everything if r.origin.record_id not in set(claimed)
    ]
    assert [r.data for r in kept] == [r.data for r in everything if r.origin.record_id not in set(claimed)]
    assert [p.reason for p in problems] == [p.reason for p in expected_problems]
    assert len(marks) == len(claimed) // 50 > 0


# --- the damaged corpus samples -----------------------------------------------------------------------------


def justify(name: str) -> tuple[list[RawRecord], list[ReadProblem], Bare, list[Chunk]]:
    """Reads a damaged sample and checks the invariants every count below rests on: no record twice, nothing
    the bare parser reads is lost, nothing is both read and reported, and every record id the chunk headers
    claim or an intact record header carries is either read or named in a problem."""
    path = samples(name)
    data = path.read_bytes()
    records, problems = read(str(path), name)
    expected = bare(str(path))
    read_ids = set(ids(records))
    reported = named_ids(problems)
    layout = list(chunks(data))
    assert len(read_ids) == len(records)
    assert set(expected.records) <= read_ids
    assert not read_ids & reported
    for chunk in layout:
        claimed = set(chunk.claimed or ())
        assert claimed | carved_ids(chunk) <= read_ids | reported, chunk.index
    return records, problems, expected, layout


def test_zero_size_record_sample_gives_every_record() -> None:
    """sample-with-zero-data-size-event.evtx: 4 chunks claim ids 1-450. Record 3 (chunk 0) has 0 in both its
    size fields; the bare parser stops chunk 0 there (335 records). Its extent is known from the next intact
    header, so the reader gives all 450, record 3 included (it renders as a complete EventLog 6005 event)."""
    records, problems, expected, layout = justify("sample-with-zero-data-size-event.evtx")
    assert sum(len(chunk.claimed or ()) for chunk in layout) == 450
    assert len(expected.records) == 335 and len(expected.errors) == 1
    assert "found `0`" in expected.errors[0]
    record_3 = layout[0].data.find(RECORD_MAGIC + bytes(4) + struct.pack("<Q", 3))
    assert record_3 > 0
    assert sorted(ids(records)) == list(range(1, 451))
    assert problems == []
    (event,) = [r.data["Event"]["System"] for r in records if r.origin.record_id == 3]
    assert (event["EventRecordID"], event["EventID"]["#text"], event["Channel"]) == (3, 6005, "System")


def test_sysmon_sample_with_garbage_chunks() -> None:
    """sysmon.evtx: chunks 0-8 claim ids 1742-2099 (358 records), all read. Chunks 9-16 hold bytes but neither
    a chunk header nor a single intact record header: nothing more is readable, and each is reported."""
    records, problems, expected, layout = justify("sysmon.evtx")
    assert sorted(ids(records)) == list(range(1742, 2100)) == sorted(expected.records)
    garbage = [chunk for chunk in layout if chunk.claimed is None]
    assert [chunk.index for chunk in garbage] == list(range(9, 17))
    assert all(any(chunk.data) and not carved_ids(chunk) for chunk in garbage)
    assert [p.reason.split(":")[0] for p in problems] == [
        f"chunk {index} (file offset {FILE_HEADER + index * CHUNK:#x})" for index in range(9, 17)
    ]


def test_bad_chunk_magic_sample() -> None:
    """sample_with_a_bad_chunk_magic.evtx: chunks 0, 7, 8, 9 have headers claiming 467 ids; the bare parser
    reads 270. The reader adds 31 (47675-47705), which follow a zeroed stretch inside chunk 7. The 166 claimed
    ids not read have no record header left anywhere in their chunk (zeroed): 46742-46857, 47641-47674,
    45934-45949. Chunks 6 and 10 lost their headers; the record headers still in them (47613-47627,
    45963-46030) are found and handed to the parser, which cannot render them (their templates were in the
    zeroed part): reported."""
    records, problems, expected, layout = justify("sample_with_a_bad_chunk_magic.evtx")
    by_index = {chunk.index: chunk for chunk in layout}
    claimed = {i for chunk in layout for i in (chunk.claimed or ())}
    assert len(claimed) == 467 and len(expected.records) == 270
    read_ids = set(ids(records))
    assert read_ids - set(expected.records) == set(range(47675, 47706))
    assert len(records) == 301
    lost = {
        0: set(range(46742, 46858)),
        7: set(range(47641, 47675)),
        9: set(range(45934, 45950)),
    }
    assert claimed - read_ids == set().union(*lost.values())
    for index, missing in lost.items():
        assert not any(has_header_for(by_index[index], record_id) for record_id in missing)
    for index, found in {6: range(47613, 47628), 10: range(45963, 46031)}.items():
        assert by_index[index].claimed is None
        assert carved_ids(by_index[index]) <= set(found)
        assert set(found) <= named_ids(problems) and not set(found) & read_ids


# --- damage made on purpose on a clean file -----------------------------------------------------------------


@pytest.fixture(scope="module")
def clean() -> bytes:
    """The first four chunks of a clean Security log (349 records)."""
    return samples("security.evtx").read_bytes()[: FILE_HEADER + 4 * CHUNK]


def damaged(clean: bytes, start: int, replacement: bytes) -> io.BytesIO:
    data = bytearray(clean)
    data[start : start + len(replacement)] = replacement
    return io.BytesIO(bytes(data))


def test_clean_file_in_file_order(clean: bytes) -> None:
    records, problems = read(io.BytesIO(clean))
    assert problems == [] and ids(records) == list(range(1, 350))
    assert [r.data for r in records] == list(bare(clean).records.values())


@pytest.mark.parametrize(
    ("what", "offset", "length"),
    [
        ("file header", 0, FILE_HEADER),
        ("chunk 1 header", FILE_HEADER + CHUNK, 512),
        ("chunk 2 string and template tables", FILE_HEADER + 2 * CHUNK + 128, 384),
    ],
)
def test_damaged_headers_lose_nothing(clean: bytes, what: str, offset: int, length: int) -> None:
    """Headers only locate records; the records themselves are intact, so all 349 come back unchanged."""
    source = damaged(clean, offset, b"\xa5" * length)
    records, _ = read(source)
    assert sorted(ids(records)) == list(range(1, 350)), what
    expected = bare(clean).records
    assert all(r.data == expected[r.origin.record_id] for r in records), what


def test_zero_size_record_header(clean: bytes) -> None:
    offset = FILE_HEADER + CHUNK + 512  # the first record of chunk 1
    size = struct.unpack_from("<I", clean, offset + 4)[0]
    data = bytearray(clean)
    data[offset + 4 : offset + 8] = bytes(4)
    data[offset + size - 4 : offset + size] = bytes(4)
    assert len(bare(bytes(data)).records) < 349
    records, problems = read(io.BytesIO(bytes(data)))
    assert problems == [] and sorted(ids(records)) == list(range(1, 350))


def test_zeroed_stretch_inside_a_chunk(clean: bytes) -> None:
    start = FILE_HEADER + 2 * CHUNK + 20000
    records, problems = read(damaged(clean, start, bytes(4000)))
    read_ids = set(ids(records))
    assert read_ids | named_ids(problems) == set(range(1, 350))
    assert not read_ids & named_ids(problems)
    assert any(
        p.reason.endswith("reading resumes at record 202") and "records 196-201 lost" in p.reason for p in problems
    )
    assert {202, 203, 349} <= read_ids


def test_truncated_file(clean: bytes) -> None:
    records, problems = read(io.BytesIO(clean[: FILE_HEADER + 3 * CHUNK + 30000]))
    read_ids = set(ids(records))
    assert read_ids | named_ids(problems) == set(range(1, 350))
    assert 260 < len(read_ids) < 349
    assert "truncated file" in problems[0].reason


def test_random_corruption_never_raises(clean: bytes) -> None:
    """Bytes overwritten at random (in the headers, the records, anywhere): records or problems, never a
    raise, never a record twice, every yielded record an evtx-shaped dict."""
    generator = random.Random(20240229)
    sample = clean[: FILE_HEADER + 3 * CHUNK]
    for _ in range(60):
        data = bytearray(sample)
        region = generator.choice([(0, len(data)), (0, FILE_HEADER + 1024), (FILE_HEADER, FILE_HEADER + 512)])
        for _ in range(generator.choice([1, 8, 64, 512])):
            data[generator.randrange(*region)] = generator.choice([0, 0xFF, generator.randrange(256)])
        records, _ = read(io.BytesIO(bytes(data)))
        assert len(set(ids(records))) == len(records)
        assert all(isinstance(r.data.get("Event"), dict) for r in records)
