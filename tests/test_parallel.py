"""Hunting with worker processes gives exactly what hunting in-process gives: the same alerts (ids and order), the
same problems in the same order, the same counts; and the ordered merge of shellwatch.parallel survives workers
that die or fail."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from conftest import shared_path
from shellwatch import parallel
from shellwatch.engine.ruleset import RuleSet
from shellwatch.parallel import WorkerError, scan_in_order, worker_count
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def run(paths: list[str], workers: int | None) -> tuple[list[dict[str, Any]], HuntStats, list[str]]:
    stats = HuntStats()
    problems: list[str] = []
    rules = RuleSet(load_bundled_rules().rules)
    alerts = list(hunt(paths, rules, stats=stats, on_problem=lambda p: problems.append(str(p)), workers=workers))
    return alerts, stats, problems


def counts(stats: HuntStats) -> dict[str, Any]:
    return {
        "inputs": stats.inputs,
        "input_bytes": stats.input_bytes,
        "inputs_done": stats.inputs_done,
        "bytes_done": stats.bytes_done,
        "records": stats.records,
        "events_in_window": stats.events_in_window,
        "by_source": list(stats.by_source.items()),
        "alerts": stats.alerts,
        "duplicates": stats.duplicates,
        "alerts_by_rule": dict(stats.alerts_by_rule),
        "problems": [str(p) for p in stats.problems],
    }


def assert_same_hunt(paths: list[str]) -> tuple[list[dict[str, Any]], HuntStats, list[str]]:
    alerts_1, stats_1, problems_1 = run(paths, workers=1)
    alerts_2, stats_2, problems_2 = run(paths, workers=2)
    assert stats_1.workers == 1
    assert stats_2.workers == 2, "the hunt with workers=2 ran in-process: nothing compared"
    assert [a["kibana.alert.uuid"] for a in alerts_2] == [a["kibana.alert.uuid"] for a in alerts_1]
    assert [a["shellwatch.origin"] for a in alerts_2] == [a["shellwatch.origin"] for a in alerts_1]
    assert problems_2 == problems_1
    assert counts(stats_2) == counts(stats_1)
    return alerts_1, stats_1, problems_1


def test_samples_same_alerts_with_one_and_two_workers() -> None:
    """The bundled samples (no ../shared needed): alerts from several inputs, merged in input order."""
    alerts, stats, _ = assert_same_hunt([str(SAMPLES)])
    assert alerts and stats.inputs >= 2
    listing = [str(path) for path in sorted(SAMPLES.iterdir())]
    positions = [listing.index(alert["shellwatch.origin"]["path"]) for alert in alerts]
    assert positions == sorted(positions) and len(set(positions)) >= 2


def test_corpus_same_alerts_problems_and_counts_with_one_and_two_workers() -> None:
    """Real logs: web-shell traces (alerts), damaged EVTX files (problems), a log named twice (duplicates)."""
    lateral = shared_path("corpus", "evtx-attack-samples", "Lateral Movement")
    damaged = shared_path("corpus", "omerbenamram-evtx", "samples")
    hayabusa = shared_path("corpus", "hayabusa-sample-evtx")
    trace = lateral / "LM_typical_IIS_webshell_sysmon_1_10_traces.evtx"
    paths = [str(lateral), str(damaged), str(SAMPLES), str(hayabusa), str(trace)]
    alerts, stats, problems = assert_same_hunt(paths)
    assert alerts and problems and stats.duplicates > 0
    assert stats.records > 10_000


def test_spawned_workers_give_the_same_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where fork is not used (threads running, macOS, Windows) the rules and settings travel pickled."""
    expected, expected_stats, _ = run([str(SAMPLES)], workers=1)
    monkeypatch.setattr(parallel, "_start_method", lambda: "spawn")
    alerts, stats, _ = run([str(SAMPLES)], workers=2)
    assert stats.workers == 2
    assert [a["kibana.alert.uuid"] for a in alerts] == [a["kibana.alert.uuid"] for a in expected]
    assert counts(stats) == counts(expected_stats)


