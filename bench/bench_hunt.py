"""Hunt throughput against the bare EVTX parser, side by side, in one run.

Inputs: every .evtx file of ../shared/corpus/evtx-attack-samples and ../shared/corpus/hayabusa-sample-evtx, the
list repeated until the bare parser needs at least --min-seconds (default 2 s) with one process. Measured:

* bare parser: ``PyEvtxParser(path, number_of_threads=1).records_json()``, each record's JSON text taken as is
  ("JSON text") and decoded with ``orjson.loads`` ("+ decode"), the file list split into one share per process
  (every Nth file) over a pool of N processes, started inside the timed region as hunt's workers are;
* hunt: :func:`shellwatch.pipeline.hunt` with the bundled rule pack (loaded once, outside the timed region) over
  the same file list, every alert consumed, with the default worker count and with ``workers=1``. Run it in a regular
  install (``pip install .``), where mypyc compiled the hot path (setup.py); the first line says whether it did.

Each figure is the median of --repeat runs (default 5), the variants interleaved so that load from other processes
hits them alike. Records are counted by each side and must agree.

Usage: python bench/bench_hunt.py [--shared ../shared] [--repeat 5] [--min-seconds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from evtx import PyEvtxParser

from shellwatch import compiled_modules
from shellwatch.engine.ruleset import RuleSet
from shellwatch.parallel import available_cores
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules

CORPORA = ("evtx-attack-samples", "hayabusa-sample-evtx")


def bare_count(path: str, decode: bool) -> int:
    """Records of one file through the bare parser loop (damaged records skipped as the iterator allows)."""
    count = 0
    loads = orjson.loads
    records: Any = PyEvtxParser(path, number_of_threads=1).records_json()
    while True:
        try:
            if decode:
                for item in records:
                    loads(item["data"])
                    count += 1
            else:
                for item in records:
                    item["data"]
                    count += 1
            return count
        except RuntimeError:
            continue


def bare_count_all(paths: list[str], decode: bool) -> int:
    return sum(bare_count(path, decode) for path in paths)


def bare(files: list[str], processes: int, decode: bool) -> int:
    if processes == 1:
        return bare_count_all(files, decode)
    # One share of the files per process (every Nth file: shares of about equal size), one message each way.
    shares = [files[start::processes] for start in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return sum(pool.starmap(bare_count_all, [(share, decode) for share in shares], chunksize=1))


def hunt_records(files: list[str], rules: RuleSet, workers: int | None) -> int:
    stats = HuntStats()
    for _ in hunt(files, rules, stats=stats, on_problem=lambda _problem: None, workers=workers):
        pass
    return stats.records


def compiled_path() -> str:
    """Which modules run compiled: a regular install (``pip install .``) compiles the hot path, an editable one
    does not (setup.py)."""
    return ", ".join(compiled_modules()) or "none (an editable install: `pip install .` compiles it)"


def timed(work: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = work()
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    arguments = parser.parse_args()

    roots = [Path(arguments.shared) / "corpus" / name for name in CORPORA]
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found (the corpus lives in ../shared beside the project)")
        return
    corpus = sorted(str(path) for root in roots for path in root.rglob("*.evtx"))
    size = sum(os.path.getsize(path) for path in corpus)
    rules = RuleSet(load_bundled_rules().rules)
    cores = available_cores()

    one_pass, one_pass_records = timed(lambda: bare(corpus, 1, True))
    copies = max(1, int(arguments.min_seconds / one_pass) + 1)
    files = corpus * copies
    print(f"compiled hot path: {compiled_path()}")
    print(
        f"{len(corpus)} EVTX files ({size / 1e6:.1f} MB, {one_pass_records:,} records) x {copies} = "
        f"{len(files)} inputs, {one_pass_records * copies:,} records; {cores} cores, load average "
        + " ".join(f"{load:.2f}" for load in os.getloadavg())
    )

    variants: dict[str, Callable[[], int]] = {
        "bare parser, JSON text, 2 processes": lambda: bare(files, 2, False),
        "bare parser + decode, 2 processes": lambda: bare(files, 2, True),
        "hunt, default workers": lambda: hunt_records(files, rules, None),
        "bare parser, JSON text, 1 process": lambda: bare(files, 1, False),
        "bare parser + decode, 1 process": lambda: bare(files, 1, True),
        "hunt, workers=1": lambda: hunt_records(files, rules, 1),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    counts: dict[str, int] = {}
    for run in range(arguments.repeat):
        for name, work in variants.items():
            seconds, count = timed(work)
            rates[name].append(count / seconds)
            counts[name] = count
        print(f"  run {run + 1}/{arguments.repeat} done", file=sys.stderr)
    if len(set(counts.values())) != 1:
        print(f"warning: record counts differ: {counts}")

    median = {name: statistics.median(values) for name, values in rates.items()}
    width = max(len(name) for name in variants)
    print(f"{'':{width}}  records/s (median of {arguments.repeat}; min - max)")
    for name, values in rates.items():
        print(f"{name:{width}}  {median[name]:>10,.0f}  ({min(values):,.0f} - {max(values):,.0f})")
    for processes, hunt_name in ((2, "hunt, default workers"), (1, "hunt, workers=1")):
        unit = "processes" if processes > 1 else "process"
        for bare_kind in ("JSON text", "+ decode"):
            bare_name = f"bare parser, {bare_kind}, {processes} {unit}".replace(", + decode", " + decode")
            print(f"{hunt_name} / {bare_name}: {median[hunt_name] / median[bare_name]:.2f}")
    print("load average after: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))


if __name__ == "__main__":
    main()
