"""Following inputs: partial lines, truncated / replaced / rewritten / renamed files, new files in a folder, EVTX
by record id, and line numbers equal to a one-shot read (so content-identified events keep their alert ids)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import shared_path
from shellwatch.sources.json_records import read_json
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import Origin, RawRecord, ReadProblem
from shellwatch.watch import follow
from shellwatch.watch.follow import InputCatalog, NdjsonFollower, RereadFollower, StdinFollower, input_kind
from shellwatch.watch.state import InputPosition


def line(number: int) -> bytes:
    return json.dumps({"@timestamp": "2024-03-16T11:00:00Z", "n": number, "event": {"kind": "event"}}).encode() + b"\n"


def ndjson_follower(path: Path, problems: list[ReadProblem] | None = None) -> NdjsonFollower:
    position = InputPosition(key=str(path.resolve()), display=str(path), kind="ndjson")
    return NdjsonFollower(position, (problems if problems is not None else []).append, 100)


def poll_all(follower: NdjsonFollower | RereadFollower) -> tuple[list[int | None], list[str]]:
    """Poll until nothing new: (the ``n`` or record id of every record, notes)."""
    values: list[int | None] = []
    notes: list[str] = []
    while (chunk := follower.poll()) is not None:
        follower.advance(chunk.position)
        if chunk.note:
            notes.append(chunk.note)
        values += [r.data.get("n", r.origin.record_id) for r in chunk.records]
        if not chunk.records and not chunk.note:
            break
    return values, notes


def test_input_kind_by_content() -> None:
    assert input_kind(b"ElfFile\x00" + bytes(100), 10_000) == "evtx"
    assert input_kind(b'{"a": 1}\n', 9) == "ndjson"
    assert input_kind(b'\xef\xbb\xbf{"a": 1}\n', 12) == "ndjson"
    assert input_kind(b'[{"a": 1}]', 10) == "whole"
    assert input_kind(b"<Events><Event>", 15) == "whole"
    assert input_kind(b"", 0) is None
    assert input_kind(b"Elf", 3) is None  # an EVTX header still being written


def test_a_partial_last_line_is_read_only_once_complete(tmp_path: Path) -> None:
    log = tmp_path / "a.ndjson"
    third = line(3)
    log.write_bytes(line(1) + line(2) + third[:10])
    follower = ndjson_follower(log)
    chunk = follower.poll()
    assert chunk is not None
    assert [r.data["n"] for r in chunk.records] == [1, 2]
    assert chunk.position.offset == len(line(1) + line(2))
    follower.advance(chunk.position)
    assert follower.poll() is None  # still partial
    with log.open("ab") as file:
        file.write(third[10:])
    chunk = follower.poll()
    assert chunk is not None
    assert [(r.data["n"], r.origin.line) for r in chunk.records] == [(3, 3)]


def test_line_numbers_across_chunks_equal_a_one_shot_read(tmp_path: Path) -> None:
    log = tmp_path / "a.ndjson"
    follower = ndjson_follower(log)
    seen = []
    for start in range(0, 30, 7):
        with log.open("ab") as file:
            file.write(b"".join(line(n) for n in range(start, start + 7)) + b"\n")  # and an empty line
        chunk = follower.poll()
        assert chunk is not None
        follower.advance(chunk.position)
        seen += [(r.data["n"], r.origin.line) for r in chunk.records]
    one_shot = [(r.data["n"], r.origin.line) for r in read_json(io.BytesIO(log.read_bytes()), str(log), print)]
    assert seen == one_shot


def test_a_bad_line_is_reported_with_its_line_in_the_file(tmp_path: Path) -> None:
    log = tmp_path / "a.ndjson"
    log.write_bytes(line(1) + line(2))
    problems: list[ReadProblem] = []
    follower = ndjson_follower(log, problems)
    poll_all(follower)
    with log.open("ab") as file:
        file.write(b'{"broken": \n' + line(4))
    values, _ = poll_all(follower)
    assert values == [4]
    assert [p.origin.line for p in problems] == [3]


def test_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "a.ndjson"
    log.write_bytes(line(1) + line(2) + line(3))
    follower = ndjson_follower(log)
    assert poll_all(follower)[0] == [1, 2, 3]
    with log.open("r+b") as file:  # copytruncate rotation: same inode, emptied, written again
        file.truncate(0)
        file.write(line(7))
    values, notes = poll_all(follower)
    assert values == [7]
    assert notes and "truncated" in notes[0]
    assert follower.position.line == 1


def test_replaced_file_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "a.ndjson"
    log.write_bytes(line(1) + line(2))
    follower = ndjson_follower(log)
    poll_all(follower)
    replacement = tmp_path / "new.ndjson"
    replacement.write_bytes(line(5) + line(6) + line(7))
    os.replace(replacement, log)
    values, notes = poll_all(follower)
    assert values == [5, 6, 7]
    assert "replaced by another file" in notes[0]


def test_file_rewritten_in_place_is_noticed_by_its_first_bytes(tmp_path: Path) -> None:
    log = tmp_path / "a.ndjson"
    log.write_bytes(line(1) + line(2))
    follower = ndjson_follower(log)
    poll_all(follower)
    with log.open("r+b") as file:  # same inode, at least as long: only the content tells
        file.write(line(8) + line(9) + line(10))
    values, notes = poll_all(follower)
    assert values == [8, 9, 10]
    assert "rewritten" in notes[0]


def test_new_files_in_a_folder_are_followed_and_a_rotated_file_keeps_its_position(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.ndjson").write_bytes(line(1))
    catalog = InputCatalog([str(folder)], {}, print)
    assert len(catalog.refresh()) == 1
    (folder / "b.ndjson").write_bytes(line(2))
    (folder / "empty.ndjson").touch()  # nothing to tell its format by yet
    (added,) = catalog.refresh()
    assert added.position.display == str(folder / "b.ndjson")
    values = []
    for follower in catalog.followers:
        chunk = follower.poll()
        assert chunk is not None
        follower.advance(chunk.position)
        values += [r.data["n"] for r in chunk.records]
    assert sorted(values) == [1, 2]

    # Rotation: a.ndjson becomes a.ndjson.1 (with one more line) and a new a.ndjson starts.
    with (folder / "a.ndjson").open("ab") as file:
        file.write(line(3))
    os.rename(folder / "a.ndjson", folder / "a.ndjson.1")
    (folder / "a.ndjson").write_bytes(line(4))
    (rotated,) = catalog.refresh()
    assert rotated.position.display == str(folder / "a.ndjson.1")
    chunk = rotated.poll()
    assert chunk is not None and [r.data["n"] for r in chunk.records] == [3]
    assert [r.origin.line for r in chunk.records] == [2]
    first = catalog.followers[0]
    chunk = first.poll()
    assert chunk is not None and [r.data["n"] for r in chunk.records] == [4]
    assert chunk.note is not None and "replaced" in chunk.note


def test_a_stored_position_of_a_renamed_file_moves_with_it(tmp_path: Path) -> None:
    """After a restart, a file renamed while the watcher was down is found by device, inode and first bytes."""
    log = tmp_path / "a.ndjson"
    log.write_bytes(line(1) + line(2))
    follower = ndjson_follower(log)
    poll_all(follower)
    stored = {follower.position.key: follower.position}
    os.rename(log, tmp_path / "a.ndjson.1")
    catalog = InputCatalog([str(tmp_path)], stored, print)
    (moved,) = catalog.refresh()
    assert moved.position.offset == follower.position.offset
    assert catalog.renamed == {str((tmp_path / "a.ndjson.1").resolve()): follower.position.key}
    assert moved.poll() is None


def test_evtx_is_read_again_when_it_changes_skipping_record_ids_already_read(tmp_path: Path) -> None:
    source = next(iter(sorted(shared_path("corpus").rglob("*.evtx"))), None)
    assert source is not None
    copy = tmp_path / "export.evtx"
    shutil.copyfile(source, copy)
    every_id = [r.origin.record_id for r in read_paths([str(copy)], on_problem=lambda p: None)]
    assert every_id

    position = InputPosition(key=str(copy.resolve()), display=str(copy), kind="evtx")
    follower = RereadFollower(position, lambda p: None, 100, batch=max(1, len(every_id) // 3))
    first, _ = poll_all(follower)
    assert first == every_id
    assert follower.position.offset == max(i for i in every_id if i is not None)
    assert follower.poll() is None  # unchanged: not parsed again

    # The export written again (a new file under the same name): nothing is new.
    shutil.copyfile(source, tmp_path / "again.evtx")
    os.replace(tmp_path / "again.evtx", copy)
    again, notes = poll_all(follower)
    assert again == []
    assert notes and "record ids already read are skipped" in notes[0]

    # A position in the middle: only the later ids are read.
    middle = sorted(i for i in every_id if i is not None)[len(every_id) // 2]
    resumed = RereadFollower(dataclasses.replace(position, offset=middle), lambda p: None, 100)
    later, _ = poll_all(resumed)
    assert later == [i for i in every_id if i is not None and i > middle]


def _follow_stdin(data: bytes, problems: list[ReadProblem], *, polls: int = 10_000) -> list[tuple[int, int | None]]:
    """Feed ``data`` through a pipe to a StdinFollower (a writer thread, in small writes) and poll it to the end:
    (the ``n`` of every record, its line)."""
    read_end, write_end = os.pipe()
    reader = os.fdopen(read_end, "rb", buffering=0)

    def feed() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as pipe:
            for start in range(0, len(data), 50_000):
                pipe.write(data[start : start + 50_000])

    writer = threading.Thread(target=feed)
    writer.start()
    follower = StdinFollower(problems.append, 100, stream=reader)
    seen: list[tuple[int, int | None]] = []
    try:
        for _ in range(polls):
            if follower.done:
                break
            chunk = follower.poll()
            if chunk is None:
                time.sleep(0.001)
                continue
            follower.advance(chunk.position)
            seen += [(r.data["n"], r.origin.line) for r in chunk.records]
        assert follower.done, "stdin was never read to its end"
    finally:
        writer.join(timeout=10)
        reader.close()
    return seen


def test_stdin_lines_longer_than_a_chunk_are_read_and_lines_over_the_limit_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line longer than a poll's chunk is read whole (it used to stall ``watch -`` for ever); one longer than the
    record limit is reported at its line and skipped to its end, as the hunt's reader skips it, and the lines after
    it keep their numbers."""
    monkeypatch.setattr(follow, "CHUNK_BYTES", 64 << 10)
    monkeypatch.setattr(follow, "MAX_RECORD_BYTES", 256 << 10)

    def padded(number: int, size: int) -> bytes:
        return json.dumps({"n": number, "pad": "x" * size}).encode() + b"\n"

    data = line(1) + padded(2, 150_000) + padded(3, 600_000) + line(4) + padded(5, 300_000)[:-1]
    problems: list[ReadProblem] = []
    seen = _follow_stdin(data, problems)
    assert seen == [(1, 1), (2, 2), (4, 4)]
    assert [(p.origin.line, "longer than" in p.reason) for p in problems] == [(3, True), (5, True)]


