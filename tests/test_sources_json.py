"""JSON inputs: NDJSON, arrays, single and back-to-back objects, damage, size limits, encodings, corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import shared_path
from shellwatch.sources import json_records
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import RawRecord, ReadProblem


def read(path: Path) -> tuple[list[RawRecord], list[ReadProblem]]:
    problems: list[ReadProblem] = []
    records = list(read_paths([str(path)], on_problem=problems.append))
    return records, problems


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def lines_and_keys(records: list[RawRecord]) -> list[tuple[int | None, str]]:
    return [(r.origin.line, next(iter(r.data))) for r in records]


def test_ndjson_with_a_broken_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "events.ndjson",
        '{"a": 1}\n{"b": 2, "c": \n\n{"d": [1, {"e": 2}]}\r\n{"f": "}{"}\n',
    )
    records, problems = read(path)
    assert lines_and_keys(records) == [(1, "a"), (4, "d"), (5, "f")]
    assert [(p.origin.path, p.origin.line) for p in problems] == [(str(path), 2)]
    assert str(problems[0]).startswith(f"{path}:2: ")


def test_invalid_value_on_a_line_is_reported_with_its_line(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "bad.ndjson", '{"a": 1}\n{"b": tru}\n{"c": 3}\n'))
    assert lines_and_keys(records) == [(1, "a"), (3, "c")]
    assert [(p.origin.line, p.reason.startswith("invalid JSON")) for p in problems] == [(2, True)]


def test_pretty_printed_array_is_read_element_by_element(tmp_path: Path) -> None:
    documents = [{"process": {"name": "cmd.exe", "args": ["/c", "whoami"]}}, {"event": {"kind": "alert"}}]
    records, problems = read(write(tmp_path, "array.json", json.dumps(documents, indent=2)))
    assert problems == []
    assert [r.data for r in records] == documents
    assert [r.origin.line for r in records] == [2, 11]
    assert {r.shape for r in records} == {"json"}


def test_one_line_array_and_single_object(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "one.json", '[{"a": 1}, {"b": 2}]'))
    assert problems == [] and lines_and_keys(records) == [(1, "a"), (1, "b")]
    records, problems = read(write(tmp_path, "single.json", json.dumps({"x": {"y": 1}}, indent=4)))
    assert problems == [] and [r.data for r in records] == [{"x": {"y": 1}}]


def test_concatenated_pretty_objects_and_the_evtx_dump_shape(tmp_path: Path) -> None:
    """Objects back to back, as SigmaHQ's regression_data concatenates evtx_dump renderings."""
    evtx_dump = {
        "Event": {"#attributes": {"xmlns": "x"}, "System": {"EventID": 1}, "EventData": {"Image": "a{b"}}
    }
    ecs = {"event": {"code": "1"}, "process": {"name": "cmd.exe"}}
    content = json.dumps(evtx_dump, indent=2) + "\n" + json.dumps(ecs, indent=2) + json.dumps(evtx_dump)
    records, problems = read(write(tmp_path, "concat.json", content))
    assert problems == []
    assert [(r.shape, r.data) for r in records] == [
        ("windows_event", evtx_dump),
        ("json", ecs),
        ("windows_event", evtx_dump),
    ]
    assert [r.origin.line for r in records] == [1, 14, 21]  # the third starts where the second ends


def test_objects_back_to_back_on_one_line(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "b2b.json", '{"a":1}{"b":{"c":2}} {"d":3}\n'))
    assert problems == [] and lines_and_keys(records) == [(1, "a"), (1, "b"), (1, "d")]


def test_truncated_pretty_object_does_not_swallow_the_next(tmp_path: Path) -> None:
    content = '{\n  "a": 1,\n  "b": {\n{\n  "c": 2\n}\n'
    records, problems = read(write(tmp_path, "cut.json", content))
    assert lines_and_keys(records) == [(4, "c")]
    assert [(p.origin.line, "not terminated" in p.reason) for p in problems] == [(1, True)]


def test_non_objects_and_stray_text_are_reported(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "junk.json", '{"a": 1}\n42\nnot json\n["s", {"b": 2}]\n'))
    assert lines_and_keys(records) == [(1, "a"), (4, "b")]
    assert [(p.origin.line, p.reason) for p in problems] == [
        (2, "JSON int is not an object; skipped"),
        (3, "unexpected text outside a JSON value; skipped"),
        (4, "JSON str is not an object; skipped"),
    ]


