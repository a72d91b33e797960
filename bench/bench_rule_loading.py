"""Rule loading, cold and warm, and the start-up of ``shellwatch hunt`` on one small file.

Every figure is taken in a new interpreter (a subprocess), because that is what a user waits for: cold includes
importing the parsers (pySigma, eql), warm shows that a cached run never imports them. Measured:

* the SigmaHQ rule set (every ``.yml`` under ../shared/corpus/sigmahq-rules, 3,780 files): cold (an empty
  compiled-rule cache, so every file is parsed, in worker processes on every core, and stored), warm (the cache
  filled by the cold run), and without the cache (``cache=False``);
* the bundled rule pack: cold and warm;
* ``shellwatch hunt <small file>`` (default: samples/web01-sysmon.xml) with the bundled pack, whole process wall
  time, interpreter start-up included, with a warm and with a cold cache; and ``python -c pass`` for reference.

For each: the median and range over --runs runs (the load inside the process, and the whole process's wall time),
and the child's peak RSS. The load average is printed before and after: the machine's other work slows every
figure, so compare figures taken in the same run.

Usage: python bench/bench_rule_loading.py [--shared ../shared] [--runs 5] [--cold-runs 3] [--sample FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = PROJECT / "samples" / "web01-sysmon.xml"
CACHE_DIR_ENV = "SHELLWATCH_CACHE_DIR"


@dataclass
class Run:
    wall: float
    """Seconds of the whole child process."""
    inner: float | None
    """Seconds the child spent loading (None for a command whose inside is not timed)."""
    peak_rss_mb: float
    detail: str = ""


def child_load(paths: Sequence[str], use_cache: bool) -> None:
    """In the child: import the loader, load ``paths`` (or the bundled pack), print what it took as JSON."""
    started = time.perf_counter()
    from shellwatch.rules.loader import load_bundled_rules, load_rules

    imported = time.perf_counter()
    result = load_rules(paths, cache=use_cache) if paths else load_bundled_rules(cache=use_cache)
    loaded = time.perf_counter()
    parsers = sorted(name for name in ("sigma", "eql") if name in sys.modules)
    print(
        json.dumps(
            {
                "import": imported - started,
                "load": loaded - imported,
                "counts": dict(result.counts()),
                "parsers_imported": parsers,
            }
        )
    )


def run_child(command: Sequence[str], cache_dir: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one child process."""
    env = {**os.environ, CACHE_DIR_ENV: cache_dir}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed with status {process.returncode}")
    return wall, usage.ru_maxrss / 1024, output.decode("utf-8", "replace")


def load_run(paths: Sequence[str], cache_dir: str, use_cache: bool = True) -> Run:
    command = [sys.executable, __file__, "--child-load", *paths]
    if not use_cache:
        command.append("--no-cache")
    wall, rss, output = run_child(command, cache_dir)
    figures = json.loads(output.strip().splitlines()[-1])
    counts = ", ".join(f"{status} {count}" for status, count in sorted(figures["counts"].items()))
    parsers = ", ".join(figures["parsers_imported"]) or "none"
    return Run(wall, figures["load"], rss, f"{counts}; parsers imported: {parsers}")


def command_run(command: Sequence[str], cache_dir: str) -> Run:
    wall, rss, _ = run_child(command, cache_dir)
    return Run(wall, None, rss)


def shellwatch_command() -> list[str]:
    script = Path(sys.executable).with_name("shellwatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shellwatch"]


def report(label: str, runs: list[Run], target: str = "") -> None:
    walls = [run.wall for run in runs]
    line = f"{label:<44} wall {statistics.median(walls):7.3f} s ({min(walls):.3f}-{max(walls):.3f})"
    inner = [run.inner for run in runs if run.inner is not None]
    if inner:
        line += f"  load {statistics.median(inner):7.3f} s ({min(inner):.3f}-{max(inner):.3f})"
    else:
        line += " " * 33
    line += f"  peak RSS {max(run.peak_rss_mb for run in runs):6.1f} MB"
    if target:
        line += f"  [{target}]"
    print(line, flush=True)
    if runs and runs[-1].detail:
        print(f"{'':<44} {runs[-1].detail}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=PROJECT.parent / "shared")
    parser.add_argument("--runs", type=int, default=5, help="runs of each warm figure (median printed)")
    parser.add_argument("--cold-runs", type=int, default=3, help="runs of each cold figure (median printed)")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="the small file hunt reads")
    parser.add_argument("--child-load", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_load is not None:
        child_load(args.child_load, not args.no_cache)
        return

    sigma = args.shared / "corpus" / "sigmahq-rules"
    if not sigma.is_dir():
        raise SystemExit(f"{sigma} is not there: this benchmark needs ../shared beside the project")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    hunt = [*shellwatch_command(), "hunt", str(args.sample), "--format", "ndjson"]

    with tempfile.TemporaryDirectory(prefix="shellwatch-bench-cache-") as scratch:
        warm_dir = os.path.join(scratch, "warm")
        cold_runs = [load_run([str(sigma)], os.path.join(scratch, f"cold-{n}")) for n in range(args.cold_runs)]
        report("SigmaHQ (3,780 files), cold cache", cold_runs, "target <= 8 s")
        load_run([str(sigma)], warm_dir)
        report("SigmaHQ, warm cache", [load_run([str(sigma)], warm_dir) for _ in range(args.runs)], "target <= 0.5 s")
        report("SigmaHQ, cache=False", [load_run([str(sigma)], warm_dir, use_cache=False)])

        pack_cold = [load_run([], os.path.join(scratch, f"pack-cold-{n}")) for n in range(args.cold_runs)]
        report("bundled pack, cold cache", pack_cold)
        load_run([], warm_dir)
        report("bundled pack, warm cache", [load_run([], warm_dir) for _ in range(args.runs)])

        report("python -c pass", [command_run([sys.executable, "-c", "pass"], warm_dir) for _ in range(args.runs)])
        command_run(hunt, warm_dir)
        hunt_warm = [command_run(hunt, warm_dir) for _ in range(args.runs)]
        report(f"shellwatch hunt {args.sample.name}, warm cache", hunt_warm, "target <= 1 s")
        hunt_cold = [command_run(hunt, os.path.join(scratch, f"hunt-cold-{n}")) for n in range(args.cold_runs)]
        report(f"shellwatch hunt {args.sample.name}, cold cache", hunt_cold)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
