"""Reader throughput on EVTX: records per second of shellwatch.sources.reader.read_paths over the
evtx-attack-samples corpus, against the bare loop it is built on (PyEvtxParser(path, number_of_threads=1)
.records_json() + orjson.loads), over the same files in the same run.

Both sides are timed several times, interleaved, best run kept (the files are in the page cache after the
first pass). The difference is the reader's own per-record cost: RawRecord and Origin construction, the
run-length bookkeeping of record ids, the chunk-header check after each file, and file walking and sniffing.

Usage: python bench/bench_read_evtx.py [--shared ../shared] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from evtx import PyEvtxParser

from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import Origin, RawRecord, ReadProblem


def bare_loop(files: list[str]) -> int:
    count = 0
    loads = orjson.loads
    for path in files:
        records = PyEvtxParser(path, number_of_threads=1).records_json()
        while True:
            try:
                for item in records:
                    loads(item["data"])
                    count += 1
                break
            except RuntimeError:
                continue
    return count


def reader(root: str) -> int:
    problems: list[ReadProblem] = []
    count = sum(1 for _ in read_paths([root], on_problem=problems.append))
    return count


def construct_records(count: int) -> int:
    """The part of the overhead that is the record contract itself: a RawRecord and an Origin per record."""
    data: dict[str, object] = {}
    for record_id in range(count):
        RawRecord(data, "windows_event", Origin("path", record_id))
    return count


def timed(work: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = work()
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    root = Path(arguments.shared) / "corpus" / "evtx-attack-samples"
    files = sorted(str(path) for path in root.rglob("*.evtx"))
    size = sum(Path(path).stat().st_size for path in files)
    print(f"{len(files)} EVTX files, {size / 1e6:.1f} MB, under {root}")
    bare_loop(files)  # warm the page cache
    # Interleaved, best of each kept: load from other processes hits both sides alike.
    bare_seconds = reader_seconds = contract_seconds = float("inf")
    bare_count = reader_count = 0
    for _ in range(arguments.repeat):
        seconds, bare_count = timed(lambda: bare_loop(files))
        bare_seconds = min(bare_seconds, seconds)
        seconds, reader_count = timed(lambda: reader(str(root)))
        reader_seconds = min(reader_seconds, seconds)
        seconds, _ = timed(lambda count=reader_count: construct_records(count))
        contract_seconds = min(contract_seconds, seconds)
    print(
        f"bare PyEvtxParser.records_json + orjson.loads: {bare_count} records in {bare_seconds:.3f} s, "
        f"{bare_count / bare_seconds:,.0f} records/s"
    )
    print(
        f"read_paths:                                  {reader_count} records in {reader_seconds:.3f} s, "
        f"{reader_count / reader_seconds:,.0f} records/s"
    )
    overhead = (reader_seconds - bare_seconds) / reader_count * 1e6
    print(f"reader overhead: {overhead:.2f} µs per record ({reader_seconds / bare_seconds - 1:+.1%})")
    contract = contract_seconds / reader_count * 1e6
    print(f"  of which building RawRecord + Origin (frozen dataclasses): {contract:.2f} µs")


if __name__ == "__main__":
    main()
