"""Normalizer throughput: records per second of shellwatch.normalize.dispatch.normalize, per source family.

Decodes every record first (EVTX via the evtx package, OTRF lines via orjson) so that only normalization is
timed. Usage: python bench/bench_normalize.py [--shared ../shared] [--repeat 3]
"""

from __future__ import annotations

import argparse
import glob
import io
import time
import zipfile
from collections import Counter
from pathlib import Path

import evtx
import orjson

from shellwatch.ecs import flatten
from shellwatch.normalize.dispatch import normalize, source_family
from shellwatch.sources.record import Origin, RawRecord


def _evtx_records(root: Path) -> list[RawRecord]:
    records: list[RawRecord] = []
    for path in sorted(
        glob.glob(str(root / "corpus" / "evtx-attack-samples" / "**" / "*.evtx"), recursive=True)
    ):
        try:
            for item in evtx.PyEvtxParser(path, number_of_threads=1).records_json():
                assert item is not None
                records.append(
                    RawRecord(
                        orjson.loads(item["data"]), "windows_event", Origin(path, item["event_record_id"])
                    )
                )
        except Exception:  # damaged samples: keep what was read
            continue
    return records


def _otrf_records(root: Path, limit: int) -> list[RawRecord]:
    records: list[RawRecord] = []
    for path in sorted(
        glob.glob(str(root / "corpus" / "otrf-security-datasets" / "**" / "*.zip"), recursive=True)
    ):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as raw:
                    for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), 1):
                        records.append(RawRecord(orjson.loads(line), "json", Origin(path, line=number)))
                        if len(records) >= limit:
                            return records
    return records


def _best_seconds(records: list[RawRecord], repeat: int, work: object) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for record in records:
            work(record)  # type: ignore[operator]
        best = min(best, time.perf_counter() - began)
    return best


def _measure(name: str, records: list[RawRecord], repeat: int) -> None:
    families = Counter(source_family(record) for record in records)
    seconds = _best_seconds(records, repeat, normalize)
    # The same loop flattening the raw record: a machine-independent yardstick (normalize / flatten).
    reference = _best_seconds(records, repeat, lambda record: flatten(record.data))
    print(
        f"{name:>22}: {len(records):7d} records  {len(records) / seconds:10,.0f} records/s  "
        f"{seconds / len(records) * 1e6:6.2f} µs/record  ({seconds / reference:.2f}x flatten)  "
        f"families={dict(families)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--otrf-limit", type=int, default=50_000)
    args = parser.parse_args()

    evtx_records = _evtx_records(args.shared)
    _measure("evtx-attack-samples", evtx_records, args.repeat)
    for family in ("sysmon", "windows_security", "windows"):
        _measure(f"  {family}", [r for r in evtx_records if source_family(r) == family], args.repeat)
    _measure("otrf", _otrf_records(args.shared, args.otrf_limit), args.repeat)


if __name__ == "__main__":
    main()
