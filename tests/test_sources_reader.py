"""read_paths: walking inputs, recognizing formats by content, archives, stdin; reporting, never raising."""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import shared_path
from shellwatch.sources.inputs import Input, list_inputs
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import RawRecord, ReadProblem

EVENT_XML = (
    '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><EventID>4688</EventID>'
    "<EventRecordID>{n}</EventRecordID></System><EventData>"
    '<Data Name="NewProcessName">C:\\Windows\\System32\\whoami.exe</Data></EventData></Event>'
)


def read(paths: list[str]) -> tuple[list[RawRecord], list[ReadProblem]]:
    problems: list[ReadProblem] = []
    records = list(read_paths(paths, on_problem=problems.append))
    return records, problems


def ndjson(*values: int) -> bytes:
    return b"".join(json.dumps({"n": value}).encode() + b"\n" for value in values)


def numbers(records: list[RawRecord]) -> list[int]:
    return [r.data["n"] if "n" in r.data else r.data["Event"]["System"]["EventRecordID"] for r in records]


def test_directories_are_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.json").write_bytes(ndjson(3))
    (tmp_path / "b" / "a.xml").write_text(EVENT_XML.format(n=2))
    (tmp_path / "a.ndjson").write_bytes(ndjson(1))
    (tmp_path / "c.log").write_bytes(ndjson(4, 5))  # chosen by content, not by extension
    records, problems = read([str(tmp_path)])
    assert problems == []
    assert numbers(records) == [1, 2, 3, 4, 5]
    assert [r.origin.path for r in records] == [
        str(tmp_path / "a.ndjson"),
        str(tmp_path / "b" / "a.xml"),
        str(tmp_path / "b" / "z.json"),
        str(tmp_path / "c.log"),
        str(tmp_path / "c.log"),
    ]


def test_list_inputs_gives_sizes_and_reading_each_equals_reading_all(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.json").write_bytes(ndjson(1, 2))
    (tmp_path / "y.json").write_bytes(ndjson(3))
    problems: list[ReadProblem] = []
    inputs = list_inputs([str(tmp_path), "-", str(tmp_path / "missing")], on_problem=problems.append)
    assert inputs == [
        Input(str(tmp_path / "d" / "x.json"), len(ndjson(1, 2))),
        Input(str(tmp_path / "y.json"), len(ndjson(3))),
        Input("-", None),
    ]
    assert [p.origin.path for p in problems] == [str(tmp_path / "missing")]
    together, _ = read([str(tmp_path)])
    one_by_one = [record for item in inputs[:2] for record in read([item.path])[0]]
    assert together == one_by_one


def test_missing_path_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_bytes(ndjson(1))
    records, problems = read([str(tmp_path / "nope.evtx"), str(tmp_path / "ok.json")])
    assert numbers(records) == [1]
    assert [(p.origin.path, p.reason) for p in problems] == [
        (str(tmp_path / "nope.evtx"), "No such file or directory")
    ]


def test_unrecognized_binary_and_empty_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"MZ\x90\x00" + bytes(range(256)) * 4)
    (tmp_path / "b.json").write_bytes(b"")
    (tmp_path / "c.txt").write_text("2019-05-24 01:33:53 GET /shell.aspx cmd=whoami 200\n")
    records, problems = read([str(tmp_path)])
    assert records == []
    assert [(Path(p.origin.path).name, p.reason.split(" (")[0]) for p in problems] == [
        ("a.bin", "unrecognized format"),
        ("b.json", "empty input"),
        ("c.txt", "unrecognized format"),
    ]


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    (tmp_path / "events.json.gz").write_bytes(gzip.compress(ndjson(1, 2)))
    (tmp_path / "events.xml.gz").write_bytes(gzip.compress(EVENT_XML.format(n=3).encode("utf-16")))
    records, problems = read([str(tmp_path)])
    assert problems == []
    assert numbers(records) == [1, 2, 3]
    assert [r.origin.path for r in records][-1] == str(tmp_path / "events.xml.gz")


def test_truncated_gzip_gives_what_it_holds_and_a_problem(tmp_path: Path) -> None:
    data = gzip.compress(ndjson(*range(2000)))
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) // 2])
    records, problems = read([str(path)])
    assert 0 < len(records) < 2000 and numbers(records) == list(range(len(records)))
    assert [(p.origin.path, p.reason.startswith("read error: EOFError")) for p in problems] == [
        (str(path), True)
    ]


