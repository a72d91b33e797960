"""A large JSON lines file read in pieces by several workers gives exactly what one process reading it whole
gives: the same alerts (ids, which use the origin line of events without ``_id``, and order), the same problems
with the same line numbers, the same counts. Files whose normalizer remembers earlier records are read whole."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.sources import reader
from shellwatch.sources.inputs import Input
from shellwatch.sources.reader import read_input, split_json_lines

WEB_SERVERS = ("w3wp.exe", "httpd.exe", "php-cgi.exe", "sqlservr.exe")
SHELLS = ("cmd.exe", "powershell.exe", "whoami.exe")
PROGRAMS = ("notepad.exe", "svchost.exe", "conhost.exe", "msedge.exe")
PARENTS = ("explorer.exe", "services.exe", "taskhostw.exe")


def defend_document(rng: random.Random, sequence: int) -> dict[str, Any]:
    """An Elastic Defend process start; every 7th a web server starting a shell (the web shell rules' case)."""
    web_shell = sequence % 7 == 0
    parent = rng.choice(WEB_SERVERS if web_shell else PARENTS)
    child = rng.choice(SHELLS if web_shell else PROGRAMS)
    stamp = f"2024-06-01T10:{sequence // 60 % 60:02d}:{sequence % 60:02d}.{sequence % 1000:03d}Z"
    return {
        "@timestamp": stamp,
        "agent": {"type": "endpoint", "id": "agent-1"},
        "event": {"category": ["process"], "type": ["start"], "action": "start", "kind": "event"},
        "host": {"name": "web01", "os": {"type": "windows", "family": "windows"}},
        "process": {
            "name": child,
            "executable": f"C:\\Windows\\System32\\{child}",
            "command_line": f"{child} /c echo {sequence}",
            "pid": 1000 + sequence,
            "parent": {"name": parent, "executable": f"C:\\srv\\{parent}", "pid": 500 + sequence % 97},
        },
    }


def write_defend_file(path: Path, documents: int, broken_lines: tuple[int, ...] = ()) -> None:
    """``documents`` lines of Elastic Defend documents (no ``_id``: alert ids depend on the line), with a blank
    line now and then, and broken JSON on the given 1-based lines."""
    rng = random.Random(11)
    with path.open("wb") as out:
        line = 0
        for sequence in range(documents):
            line += 1
            if line in broken_lines:
                out.write(b'{"@timestamp": "2024-06-01T10:00:00Z", "process": {"name": \n')
                continue
            if sequence % 50 == 49:
                out.write(b"\n")
                line += 1
            out.write(orjson.dumps(defend_document(rng, sequence)) + b"\n")


def run(path: Path, workers: int) -> tuple[list[dict[str, Any]], HuntStats]:
    stats = HuntStats()
    rules = RuleSet(load_bundled_rules().rules)
    alerts = list(hunt([str(path)], rules, stats=stats, workers=workers, exceptions=None))
    return alerts, stats


def comparable(stats: HuntStats) -> dict[str, Any]:
    return {
        "inputs": stats.inputs,
        "input_bytes": stats.input_bytes,
        "inputs_done": stats.inputs_done,
        "bytes_done": stats.bytes_done,
        "records": stats.records,
        "events_in_window": stats.events_in_window,
        "by_source": dict(stats.by_source),
        "alerts": stats.alerts,
        "duplicates": stats.duplicates,
        "alerts_by_rule": dict(stats.alerts_by_rule),
        "problems": [str(p) for p in stats.problems],
    }


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    # A few MB of test data in several pieces, instead of hundreds of MB.
    monkeypatch.setattr(reader, "SPLIT_MIN_BYTES", 256 << 10)
    monkeypatch.setattr(reader, "SPLIT_PIECE_BYTES", 300 << 10)


@pytest.mark.usefixtures("small_pieces")
def test_split_hunt_equals_whole_read(tmp_path: Path) -> None:
    path = tmp_path / "defend.ndjson"
    write_defend_file(path, 12_000, broken_lines=(200, 9_001))
    pieces = split_json_lines(Input(str(path), path.stat().st_size), lambda _document: True)
    assert len(pieces) >= 4, "the file was not split: nothing compared"
    # The broken line 9,001 lies in a later piece, not the first.
    holding = [piece for piece in pieces if piece.first_line <= 9_001][-1]
    assert holding.start > 0 and holding is not pieces[-1]

    alerts_1, stats_1 = run(path, workers=1)
    alerts_2, stats_2 = run(path, workers=2)
    assert stats_1.workers == 1
    assert stats_2.workers == 2, "the hunt with workers=2 ran in-process: nothing compared"
    assert stats_1.alerts > 100
    assert [a["kibana.alert.uuid"] for a in alerts_2] == [a["kibana.alert.uuid"] for a in alerts_1]
    assert [a["shellwatch.origin"] for a in alerts_2] == [a["shellwatch.origin"] for a in alerts_1]
    assert comparable(stats_2) == comparable(stats_1)
    assert stats_1.records == 12_000 - 2
    assert stats_1.inputs_done == 1
    problem_lines = [p.origin.line for p in stats_1.problems]
    assert problem_lines == [200, 9_001]


@pytest.mark.usefixtures("small_pieces")
def test_pieces_cover_the_file_at_line_starts(tmp_path: Path) -> None:
    """Pieces are contiguous, cut just after a line end, and each names the file line it starts with."""
    path = tmp_path / "defend.ndjson"
    write_defend_file(path, 6_000)
    data = path.read_bytes()
    pieces = split_json_lines(Input(str(path), len(data)), lambda _document: True)
    assert len(pieces) > 1
    assert pieces[0].start == 0 and pieces[-1].end is None
    for before, after in itertools.pairwise(pieces):
        assert before.end == after.start
        assert data[after.start - 1 : after.start] == b"\n"
        assert after.first_line == data.count(b"\n", 0, after.start) + 1
    assert sum(piece.size or 0 for piece in pieces) == len(data)


@pytest.mark.usefixtures("small_pieces")
def test_records_of_pieces_are_those_of_the_whole_file(tmp_path: Path) -> None:
    """Reading the pieces in order gives the whole file's records and problems, line numbers included; the last
    piece reads to the end of a file that grew after it was split."""
    path = tmp_path / "defend.ndjson"
    write_defend_file(path, 6_000, broken_lines=(4_500,))
    pieces = split_json_lines(Input(str(path), path.stat().st_size), lambda _document: True)
    with path.open("ab") as out:
        out.write(b'{"event": {"kind": "event"}, "late": true}\n')
    whole_problems: list[str] = []
    whole = [
        (r.origin.line, r.data) for r in read_input(Input(str(path), None), lambda p: whole_problems.append(str(p)))
    ]
    piece_problems: list[str] = []
    pieced = [
        (r.origin.line, r.data) for piece in pieces for r in read_input(piece, lambda p: piece_problems.append(str(p)))
    ]
    assert pieced == whole
    assert piece_problems == whole_problems == [f"{path}:4500: {whole_problems[0].split(': ', 1)[1]}"]
    assert whole[-1][1] == {"event": {"kind": "event"}, "late": True}


@pytest.mark.usefixtures("small_pieces")
def test_remembering_source_is_not_split(tmp_path: Path) -> None:
    """CrowdStrike FDR events name their parent by an earlier event of the same input: such a file is read whole
    by one worker (a single input, so the hunt has nothing to spread)."""
    path = tmp_path / "fdr.ndjson"
    with path.open("wb") as out:
        for sequence in range(6_000):
            record = {
                "event_simpleName": "ProcessRollup2",
                "aid": "0123456789abcdef0123456789abcdef",
                "TargetProcessId": str(10_000 + sequence),
                "ParentProcessId": str(10_000 + sequence - 1),
                "ImageFileName": "\\Device\\HarddiskVolume2\\Windows\\System32\\cmd.exe",
                "CommandLine": f"cmd.exe /c echo {sequence}",
                "timestamp": str(1_717_200_000_000 + sequence),
            }
            out.write(orjson.dumps(record) + b"\n")
    assert path.stat().st_size > reader.SPLIT_MIN_BYTES
    _, stats = run(path, workers=2)
    assert stats.by_source == {"crowdstrike_fdr": 6_000}
    assert stats.workers == 1


@pytest.mark.usefixtures("small_pieces")
def test_not_split_when_the_head_is_not_json_lines(tmp_path: Path) -> None:
    """A pretty-printed array, or a head whose documents the caller refuses, stays whole."""
    pretty = tmp_path / "pretty.json"
    rng = random.Random(3)
    pretty.write_bytes(orjson.dumps([defend_document(rng, n) for n in range(3_000)], option=orjson.OPT_INDENT_2))
    assert pretty.stat().st_size > reader.SPLIT_MIN_BYTES
    item = Input(str(pretty), pretty.stat().st_size)
    assert split_json_lines(item, lambda _document: True) == [item]

    lines = tmp_path / "defend.ndjson"
    write_defend_file(lines, 6_000)
    item = Input(str(lines), lines.stat().st_size)
    assert split_json_lines(item, lambda _document: False) == [item]
    assert len(split_json_lines(item, lambda _document: True)) > 1