def test_unterminated_array_is_reported(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "open.json", '[\n  {"a": 1},\n  {"b": 2}\n'))
    assert lines_and_keys(records) == [(2, "a"), (3, "b")]
    assert [p.reason for p in problems] == ["JSON array not closed at the end of the input"]


def test_oversized_line_is_skipped_without_loading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_records, "MAX_RECORD_BYTES", 1000)
    monkeypatch.setattr(json_records, "_SKIP_BLOCK", 64)
    big = json.dumps({"blob": "x" * 5000})
    records, problems = read(write(tmp_path, "big.ndjson", f'{{"a": 1}}\n{big}\n{{"c": 3}}\n'))
    assert lines_and_keys(records) == [(1, "a"), (3, "c")]
    assert [(p.origin.line, "longer than" in p.reason) for p in problems] == [(2, True)]


def test_oversized_pretty_value_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_records, "MAX_RECORD_BYTES", 1000)
    big = json.dumps({"blob": ["x" * 50] * 100}, indent=2)
    records, problems = read(write(tmp_path, "big.json", big + '\n{"c": 3}\n'))
    assert lines_and_keys(records) == [(len(big.splitlines()) + 1, "c")]
    assert [(p.origin.line, "larger than" in p.reason) for p in problems] == [(1, True)]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_encodings(tmp_path: Path, encoding: str) -> None:
    """utf-16 writes a byte order mark; utf-16-be here has none (sniffed from the NUL pattern)."""
    content = '{"process": {"command_line": "cmd /c echo é✓"}}\n{"b": 2}\n'
    records, problems = read(write(tmp_path, "enc.json", content.encode(encoding)))
    assert problems == []
    assert records[0].data["process"]["command_line"] == "cmd /c echo é✓"
    assert lines_and_keys(records)[1] == (2, "b")


def test_toml_is_not_taken_for_json(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "rule.toml", '[metadata]\ncreation_date = "2020/01/01"\n'))
    assert records == [] and [p.reason.split(" (")[0] for p in problems] == ["unrecognized format"]


def test_sigma_regression_data_reads_every_concatenated_object() -> None:
    """Each file holds one or more evtx_dump renderings back to back (MANIFEST: 7 files concatenate several);
    counted independently with json.JSONDecoder.raw_decode."""
    root = shared_path("corpus", "sigma", "regression_data")
    files = sorted([*root.rglob("*.json"), *root.rglob("*.jsoncls")])
    assert len(files) > 100
    several = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        expected, position, decoder = 0, 0, json.JSONDecoder()
        while text[position:].strip():
            _, end = decoder.raw_decode(text, position + len(text[position:]) - len(text[position:].lstrip()))
            expected, position = expected + 1, end
        records, problems = read(path)
        assert problems == [], path
        assert len(records) == expected, path
        assert {r.shape for r in records} == {"windows_event"}, path
        several += expected > 1
    assert several == 7


def test_text_that_only_starts_like_json_is_given_up(tmp_path: Path) -> None:
    content = '{"level": info}\n' + "".join(f"log line {n}: something happened\n" for n in range(1000))
    records, problems = read(write(tmp_path, "app.log", content))
    assert records == []
    assert len(problems) == json_records.GIVE_UP_AFTER + 1
    assert problems[-1].reason == "no JSON object found; rest skipped"


def test_event_hub_batches_give_their_records(tmp_path: Path) -> None:
    """Azure Event Hubs (and diagnostic settings) deliver batches as {"records": [...]}; Microsoft 365 Defender's
    streaming API is read that way (https://learn.microsoft.com/en-us/defender-xdr/streaming-api-event-hub).
    Only an object whose one key is "records" is a batch: a document that merely has such a field is one record."""
    batch = {"records": [{"category": "AdvancedHunting-DeviceProcessEvents", "n": 1}, {"n": 2}, "stray"]}
    document = {"records": [{"n": 3}], "other": 1}
    path = tmp_path / "hub.json"
    path.write_text(json.dumps(batch) + "\n" + json.dumps(document) + "\n", encoding="utf-8")
    records, problems = read(path)
    assert [record.data.get("n") for record in records] == [1, 2, None]
    assert records[2].data == document
    assert [record.origin.line for record in records] == [1, 1, 2]
    assert len(problems) == 1 and "not an object" in problems[0].reason