def _evtx_ids(path: Path) -> list[int]:
    return [r.origin.record_id for r in read_paths([str(path)], on_problem=lambda p: None) if r.origin.record_id]


def test_a_cleared_evtx_log_or_another_one_under_the_same_name_is_read_from_its_start(tmp_path: Path) -> None:
    """Record ids restart at 1 when a Windows log is cleared, and another export can sit under the same name: the
    record the highest read id named is gone, or holds another event, so every record is read again (the alert ids
    already produced keep what was alerted from being alerted twice). Exports of logs whose ids start at 1 stand
    for the cleared log."""
    candidates = []
    for path in sorted(shared_path("corpus").rglob("*.evtx"))[:40]:
        ids = _evtx_ids(path)
        if ids and min(ids) == 1:
            candidates.append((path, ids))
    first = next(((p, ids) for p, ids in candidates if len(ids) >= 30), None)
    assert first is not None
    fewer = next(((p, ids) for p, ids in candidates if max(ids) < max(first[1])), None)
    more = next(((p, ids) for p, ids in candidates if max(ids) > max(first[1])), None)
    assert fewer is not None and more is not None

    log = tmp_path / "Security.evtx"
    shutil.copyfile(first[0], log)
    follower = RereadFollower(InputPosition(key=str(log.resolve()), display=str(log), kind="evtx"), print, 100)
    assert poll_all(follower)[0] == first[1]

    # Replaced by a log whose ids stop below the highest read: the record read last is gone.
    shutil.copyfile(fewer[0], tmp_path / "new.evtx")
    os.replace(tmp_path / "new.evtx", log)
    again, notes = poll_all(follower)
    assert again == fewer[1]
    assert any("reading it from the start" in note for note in notes)
    assert follower.position.offset == max(fewer[1])

    # Written over in place (same inode) by a longer log: the id read last names another event now.
    inode = log.stat().st_ino
    log.write_bytes(more[0].read_bytes())
    assert log.stat().st_ino == inode
    again, notes = poll_all(follower)
    assert again == more[1]
    assert any(f"record {max(fewer[1])} is not the one read before" in note for note in notes)


