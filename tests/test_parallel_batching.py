"""Many small inputs cost the parent little: workers fold the counts of consecutive inputs that raised nothing into
one result and finish them together, and groups of inputs shrink as the inputs run out. None of it may change what a
hunt reports: the same alerts and problems in the same order, the same counts (records by source in the order
sources were first met, the first ten places of unrecognized records in input order, matches silenced by exception
lists), and a worker that dies in the middle of a folded run still costs only the input it was on."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import shared_path
from shellwatch import pipeline
from shellwatch.engine.ruleset import RuleSet
from shellwatch.parallel import GROUP_TASKS, GROUP_WEIGHT, _OrderedRun, _Worker, scan_in_order
from shellwatch.pipeline import ExceptionSpec, HuntStats, ScanCounts, hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.sources.record import Origin, ReadProblem
from test_hunt_exceptions import TUNING, defend_start

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

# ------------------------------------------------------------------------------------------------------------
# The ordered merge with a fold, with toy scans (module-level: they must reach the workers). A task yields the
# count 1; every seventh also yields an alert before it, which no fold may swallow.


def _count_and_alerts(task: int) -> Iterator[Any]:
    if task % 7 == 3:
        yield f"alert {task}"
    yield 1


def _make_count_and_alerts() -> Any:
    return _count_and_alerts


def _count_or_die_on_five(task: int) -> Iterator[Any]:
    if task == 5:
        os._exit(3)
    yield 1


def _make_count_or_die_on_five() -> Any:
    return _count_or_die_on_five


def _sum_counts(earlier: Any, later: Any) -> Any:
    if type(later) is not int or (earlier is not None and type(earlier) is not int):
        return None
    return later if earlier is None else earlier + later


def _lost(task: int, reason: str) -> str:
    return f"{task} lost: {reason}"


def pieces_of(make_scan: Any, tasks: int, weights: list[int | None] | None) -> list[tuple[int, int, list[Any]]]:
    pieces = list(scan_in_order(list(range(tasks)), make_scan, 2, _lost, weights, _sum_counts))
    assert multiprocessing.active_children() == []
    return pieces


def assert_cover_in_order(pieces: list[tuple[int, int, list[Any]]], tasks: int) -> None:
    """Finished pieces follow each other without gap or overlap, from the first task to the last."""
    finished = [(first, end) for first, end, _ in pieces if end > first]
    assert [first for first, _ in finished] == [0, *(end for _, end in finished[:-1])]
    assert finished[-1][1] == tasks


@pytest.mark.parametrize("weights", [None, [1] * 300], ids=["one by one", "grouped"])
def test_folded_runs_count_each_task_once_and_keep_other_results_in_order(weights: list[int | None] | None) -> None:
    pieces = pieces_of(_make_count_and_alerts, 300, weights)
    assert_cover_in_order(pieces, 300)
    alerts = [(first, result) for first, _, results in pieces for result in results if isinstance(result, str)]
    assert alerts == [(task, f"alert {task}") for task in range(300) if task % 7 == 3]
    for first, end, results in pieces:
        counts = [result for result in results if isinstance(result, int)]
        # A run's one result counts its tasks; a task with an alert stands alone, its count after the alert.
        assert counts == [end - first]
        if any(isinstance(result, str) for result in results):
            assert end == first + 1 and isinstance(results[-1], int)
    if weights is not None:
        assert max(end - first for first, end, _ in pieces) > 1, "nothing was folded"


def test_a_dead_worker_in_a_folded_run_costs_only_its_input() -> None:
    """Task 5 kills its worker in the middle of its first group (0 .. 49): tasks 0 to 4, folded but not sent,
    are scanned again by the new worker, and counted once."""
    pieces = pieces_of(_make_count_or_die_on_five, 200, [1] * 200)
    assert_cover_in_order(pieces, 200)
    assert (
        5,
        6,
        ["5 lost: worker process ended (exit code 3) while reading this input; the rest of it is skipped"],
    ) in pieces
    assert sum(result for _, _, results in pieces for result in results if isinstance(result, int)) == 199
    assert max(end - first for first, end, _ in pieces) > 1, "nothing was folded"


# ------------------------------------------------------------------------------------------------------------
# How the parent cuts the tasks into groups (no process involved: a worker that only records what it is sent).


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


def groups_handed_out(tasks: int, processes: int, weights: list[int | None] | None) -> list[tuple[int, int]]:
    run = _OrderedRun(list(range(tasks)), _make_count_and_alerts, processes, _lost, weights, None)
    recorders = [_Recorder() for _ in range(processes)]
    workers = [_Worker(None, recorder, None) for recorder in recorders]  # type: ignore[arg-type]
    handed: list[tuple[int, int]] = []
    while run.unassigned:
        for worker, recorder in zip(workers, recorders, strict=True):
            left = run.remaining
            run._assign(worker)
            if not worker.groups or worker.groups[-1][0] < (handed[-1][1] if handed else 0):
                break  # nothing was left for this worker
            first, end = worker.groups[-1]
            handed.append((first, end))
            assert end - first <= max(1, left // (2 * processes)), "a group larger than a quarter of what is left"
            assert recorder.sent[-1] == (first, list(range(first, end)))
    return handed


def test_groups_shrink_as_the_tasks_run_out() -> None:
    handed = groups_handed_out(2000, 2, [1] * 2000)
    assert [first for first, _ in handed] == [0, *(end for _, end in handed[:-1])] and handed[-1][1] == 2000
    sizes = [end - first for first, end in handed]
    assert sizes[0] == GROUP_TASKS
    assert sizes[-4:] == [1, 1, 1, 1]
    assert sizes == sorted(sizes, reverse=True)


def test_heavy_tasks_travel_alone_and_light_ones_together_up_to_the_weight() -> None:
    weights: list[int | None] = [GROUP_WEIGHT // 3] * 12 + [None, 5, GROUP_WEIGHT + 1, 5] + [1] * 400
    handed = groups_handed_out(len(weights), 2, weights)
    sizes = [end - first for first, end in handed]
    assert sizes[:8] == [3, 3, 3, 3, 1, 1, 1, GROUP_TASKS]


# ------------------------------------------------------------------------------------------------------------
# The pipeline's fold of counts.


def test_fold_counts_sums_and_keeps_first_seen_order() -> None:
    fold = pipeline._fold_counts
    first = ScanCounts(3, 2, {"sysmon": 3}, None, {4: 1})
    second = ScanCounts(5, 5, {"unknown": 1, "sysmon": 4}, "b.json:7", None)
    third = ScanCounts(1, 1, {"windows_security": 1}, None, {2: 2, 4: 1})
    run = fold(None, first)
    run = fold(run, second)
    run = fold(run, third)
    assert run == ScanCounts(9, 8, {"sysmon": 7, "unknown": 1, "windows_security": 1}, "b.json:7", {4: 2, 2: 2})
    assert list(run.by_source) == ["sysmon", "unknown", "windows_security"]
    assert first == ScanCounts(3, 2, {"sysmon": 3}, None, {4: 1}), "the first result was changed in place"
    # Two places of unrecognized records: both are kept, so the counts stay apart.
    assert fold(run, ScanCounts(1, 1, {"unknown": 1}, "c.json:1")) is None
    assert fold(None, ReadProblem(Origin("x"), "bad")) is None


# ------------------------------------------------------------------------------------------------------------
# Whole hunts: workers=2 against workers=1 over many small inputs.


def full_counts(stats: HuntStats) -> dict[str, Any]:
    return {
        "inputs": stats.inputs,
        "input_bytes": stats.input_bytes,
        "inputs_done": stats.inputs_done,
        "bytes_done": stats.bytes_done,
        "records": stats.records,
        "events_in_window": stats.events_in_window,
        "by_source": list(stats.by_source.items()),
        "unrecognized_at": stats.unrecognized_at,
        "alerts": stats.alerts,
        "duplicates": stats.duplicates,
        "alerts_by_rule": list(stats.alerts_by_rule.items()),
        "excluded_by_rule": list(stats.excluded_by_rule.items()),
        "problems": [str(p) for p in stats.problems],
    }


def hunt_with_pieces(
    paths: list[str], workers: int, monkeypatch: pytest.MonkeyPatch, exceptions: ExceptionSpec | None = None
) -> tuple[list[str], HuntStats, list[int]]:
    """Alert ids, counts, and how many inputs each finished piece from the workers covered."""
    spans: list[int] = []
    real = scan_in_order

    def watched(*args: Any) -> Iterator[tuple[int, int, list[Any]]]:
        for first, end, results in real(*args):
            if end > first:
                spans.append(end - first)
            yield first, end, results

    monkeypatch.setattr(pipeline, "scan_in_order", watched)
    stats = HuntStats()
    progress: list[int] = []
    rules = RuleSet(load_bundled_rules().rules)
    alerts = [
        alert["kibana.alert.uuid"]
        for alert in hunt(
            paths,
            rules,
            stats=stats,
            workers=workers,
            exceptions=exceptions,
            on_progress=lambda s: progress.append(s.inputs_done),
        )
    ]
    assert stats.workers == workers
    assert progress == sorted(progress) and progress[-1] == stats.inputs
    return alerts, stats, spans


@pytest.fixture
def small_inputs(tmp_path: Path) -> list[str]:
    """240 small files in one directory: quiet ones (counts only), files of unrecognized records (more than ten
    places, some next to each other), web-shell traces (alerts), an empty file and damaged JSON (problems)."""
    sysmon = (SAMPLES / "web01-sysmon.xml").read_text(encoding="utf-8")
    defend = (SAMPLES / "web03-endpoint.ndjson").read_text(encoding="utf-8").splitlines()
    for number in range(240):
        path = tmp_path / f"{number:03d}.ndjson"
        if number % 53 == 7:
            (tmp_path / f"{number:03d}.xml").write_text(sysmon, encoding="utf-8")
        elif number % 17 in (4, 5):
            path.write_text(json.dumps({"odd": number}) + "\n", encoding="utf-8")
        elif number == 100:
            path.write_text("", encoding="utf-8")
        elif number == 150:
            path.write_text('{"broken": \n', encoding="utf-8")
        else:
            # An Elastic Defend event no bundled rule matches (the sample's third), its id changed so that none
            # repeats.
            event = json.loads(defend[2])
            event["event"]["id"] = f"quiet-{number}"
            path.write_text(json.dumps(event) + "\n", encoding="utf-8")
    return [str(tmp_path)]


def test_many_small_inputs_same_hunt_with_one_and_two_workers(
    small_inputs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts_1, stats_1, _ = hunt_with_pieces(small_inputs, 1, monkeypatch)
    alerts_2, stats_2, spans = hunt_with_pieces(small_inputs, 2, monkeypatch)
    assert alerts_2 == alerts_1 and alerts_1
    assert full_counts(stats_2) == full_counts(stats_1)
    assert len(stats_1.unrecognized_at) == 10 and stats_1.problems
    assert sum(spans) == stats_1.inputs and max(spans) > 1, "the workers folded nothing"


def test_matches_silenced_in_many_small_inputs_are_counted_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An input whose only match an exception list silenced raised nothing: its counts fold with the others'."""
    for number in range(1, 120):
        event = defend_start(number % 10, "MyAppPool" if number % 3 else "Payroll", "whoami.exe")
        event["event"]["id"] = f"evt-{number}"
        (tmp_path / f"{number:03d}.ndjson").write_text(json.dumps(event) + "\n", encoding="utf-8")
    spec = ExceptionSpec((TUNING,), attach=(("*", ("web-shell-tuning",)),))
    alerts_1, stats_1, _ = hunt_with_pieces([str(tmp_path)], 1, monkeypatch, spec)
    alerts_2, stats_2, spans = hunt_with_pieces([str(tmp_path)], 2, monkeypatch, spec)
    assert alerts_2 == alerts_1 and alerts_1
    assert full_counts(stats_2) == full_counts(stats_1)
    assert sum(stats_1.excluded_by_rule.values()) >= 79
    assert max(spans) > 1, "the workers folded nothing"


def test_corpus_evtx_same_counts_with_one_and_two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's inputs: hundreds of small EVTX files, most of which raise nothing."""
    paths = [str(shared_path("corpus", "evtx-attack-samples")), str(shared_path("corpus", "hayabusa-sample-evtx"))]
    alerts_1, stats_1, _ = hunt_with_pieces(paths, 1, monkeypatch)
    alerts_2, stats_2, spans = hunt_with_pieces(paths, 2, monkeypatch)
    assert alerts_2 == alerts_1
    assert full_counts(stats_2) == full_counts(stats_1)
    assert len(spans) < stats_1.inputs / 2, "most inputs should finish in folded runs"
