"""The NDJSON file sink: one alert per line, durable per batch, a torn last line cut off on open, and a batch
delivered again adding only the alerts the file is missing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from shellwatch.sinks.base import AlertSink, make_batch
from shellwatch.sinks.ndjson_file import NdjsonFileSink


def alert(number: int) -> dict[str, Any]:
    return {"kibana.alert.uuid": f"id-{number:03d}", "process": {"name": "cmd.exe", "pid": number}}


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["kibana.alert.uuid"] for line in path.read_bytes().splitlines()]


def test_alerts_are_appended_one_per_line_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    sink: AlertSink = NdjsonFileSink(path)
    sink.deliver(make_batch([alert(1), alert(2)]))
    sink.deliver(make_batch([alert(3)]))
    assert ids_in(path) == ["id-001", "id-002", "id-003"]
    assert path.read_bytes().endswith(b"\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sink.flush(1.0) == 0
    assert sink.name == f"ndjson:{path.resolve()}"
    sink.close()


def test_a_batch_delivered_again_adds_only_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    sink = NdjsonFileSink(path)
    batch = make_batch([alert(1), alert(2), alert(2)])
    sink.deliver(batch)
    sink.deliver(batch)
    sink.deliver(make_batch([alert(2), alert(3)]))
    sink.close()
    NdjsonFileSink(path).deliver(batch)  # a new process learns the ids from the file
    assert ids_in(path) == ["id-001", "id-002", "id-003"]


def test_a_torn_last_line_is_cut_off_and_its_alert_written_again(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    first = NdjsonFileSink(path)
    first.deliver(make_batch([alert(1)]))
    first.close()
    whole = json.dumps(alert(2)).encode() + b"\n" + json.dumps(alert(3)).encode() + b"\n"
    with path.open("ab") as file:
        file.write(whole[: len(whole) - 20])  # killed in the middle of writing a batch of two
    sink = NdjsonFileSink(path)
    assert sink.torn_bytes > 0
    assert ids_in(path) == ["id-001", "id-002"]
    sink.deliver(make_batch([alert(2), alert(3)]))
    assert ids_in(path) == ["id-001", "id-002", "id-003"]


def test_a_line_it_did_not_write_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    path.write_bytes(b"not json at all\n")
    sink = NdjsonFileSink(path)
    sink.deliver(make_batch([alert(1)]))
    assert path.read_bytes().splitlines()[0] == b"not json at all"
    assert sink.torn_bytes == 0


def test_a_file_rotated_away_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "alerts.ndjson"
    sink = NdjsonFileSink(path)
    sink.deliver(make_batch([alert(1)]))
    os.rename(path, tmp_path / "alerts.ndjson.1")
    sink.deliver(make_batch([alert(2)]))
    assert ids_in(path) == ["id-002"]
    assert ids_in(tmp_path / "alerts.ndjson.1") == ["id-001"]


def test_each_revision_of_a_suppressed_alert_is_written_once(tmp_path: Path) -> None:
    """A suppressed alert grows across runs (Kibana updates its ``kibana.alert.suppression.docs_count``): each
    revision is a line of its own, and a revision delivered again, even by a new process, is not written twice."""
    path = tmp_path / "alerts.ndjson"
    first = {**alert(1), "kibana.alert.suppression.docs_count": 0}
    grown = {**alert(1), "kibana.alert.suppression.docs_count": 4}
    sink = NdjsonFileSink(path)
    sink.deliver(make_batch([first]))
    sink.deliver(make_batch([grown]))
    sink.deliver(make_batch([grown]))
    sink.close()
    NdjsonFileSink(path).deliver(make_batch([first, grown]))
    counts = [json.loads(line)["kibana.alert.suppression.docs_count"] for line in path.read_bytes().splitlines()]
    assert ids_in(path) == ["id-001", "id-001"]
    assert counts == [0, 4]