def test_inputs_read_several_times_give_each_alert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample Windows event logs copied into three folders (two exports of one log, as an incident's
    collections often hold): each alert once, the others counted as duplicates, alike with one and two workers; a
    process does not build the alert of a match it already alerted on (Kibana makes an alert id once, and a
    Windows event's id is the same in every copy of its log)."""
    import shellwatch.pipeline as pipeline

    logs = sorted(SAMPLES.glob("*.xml"))
    copies = []
    for number in range(3):
        folder = tmp_path / f"export{number}"
        folder.mkdir()
        for path in logs:
            (folder / path.name).write_bytes(path.read_bytes())
        copies.append(str(folder))
    once, once_stats, _ = run([str(path) for path in logs], workers=1)
    alerts, stats, _ = assert_same_hunt(copies)
    assert [a["kibana.alert.uuid"] for a in alerts] == [a["kibana.alert.uuid"] for a in once]
    assert once_stats.duplicates == 0
    built: list[str] = []
    real = pipeline.build_alert

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        alert = real(*args, **kwargs)
        built.append(alert["kibana.alert.uuid"])
        return alert

    monkeypatch.setattr(pipeline, "build_alert", counted)
    run(copies, workers=1)
    # Each alert id (held ones too: a new terms rule's) built once, and met twice more.
    assert len(built) == len(set(built)) >= stats.alerts > 0
    assert stats.duplicates == 2 * len(built)


def test_an_earlier_input_met_after_a_later_one_makes_its_alert(tmp_path: Path) -> None:
    """A worker that takes over a dead worker's inputs meets an earlier input after later ones: the copy of an
    event in the earlier input is the one the hunt keeps, so it is built even though the worker made the same
    alert for a later input; a copy met again afterwards, in a later input, is not."""
    from shellwatch.pipeline import InputScanner, MatchedAlert, ScanCounts, ScanSettings
    from shellwatch.query.eql import parse_eql
    from shellwatch.rules.model import Rule, RuleSource
    from shellwatch.sources.reader import list_inputs

    document = orjson.dumps(
        {"_id": "one-event", "agent": {"type": "endpoint"}, "process": {"parent": {"name": "w3wp.exe"}}}
    )
    paths = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.ndjson"
        path.write_bytes(document + b"\n")
        paths.append(str(path))
    inputs = list_inputs(paths)
    rule = Rule(
        rule_id="probe",
        name="probe",
        description="",
        type="eql",
        language="eql",
        query="",
        ir=parse_eql('any where process.parent.name == "w3wp.exe"'),
        source=RuleSource(path="tests/test_parallel.py"),
    )
    scanner = InputScanner(RuleSet([rule]), ScanSettings(start=None, end=None, detected_at=datetime.now(UTC)))

    def outcome(position: int) -> tuple[int, int]:
        results = list(scanner.scan(inputs[position], position))
        built = sum(1 for result in results if type(result) is MatchedAlert)
        return built, sum(result.duplicates for result in results if type(result) is ScanCounts)

    assert outcome(1) == (1, 0)
    assert outcome(0) == (1, 0), "the earlier input's alert is built"
    assert outcome(2) == (0, 1)


def test_small_inputs_stay_in_process_by_default() -> None:
    _, stats, _ = run([str(SAMPLES / "web01-sysmon.xml"), str(SAMPLES / "web02-security.xml")], workers=None)
    assert stats.workers == 1


def test_worker_count() -> None:
    assert worker_count(4, inputs=1, total_bytes=10**9) == 1
    assert worker_count(4, inputs=3, total_bytes=0) == 3
    assert worker_count(None, inputs=100, total_bytes=0) == 1
    with pytest.raises(ValueError, match="at least 1"):
        worker_count(0, inputs=3, total_bytes=0)


# ------------------------------------------------------------------------------------------------------------
# The ordered merge itself, with toy scans (module-level: they must reach the workers).


def _three_results(task: int) -> Iterator[str]:
    for part in range(3):
        yield f"{task}.{part}"


def _make_three_results() -> Any:
    return _three_results


def _dies_on_five(task: int) -> Iterator[str]:
    if task == 5:
        os._exit(3)
    yield from _three_results(task)


def _make_dies_on_five() -> Any:
    return _dies_on_five


def _fails_on_two(task: int) -> Iterator[str]:
    if task == 2:
        raise ValueError("scanner bug")
    yield from _three_results(task)


def _make_fails_on_two() -> Any:
    return _fails_on_two


def _slow_first(task: int) -> Iterator[str]:
    if task == 0:
        time.sleep(0.3)
    for part in range(3 if task == 0 else 50):
        yield f"{task}.{part}"


def _make_slow_first() -> Any:
    return _slow_first


def _lost(task: int, reason: str) -> str:
    return f"{task} lost: {reason}"


def collect(
    make_scan: Any, tasks: int, processes: int, weights: list[int | None] | None = None
) -> list[tuple[int, str | None]]:
    out: list[tuple[int, str | None]] = []
    for first, end, results in scan_in_order(list(range(tasks)), make_scan, processes, _lost, weights):
        assert end in (first, first + 1), "tasks finish one by one without a fold"
        out.extend((first, result) for result in results)
        if end > first:
            out.append((first, None))
    return out


@pytest.mark.parametrize("weights", [None, [1] * 20, [1, None] * 10], ids=["one by one", "grouped", "mixed"])
def test_results_come_in_task_order(weights: list[int | None] | None) -> None:
    expected = [(task, item) for task in range(20) for item in [*_three_results(task), None]]
    assert collect(_make_three_results, 20, 3, weights) == expected
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("weights", [None, [1] * 12], ids=["one by one", "grouped"])
def test_a_dead_worker_costs_only_its_input(weights: list[int | None] | None) -> None:
    out = collect(_make_dies_on_five, 12, 2, weights)
    assert [item for task, item in out if task == 5] == [
        "5 lost: worker process ended (exit code 3) while reading this input; the rest of it is skipped",
        None,
    ]
    for task in (*range(5), *range(6, 12)):
        assert [item for index, item in out if index == task] == [*_three_results(task), None]


def test_a_failing_scanner_stops_the_run() -> None:
    with pytest.raises(WorkerError, match="scanner bug"):
        collect(_make_fails_on_two, 6, 2)
    assert multiprocessing.active_children() == []


def test_backpressure_keeps_order_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With few results allowed to wait, the parent reads only the worker on the first input until it is done."""
    monkeypatch.setattr(parallel, "MAX_WAITING_RESULTS", 5)
    out = collect(_make_slow_first, 10, 2)
    expected: list[tuple[int, str | None]] = []
    for task in range(10):
        expected += [(task, f"{task}.{part}") for part in range(3 if task == 0 else 50)]
        expected.append((task, None))
    assert out == expected


def test_closing_early_stops_the_workers() -> None:
    results = scan_in_order(list(range(50)), _make_three_results, 2, _lost)
    assert next(results)[0] == 0
    results.close()
    assert multiprocessing.active_children() == []