class _WrappedLog:
    """A stand-in for the EVTX reader over a log that wraps: records in file order, which is not id order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.order: list[int] = []

    def write(self, order: list[int]) -> None:
        self.order = order
        self.path.write_bytes(b"ElfFile\x00" + bytes(len(order)))  # a new size: the follower reads it again

    def read_input(self, item: object, on_problem: object) -> Iterator[RawRecord]:
        for record_id in self.order:
            yield RawRecord(
                {"id": record_id, "text": f"event {record_id}"}, "windows_event", Origin(str(self.path), record_id)
            )


def test_a_wrapped_evtx_log_cut_short_mid_pass_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapping log writes its newest chunks over its oldest, so file order gives ids 7, 8, 9 before 4, 5, 6. A
    pass stopped after its first chunk (a crash: only the stored position survives) must still read the lower ids
    that come later in the file, and none of what it handed on already, even when the log wrapped further
    meanwhile."""
    log = _WrappedLog(tmp_path / "wrapped.evtx")
    monkeypatch.setattr(follow, "read_input", log.read_input)
    start = InputPosition(key=str(log.path), display=str(log.path), kind="evtx")
    log.write([1, 2, 3, 4, 5])
    first = RereadFollower(start, print, 100)
    assert poll_all(first)[0] == [1, 2, 3, 4, 5]

    log.write([7, 8, 9, 4, 5, 6])
    cut = RereadFollower(first.position, print, 100, batch=2)
    chunk = cut.poll()
    assert chunk is not None and [r.origin.record_id for r in chunk.records] == [7, 8]
    stored = chunk.position  # committed with the chunk; then the process dies

    assert poll_all(RereadFollower(stored, print, 100))[0] == [9, 6]

    # The log wrapped once more before the restart: 10 took the slot of 7, 11 that of 4.
    log.write([10, 8, 9, 11, 5, 6])
    assert poll_all(RereadFollower(stored, print, 100))[0] == [10, 9, 11, 6]