def test_zip_members_are_named_after_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("z/last.json", ndjson(4))
        archive.writestr("a/first.xml", EVENT_XML.format(n=1))
        archive.writestr("m/inner.json.gz", gzip.compress(ndjson(2, 3)))
        archive.writestr("m/empty/", b"")
    records, problems = read([str(path)])
    assert problems == []
    assert numbers(records) == [1, 2, 3, 4]
    assert [r.origin.path for r in records] == [
        f"{path}!a/first.xml",
        f"{path}!m/inner.json.gz",
        f"{path}!m/inner.json.gz",
        f"{path}!z/last.json",
    ]
    assert str(records[1].origin) == f"{path}!m/inner.json.gz:1"


def test_damaged_zip_member_is_reported_and_the_others_read(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("a.json", ndjson(1))
        archive.writestr("b.json", b'{"n": 2, "pad": "' + b"x" * 100 + b'"}\n')
        archive.writestr("c.json", ndjson(3))
    data = bytearray(path.read_bytes())
    data[data.index(b"x" * 100)] = ord("y")  # the stored bytes no longer match b.json's CRC
    path.write_bytes(bytes(data))
    records, problems = read([str(path)])
    assert numbers(records)[0] == 1 and numbers(records)[-1] == 3
    assert [(p.origin.path, "Bad CRC-32" in p.reason) for p in problems] == [(f"{path}!b.json", True)]


def test_tar_gz_members(tmp_path: Path) -> None:
    path = tmp_path / "logs.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, content in [("x/one.json", ndjson(1)), ("x/two.xml", EVENT_XML.format(n=2).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    records, problems = read([str(path)])
    assert problems == []
    assert numbers(records) == [1, 2]
    assert [r.origin.path for r in records] == [f"{path}!x/one.json", f"{path}!x/two.xml"]


def test_archives_nested_too_deep_are_refused(tmp_path: Path) -> None:
    data = ndjson(1)
    for _ in range(6):
        data = gzip.compress(data)
    (tmp_path / "deep.gz").write_bytes(data)
    records, problems = read([str(tmp_path / "deep.gz")])
    assert records == [] and "nested more than" in problems[0].reason


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(gzip.compress(ndjson(7, 8))))
    records, problems = read(["-"])
    assert problems == []
    assert numbers(records) == [7, 8]
    assert [str(r.origin) for r in records] == ["-:1", "-:2"]


def test_evtx_is_read_the_same_from_a_file_gzip_zip_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-way stream (gzip member, zip member, stdin) is spooled to a temporary file for the parser."""
    source = shared_path(
        "corpus", "evtx-attack-samples", "Lateral Movement", "LM_typical_IIS_webshell_sysmon_1_10_traces.evtx"
    )
    raw = source.read_bytes()
    (tmp_path / "log.evtx.gz").write_bytes(gzip.compress(raw))
    with zipfile.ZipFile(tmp_path / "log.zip", "w") as archive:
        archive.writestr("Sysmon.evtx", raw)
    direct, problems = read([str(source)])
    assert problems == [] and len(direct) == 4
    for path in (tmp_path / "log.evtx.gz", tmp_path / "log.zip"):
        records, problems = read([str(path)])
        assert problems == []
        assert [(r.data, r.origin.record_id) for r in records] == [
            (r.data, r.origin.record_id) for r in direct
        ]
    monkeypatch.setattr(sys, "stdin", _Stdin(raw))
    records, problems = read(["-"])
    assert problems == [] and [r.data for r in records] == [r.data for r in direct]
    assert str(records[0].origin) == "- record 1"


def test_whole_corpus_reads_without_an_exception_escaping() -> None:
    """Every file under ../shared/corpus (logs, archives, rule sets, notes) gives records or problems, never a
    raise. The only problems are files that are not logs, and the damaged EVTX samples."""
    root = shared_path("corpus")
    records, problems = read([str(root)])
    assert len(records) > 90_000
    damaged = {"sample_with_a_bad_chunk_magic.evtx", "sysmon.evtx"}
    for problem in problems:
        name = Path(problem.origin.path).name
        assert problem.reason.startswith(("unrecognized format", "empty input")) or name in damaged, problem
