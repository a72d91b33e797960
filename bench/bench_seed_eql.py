"""Throughput of the seed EQL rule: shellwatch's compiled predicate against the eql package's PythonEngine.

Builds N in-memory flat ECS events (a Windows-heavy mix: process starts of common programs, a few percent with
a web-server parent, process ends, network/file/registry events, some Linux), compiles the seed rule
(../shared/reference/elastic/persistence_webshell_detection.eql-version.toml) and times:

(a) shellwatch's compiled predicate (and, for reference, its closure-only form) over all N events, one core;
(b) the eql package's PythonEngine over a subset, on the nested, Endgame-style events it takes
    (``Event("process", 0, {...})``), its rate scaled to events/s.

The eql engine compares case-insensitively, reads no list-valued field and treats ``not`` over a missing field
as null; the subset is therefore built where those semantics coincide with Elasticsearch's (single-valued
``event.type``, every process event has a command line, lower-case ``windows``/``start``), and the script
checks that both engines find the same matches there.

    python bench/bench_seed_eql.py [--events 1000000] [--eql-events 50000] [--repeat 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import eql
from eql.events import Event

from shellwatch.ecs import unflatten
from shellwatch.engine.compile_python import compile_closure, compile_predicate
from shellwatch.query.eql import parse_eql

SEED_RULE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / "elastic"
    / "persistence_webshell_detection.eql-version.toml"
)

COMMON_PROCESSES = [
    ("svchost.exe", 30),
    ("conhost.exe", 12),
    ("chrome.exe", 10),
    ("msedge.exe", 8),
    ("RuntimeBroker.exe", 6),
    ("backgroundTaskHost.exe", 5),
    ("cmd.exe", 5),
    ("powershell.exe", 4),
    ("WmiPrvSE.exe", 4),
    ("taskhostw.exe", 4),
    ("dllhost.exe", 4),
    ("SearchProtocolHost.exe", 3),
    ("OneDrive.exe", 3),
    ("notepad.exe", 2),
]
COMMON_PARENTS = [
    ("services.exe", 30),
    ("svchost.exe", 25),
    ("explorer.exe", 20),
    ("userinit.exe", 5),
    ("chrome.exe", 8),
    ("cmd.exe", 6),
    ("wininit.exe", 3),
    ("taskeng.exe", 3),
]
WEB_PARENTS = [
    "w3wp.exe",
    "W3WP.EXE",
    "httpd.exe",
    "nginx.exe",
    "php-cgi.exe",
    "php.exe",
    "tomcat.exe",
    "sqlservr.exe",
]
WEB_CHILDREN = [
    ("cmd.exe", 40),
    ("powershell.exe", 15),
    ("conhost.exe", 15),
    ("csc.exe", 10),
    ("whoami.exe", 6),
    ("cscript.exe", 5),
    ("pwsh.exe", 3),
    ("wmic.exe", 3),
    ("PowerShell.EXE", 3),
]
PHP_MODE_LINES = ["cmd.exe /c mode CON", 'cmd.exe /s /c "mode CON"', 'CMD.EXE /c "mode"']
LINUX_PROCESSES = ["bash", "sh", "python3", "sshd", "cron", "systemd", "curl"]
LINUX_PARENTS = ["systemd", "sshd", "bash", "nginx", "httpd", "cron"]


def _weighted(rnd: random.Random, choices: Sequence[tuple[str, int]]) -> str:
    return rnd.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def build_events(count: int, seed: int) -> list[dict[str, Any]]:
    """Flat ECS events; shared list objects keep the memory of a million events modest."""
    rnd = random.Random(seed)
    process, network, file, registry = ["process"], ["network"], ["file"], ["registry"]
    start, end = ["start"], ["end"]
    hosts = [f"WEB-{i:02d}" for i in range(20)] + [f"WKS-{i:03d}" for i in range(80)]
    events: list[dict[str, Any]] = []
    for i in range(count):
        roll = rnd.random()
        host = rnd.choice(hosts)
        base: dict[str, Any] = {
            "@timestamp": f"2024-05-01T10:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}Z",
            "host.name": host,
            "host.os.type": "windows",
            "agent.type": "winlogbeat",
        }
        if roll < 0.80:
            web = host.startswith("WEB") and rnd.random() < 0.15
            parent = rnd.choice(WEB_PARENTS) if web else _weighted(rnd, COMMON_PARENTS)
            name = _weighted(rnd, WEB_CHILDREN) if web else _weighted(rnd, COMMON_PROCESSES)
            if parent.lower() in ("php.exe", "httpd.exe") and name == "cmd.exe" and rnd.random() < 0.5:
                command_line = rnd.choice(PHP_MODE_LINES)
            else:
                command_line = f"{name} /c job {rnd.randrange(1 << 20)}"
            base.update(
                {
                    "event.category": process,
                    "event.type": start,
                    "process.name": name,
                    "process.executable": f"C:\\Windows\\System32\\{name}",
                    "process.command_line": command_line,
                    "process.pid": rnd.randrange(4, 65536),
                    "process.parent.name": parent,
                    "process.parent.pid": rnd.randrange(4, 65536),
                    "user.name": rnd.choice(["SYSTEM", "IUSR", "alice", "bob"]),
                }
            )
        elif roll < 0.85:
            name = _weighted(rnd, COMMON_PROCESSES)
            base.update(
                {
                    "event.category": process,
                    "event.type": end,
                    "process.name": name,
                    "process.command_line": f"{name} -k netsvcs",
                    "process.parent.name": _weighted(rnd, COMMON_PARENTS),
                    "process.pid": rnd.randrange(4, 65536),
                }
            )
        elif roll < 0.95:
            kind = rnd.random()
            category = network if kind < 0.5 else file if kind < 0.8 else registry
            base.update(
                {
                    "event.category": category,
                    "event.type": ["connection"] if category is network else ["change"],
                    "process.name": _weighted(rnd, COMMON_PROCESSES),
                    "process.pid": rnd.randrange(4, 65536),
                }
            )
        else:
            base.update(
                {
                    "host.os.type": "linux",
                    "agent.type": "auditbeat",
                    "event.category": process,
                    "event.type": start,
                    "process.name": rnd.choice(LINUX_PROCESSES),
                    "process.parent.name": rnd.choice(LINUX_PARENTS),
                    "process.command_line": "sh -c id",
                    "process.pid": rnd.randrange(2, 65536),
                }
            )
        events.append(base)
    return events


def endgame_style(event: Mapping[str, Any]) -> Event:
    """The nested document the eql engine reads: category as event type, one-element lists unwrapped."""
    flat = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in event.items()}
    category = flat.get("event.category")
    return Event(category if isinstance(category, str) else "generic", 0, unflatten(flat))


def time_predicate(
    predicate: Callable[[Mapping[str, Any]], bool], events: Sequence[Mapping[str, Any]], repeat: int
) -> tuple[float, float, int]:
    """(best, median) events/s over ``repeat`` runs, and the match count."""
    rates = []
    matches = 0
    for _ in range(repeat):
        started = time.perf_counter()
        matches = sum(map(predicate, events))
        rates.append(len(events) / (time.perf_counter() - started))
    return max(rates), statistics.median(rates), matches


def time_eql_engine(query_text: str, events: Sequence[Event]) -> tuple[float, int]:
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
        query = eql.parse_query(query_text)
    engine = eql.PythonEngine()
    engine.add_query(query)
    found: list[int] = []
    engine.add_output_hook(lambda output: found.append(len(output.events)))
    started = time.perf_counter()
    engine.stream_events(events)
    elapsed = time.perf_counter() - started
    return len(events) / elapsed, sum(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events for shellwatch (default 1,000,000)"
    )
    parser.add_argument(
        "--eql-events", type=int, default=50_000, help="subset for the eql engine (default 50,000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of shellwatch (default 3)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the event mix")
    parser.add_argument("--rule", type=Path, default=SEED_RULE, help="the seed rule's TOML file")
    args = parser.parse_args(argv)

    if not args.rule.exists():
        print(
            f"{args.rule}: not found (the seed rule lives in ../shared beside the project)", file=sys.stderr
        )
        return 2
    rule = tomllib.loads(args.rule.read_text(encoding="utf-8"))["rule"]
    query_text: str = rule["query"]

    started = time.perf_counter()
    events = build_events(args.events, args.seed)
    built = time.perf_counter() - started
    starts = sum(1 for e in events if e["event.type"] is not None and e["event.type"] == ["start"])
    windows_starts = [e for e in events if e["host.os.type"] == "windows" and e["event.type"] == ["start"]]
    web = sum(1 for e in windows_starts if e["process.parent.name"] in WEB_PARENTS)
    print(f"rule: {rule['name']}")
    print(
        f"events: {len(events):,} flat ECS in memory (built in {built:.1f} s): "
        f"{len(windows_starts):,} Windows process starts "
        f"({web / max(len(windows_starts), 1):.1%} with a web-server parent), "
        f"{starts - len(windows_starts):,} Linux process starts, {len(events) - starts:,} other events"
    )

    node = parse_eql(query_text)
    predicate = compile_predicate(node)
    closure = compile_closure(node)
    best, median, matches = time_predicate(predicate, events, args.repeat)
    print(
        f"shellwatch compiled predicate: {best:12,.0f} events/s best of {args.repeat} "
        f"(median {median:,.0f}), {matches:,} matches"
    )
    closure_best, _, closure_matches = time_predicate(closure, events, 1)
    print(f"shellwatch closures only     : {closure_best:12,.0f} events/s, {closure_matches:,} matches")
    if closure_matches != matches:
        print("MISMATCH between generated code and closures", file=sys.stderr)
        return 1

    subset = events[: args.eql_events]
    nested = [endgame_style(e) for e in subset]
    eql_rate, eql_matches = time_eql_engine(query_text, nested)
    ours_on_subset = sum(map(predicate, subset))
    print(
        f"eql PythonEngine             : {eql_rate:12,.0f} events/s (measured on the first {len(subset):,} "
        f"events as nested Endgame-style events, rate scaled), {eql_matches:,} matches"
    )
    agree = "yes" if eql_matches == ours_on_subset else "NO"
    print(f"same subset, shellwatch      : {ours_on_subset:,} matches; engines agree: {agree}")
    print(f"ratio shellwatch / eql engine: {best / eql_rate:.1f}x")
    return 0 if agree == "yes" else 1


if __name__ == "__main__":
    sys.exit(main())
