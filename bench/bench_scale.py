"""Hunt at scale, side by side in one run: EVTX corpora with the bundled pack and the big rule set, SQLite one
query per rule (the way Zircolite runs Sigma), and a generated ~1 GB Elastic Defend NDJSON file.

Every measured variant runs in a fresh subprocess, so that its peak memory is its own: the parent reads the
child's ``ru_maxrss`` from ``os.wait4`` (the largest single process of the child's tree; Linux folds waited-for
grandchildren into it) and samples the summed PSS of the child's whole process tree every 0.1 s from /proc
(hunt's workers included, shared pages counted once). Variants are interleaved over --repeat rounds; rates are
medians with their range.

(a) ``shellwatch.pipeline.hunt`` over every .evtx of corpus/evtx-attack-samples and corpus/hayabusa-sample-evtx
    (the list repeated until the bare parser needs --min-seconds in one process), default workers, with the bundled
    pack, with the big set (``big_rule_set.py``) and with the big set's Sigma rules alone; the bare parser in 2
    processes (bench_hunt.py's loop: parse and ``orjson.loads`` every record) for reference. The big set also over
    the corpus once, the events SQLite is given in (b): a hunt remembers what it found for each field value, so
    over the repeated list it meets most values again, while over the corpus once every value is new to it.
(b) the big set's Sigma rules converted by pySigma's SQLite backend, one query per rule, run over an in-memory
    SQLite table of the same events flattened as Zircolite flattens them (one column per field). Timed: reading
    and flattening the records, creating and filling the table, running every query.
(c) events/s of hunt over a generated NDJSON file of Elastic Defend process-start documents (--ndjson-mb, default
    1024; in a temporary folder, deleted after), streaming (``hunt``) and columnar (``shellwatch.columnar``, when
    it exists).
(d) the peak memory of each of these.

Usage: python bench/bench_scale.py [--shared ../shared] [--repeat 3] [--min-seconds 2] [--ndjson-mb 1024]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pickle
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from evtx import PyEvtxParser

from bench_hunt import CORPORA, bare, timed
from big_rule_set import BigSetFiles, big_set_files, load_big_set, refusal_reasons
from shellwatch import compiled_modules
from shellwatch.engine.ruleset import RuleSet
from shellwatch.parallel import available_cores
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule

PLAN = "plan.json"
BIG_SET = "big_set.pickle"
BIG_SIGMA = "big_sigma.pickle"
SQL_QUERIES = "sqlite_queries.json"
SAMPLE_SECONDS = 0.1
REPEAT_UNDER_SECONDS = 60.0
"""A variant whose first run takes longer than this is not repeated (keeps the default run under ~10 minutes)."""

TARGETS = {
    "hunt EVTX, bundled pack": 170_000,
    "hunt EVTX, big set": 50_000,
    "hunt NDJSON, bundled pack, streaming": 700_000,
    "hunt NDJSON, bundled pack, columnar": 2_000_000,
}
RSS_TARGET_MB = 300
SQLITE_RATIO_TARGET = 20


# ------------------------------------------------------------------------------------------------------------
# Zircolite's way: flatten each event into one row, one column per leaf field, then one SQL query per rule.
# Zircolite (wagga40/Zircolite, zircolite/flattener.py and core.py) names a column after the field's mapping in
# its config/fieldMappings.yaml when there is one, else after the alphanumeric characters of the leaf's own name;
# skips keys holding "xmlns" and the values null and ""; stores a list as its Python text; declares a column
# INTEGER when its first value is an integer, otherwise TEXT COLLATE NOCASE; inserts in batches of 5,000 rows in one
# transaction; indexes eventid; registers a Python REGEXP function; runs each rule's SELECT and keeps the rows.

ZIRCOLITE_MAPPINGS = {
    "Event.System.Provider.#attributes.Guid": "Guid",
    "Event.System.Provider.#attributes.Name": "Provider_Name",
    "Event.System.Provider.#attributes.EventSourceName": "EventSourceName",
    "Event.System.Execution.#attributes.ProcessID": "ProcessID",
    "Event.System.Execution.#attributes.ThreadID": "ThreadID",
    "Event.System.EventID": "EventID",
    "Event.System.EventID.#text": "EventID",
    "Event.System.EventID.#attributes.Qualifiers": "Qualifiers",
    "Event.System.Channel": "Channel",
    "Event.System.Computer": "Computer",
    "Event.System.Correlation.#attributes.ActivityID": "ActivityID",
    "Event.System.EventRecordID": "EventRecordID",
    "Event.System.Security.#attributes.UserID": "UserID",
    "Event.System.TimeCreated.#attributes.SystemTime": "SystemTime",
    "Event.EventData.TargetFilename": "TargetFileName",
    "Event.EventData.SamAccountName": "SAMAccountName",
}
"""The System mappings of Zircolite's config and its two renamings of EventData fields; its other EventData
mappings give a field its own name, as the default does."""

SQLITE_BATCH_ROWS = 5000


def zircolite_row(event: dict[str, Any], row: dict[str, Any], columns: dict[str, tuple[str, bool]]) -> None:
    """Flatten one decoded EVTX record into ``row``, recording new columns (lower-cased name -> name, integer?)."""
    stack: list[tuple[dict[str, Any], str]] = [(event, "")]
    while stack:
        node, prefix = stack.pop()
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                stack.append((value, path))
                continue
            if "xmlns" in path:
                continue
            if isinstance(value, list):
                value = str(value)
            elif value is True or value is False:
                value = "true" if value else "false"
            if value is None or value == "":
                continue
            name = ZIRCOLITE_MAPPINGS.get(path) or "".join(c for c in key if c.isalnum())
            if isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
                value = str(value)
            row[name] = value
            lowered = name.lower()
            if lowered not in columns:
                columns[lowered] = (name, isinstance(value, int))


def _regexp(pattern: str, value: Any) -> int:
    # Zircolite's REGEXP: re.search, no flags (the backend writes flags into the pattern).
    if value is None:
        return 0
    return 1 if re.search(pattern, str(value)) else 0


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(slots=True)
class SqliteRun:
    records: int = 0
    matches: int = 0
    query_errors: Counter[str] = field(default_factory=Counter)
    rules_naming_absent_fields: int = 0
    phases: dict[str, float] = field(default_factory=dict)


def sqlite_per_rule(files: list[str], rules: list[dict[str, Any]]) -> SqliteRun:
    """Load the records of ``files`` into an in-memory table as Zircolite does and run each rule's queries."""
    run = SqliteRun()
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    columns: dict[str, tuple[str, bool]] = {}
    loads = orjson.loads
    for path in files:
        records: Any = PyEvtxParser(path, number_of_threads=1).records_json()
        while True:
            try:
                for item in records:
                    row: dict[str, Any] = {}
                    zircolite_row(loads(item["data"]), row, columns)
                    rows.append(row)
                break
            except RuntimeError:
                continue
    run.records = len(rows)
    flattened = time.perf_counter()

    data_columns = set(columns)
    # Columns a rule names but no event holds: Zircolite's table lacks them and SQLite refuses such a query
    # ("no such column") without reading a row. They are added here, empty, so that every rule is evaluated.
    for rule in rules:
        fields = {name.lower() for name in rule["fields"]}
        if fields - data_columns:
            run.rules_naming_absent_fields += 1
        for name in rule["fields"]:
            columns.setdefault(name.lower(), (name, False))

    connection = sqlite3.connect(":memory:", isolation_level=None)
    for pragma in (
        "journal_mode = OFF",
        "synchronous = OFF",
        "cache_size = -128000",
        "locking_mode = EXCLUSIVE",
        "temp_store = MEMORY",
    ):
        connection.execute(f"PRAGMA {pragma}")
    connection.create_function("regexp", 2, _regexp, deterministic=True)
    names = [name for name, _ in columns.values()]
    declared = ", ".join(
        f"{_quote(name)} {'INTEGER' if is_int else 'TEXT COLLATE NOCASE'}" for name, is_int in columns.values()
    )
    connection.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY AUTOINCREMENT, {declared})")
    insert = f"INSERT INTO logs ({', '.join(map(_quote, names))}) VALUES ({', '.join('?' * len(names))})"
    cursor = connection.cursor()
    cursor.execute("BEGIN TRANSACTION")
    for start in range(0, len(rows), SQLITE_BATCH_ROWS):
        cursor.executemany(insert, [tuple(row.get(name) for name in names) for row in rows[start : start + 5000]])
    cursor.execute("COMMIT")
    if "eventid" in columns:
        cursor.execute('CREATE INDEX "idx_eventid" ON "logs" ("eventid")')
    rows.clear()
    loaded = time.perf_counter()

    for rule in rules:
        for query in rule["queries"]:
            try:
                run.matches += len(cursor.execute(query).fetchall())
            except sqlite3.Error as exc:
                run.query_errors[type(exc).__name__ + ": " + re.sub(r"\d+", "N", str(exc))[:60]] += 1
    queried = time.perf_counter()
    run.phases = {
        "read + flatten": flattened - began,
        "table + insert": loaded - flattened,
        "queries": queried - loaded,
    }
    connection.close()
    return run


def convert_sigma_file(path: str) -> tuple[str, dict[str, Any] | None, str | None]:
    """One Sigma file to SQLite queries with the fields they name, or the reason it cannot be converted."""
    from sigma.backends.sqlite.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    try:
        collection = SigmaCollection.from_yaml(Path(path).read_text(encoding="utf-8"))
        backend = sqliteBackend()  # type: ignore[no-untyped-call]
        queries = backend.convert(collection)
        fields = sorted({name for rule in collection.rules for name in backend.required_fields(rule)})  # type: ignore[no-untyped-call]
    except Exception as exc:  # pySigma raises many kinds; each is a reason the rule stays out of (b)
        return path, None, f"{type(exc).__name__}: {re.sub(r'[0-9]+', 'N', str(exc).splitlines()[0])[:70]}"
    if not queries:
        return path, None, "no query produced"
    return path, {"path": path, "queries": [str(query) for query in queries], "fields": fields}, None


# ------------------------------------------------------------------------------------------------------------
# The generated Elastic Defend process-start documents.

_WINDOWS_HOSTS = [f"WKS-{index:04d}" for index in range(40)] + [f"SRV-WEB-{index:02d}" for index in range(8)]
_USERS = ["alice", "bob", "carol", "svc_backup", "svc_sql", "SYSTEM", "NETWORK SERVICE", "IUSR", "dave", "erin"]
_PROGRAMS = [
    ("C:\\Windows\\System32\\svchost.exe", "svchost.exe -k netsvcs -p -s Schedule", "svchost.exe"),
    (
        "C:\\Windows\\System32\\conhost.exe",
        "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
        "CONHOST.EXE",
    ),
    (
        "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
        "chrome.exe --type=renderer --lang=en-US",
        "chrome.exe",
    ),
    (
        "C:\\Windows\\System32\\RuntimeBroker.exe",
        "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding",
        "RuntimeBroker.exe",
    ),
    ("C:\\Windows\\System32\\taskhostw.exe", "taskhostw.exe {222A245B-E637-4AE9-A93F-A59CA119A75E}", "taskhostw.exe"),
    ("C:\\Windows\\System32\\cmd.exe", 'C:\\Windows\\system32\\cmd.exe /c "C:\\scripts\\backup.bat"', "Cmd.Exe"),
    (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "powershell.exe -NoProfile -File C:\\ops\\inventory.ps1",
        "PowerShell.EXE",
    ),
    ("C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE", '"OUTLOOK.EXE" /recycle', "outlook.exe"),
    ("C:\\Windows\\System32\\msiexec.exe", "C:\\Windows\\system32\\msiexec.exe /V", "msiexec.exe"),
    (
        "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe",
        "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
        "Wmiprvse.exe",
    ),
    ("C:\\Program Files\\Git\\cmd\\git.exe", "git.exe fetch --all --prune", "git.exe"),
    (
        "C:\\Windows\\System32\\SearchProtocolHost.exe",
        "SearchProtocolHost.exe Global\\UsGthrFltPipeMssGthrPipe1",
        "SearchProtocolHost.exe",
    ),
]
_PARENTS = [
    ("C:\\Windows\\System32\\services.exe", "C:\\Windows\\system32\\services.exe", "services.exe"),
    ("C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", "explorer.exe"),
    ("C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p", "svchost.exe"),
    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", '"chrome.exe"', "chrome.exe"),
    ("C:\\Windows\\System32\\cmd.exe", "cmd.exe /c start.bat", "Cmd.Exe"),
]
_WEB_SERVERS = [
    (
        "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
        'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "DefaultAppPool"',
        "w3wp.exe",
    ),
    ("C:\\xampp\\apache\\bin\\httpd.exe", '"C:\\xampp\\apache\\bin\\httpd.exe" -d C:/xampp/apache', "httpd.exe"),
    ("C:\\nginx\\nginx.exe", "nginx.exe", "nginx.exe"),
]
_SHELLS = [
    ("C:\\Windows\\System32\\cmd.exe", "cmd.exe /c whoami /all", "Cmd.Exe"),
    (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "powershell.exe -enc SQBFAFgA",
        "PowerShell.EXE",
    ),
    ("C:\\Windows\\System32\\cmd.exe", "cmd.exe /c net user admin P@ss /add", "Cmd.Exe"),
]
WEB_SHELL_EVERY = 1000
"""One document in this many is a web server starting a shell (the seed rules match it)."""


def _process(entry: tuple[str, str, str], pid: int, entity: str, rng: random.Random) -> dict[str, Any]:
    executable, command_line, original_name = entry
    name = executable.rsplit("\\", 1)[-1]
    arguments = command_line.split(" ")
    return {
        "pid": pid,
        "entity_id": entity,
        "executable": executable,
        "name": name,
        "command_line": command_line,
        "args": arguments,
        "args_count": len(arguments),
        "pe": {"original_file_name": original_name, "company": "Microsoft Corporation", "product": name},
        "code_signature": {"exists": True, "subject_name": "Microsoft Windows", "trusted": True, "status": "trusted"},
        "hash": {"sha256": f"{rng.getrandbits(256):064x}", "md5": f"{rng.getrandbits(128):032x}"},
    }


def defend_documents(rng: random.Random) -> Iterator[bytes]:
    """Endless Elastic Defend process-start documents (nested ECS JSON, one line each)."""
    moment = 1_717_200_000.0
    sequence = 0
    while True:
        sequence += 1
        moment += rng.random() * 0.05
        host = rng.choice(_WINDOWS_HOSTS)
        web_shell = sequence % WEB_SHELL_EVERY == 0
        parent_entry = rng.choice(_WEB_SERVERS) if web_shell else rng.choice(_PARENTS)
        child_entry = rng.choice(_SHELLS) if web_shell else rng.choice(_PROGRAMS)
        pid, parent_pid = rng.randrange(200, 60000, 4), rng.randrange(200, 60000, 4)
        process = _process(child_entry, pid, f"{host}-{pid}-{sequence}", rng)
        process["parent"] = _process(parent_entry, parent_pid, f"{host}-{parent_pid}", rng)
        process["working_directory"] = "C:\\Windows\\system32\\"
        process["Ext"] = {"token": {"integrity_level_name": "high" if rng.random() < 0.2 else "medium"}}
        user = "IUSR" if web_shell else rng.choice(_USERS)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"
        yield orjson.dumps(
            {
                "@timestamp": stamp,
                "agent": {"id": f"agent-{host}", "type": "endpoint", "version": "8.14.0"},
                "data_stream": {"dataset": "endpoint.events.process", "namespace": "default", "type": "logs"},
                "ecs": {"version": "8.10.0"},
                "event": {
                    "action": "start",
                    "category": ["process"],
                    "created": stamp,
                    "dataset": "endpoint.events.process",
                    "id": f"{rng.getrandbits(64):016x}",
                    "kind": "event",
                    "module": "endpoint",
                    "sequence": sequence,
                    "type": ["start"],
                },
                "host": {
                    "hostname": host,
                    "name": host,
                    "id": f"host-{host}",
                    "ip": [f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}"],
                    "os": {
                        "family": "windows",
                        "full": "Windows Server 2019 Datacenter 1809 (10.0.17763.5830)",
                        "kernel": "1809 (10.0.17763.5830)",
                        "name": "Windows",
                        "platform": "windows",
                        "type": "windows",
                        "version": "1809",
                    },
                },
                "message": "Endpoint process event",
                "process": process,
                "user": {"domain": "CORP", "id": f"S-1-5-21-{rng.randrange(10**9)}-1001", "name": user},
            }
        )


def write_defend_ndjson(path: Path, target_bytes: int, seed: int = 5) -> int:
    """Write documents to ``path`` until it holds ``target_bytes``; the number of documents written."""
    written = count = 0
    with path.open("wb", buffering=1 << 20) as out:
        for document in defend_documents(random.Random(seed)):
            out.write(document + b"\n")
            written += len(document) + 1
            count += 1
            if written >= target_bytes:
                return count
    return count


# ------------------------------------------------------------------------------------------------------------
# Child side: one variant, its figures as one JSON line on stdout.


def _load_pickle(path: Path) -> tuple[Rule, ...]:
    with path.open("rb") as source:
        rules: tuple[Rule, ...] = pickle.load(source)  # written by this run's parent, never by a log
    return rules


def _hunt(
    paths: list[str], rules: tuple[Rule, ...], entry: Callable[..., Iterator[dict[str, Any]]] = hunt
) -> dict[str, Any]:
    compile_began = time.perf_counter()
    rule_set = RuleSet(rules)
    compiled = time.perf_counter()
    stats = HuntStats()
    alerts = sum(1 for _ in entry(paths, rule_set, stats=stats, on_problem=lambda _problem: None))
    seconds = time.perf_counter() - compiled
    return {
        "records": stats.records,
        "seconds": seconds,
        "alerts": alerts,
        "notes": f"{stats.workers} process(es); rule set compiled in {compiled - compile_began:.2f} s before",
    }


def _columnar(path: str, documents: int, rules: tuple[Rule, ...]) -> dict[str, Any]:
    """The columnar path over the NDJSON file: ``shellwatch.columnar.hunt`` (the arguments of
    :func:`shellwatch.pipeline.hunt`) once it exists, else ``shellwatch.columnar.columnar_matches(path, rules)``,
    which yields ``(rule index, line, event)`` and leaves the rules it cannot compile to SQL to the caller."""
    try:
        columnar = importlib.import_module("shellwatch.columnar")
    except ImportError:
        return {"unavailable": "not available (no shellwatch.columnar)"}
    entry = getattr(columnar, "hunt", None)
    if callable(entry):
        return _hunt([path], rules, entry)
    matches_of = getattr(columnar, "columnar_matches", None)
    if not callable(matches_of):
        return {"unavailable": "not available (shellwatch.columnar has neither hunt nor columnar_matches)"}
    began = time.perf_counter()
    matches = matches_of(path, rules, on_problem=lambda _problem: None)
    count = sum(1 for _ in matches)
    seconds = time.perf_counter() - began
    fallback = getattr(matches, "fallback_rules", {})
    line_counts = getattr(matches, "stats", {})
    return {
        "records": documents,
        "seconds": seconds,
        "alerts": count,
        "notes": f"columnar_matches (not wired into hunt: matches counted, no alerts built); "
        f"{len(fallback)} rule(s) left to the streaming path, not run here; lines: {line_counts}",
    }


def run_child(name: str, work: Path) -> dict[str, Any]:
    plan = json.loads((work / PLAN).read_text())
    if name == "bare parser, 2 processes":
        seconds, records = timed(lambda: bare(plan["evtx_files"], 2, True))
        return {"records": records, "seconds": seconds, "alerts": 0, "notes": "parse + orjson.loads"}
    if name == "hunt EVTX, bundled pack":
        return _hunt(plan["evtx_files"], load_bundled_rules().rules)
    if name == "hunt EVTX, big set":
        return _hunt(plan["evtx_files"], _load_pickle(work / BIG_SET))
    if name == "hunt EVTX, big set Sigma only":
        return _hunt(plan["evtx_files"], _load_pickle(work / BIG_SIGMA))
    if name == "hunt EVTX, big set, corpus once":
        return _hunt(plan["sqlite_files"], _load_pickle(work / BIG_SET))
    if name == "SQLite per rule, big set Sigma":
        rules = json.loads((work / SQL_QUERIES).read_text())
        began = time.perf_counter()
        run = sqlite_per_rule(plan["sqlite_files"], rules)
        seconds = time.perf_counter() - began
        phases = ", ".join(f"{phase} {spent:.1f} s" for phase, spent in run.phases.items())
        errors = "; ".join(f"{count} x {reason}" for reason, count in run.query_errors.most_common())
        return {
            "records": run.records,
            "seconds": seconds,
            "alerts": run.matches,
            "notes": f"{len(rules)} rules; {phases}; {run.rules_naming_absent_fields} rules name a field no event "
            f"holds{'; query errors: ' + errors if errors else ''}",
        }
    if name == "hunt NDJSON, bundled pack, streaming":
        return _hunt([plan["ndjson"]], load_bundled_rules().rules)
    if name == "hunt NDJSON, bundled pack, columnar":
        return _columnar(plan["ndjson"], plan["ndjson_documents"], load_bundled_rules().rules)
    raise SystemExit(f"unknown variant {name!r}")


# ------------------------------------------------------------------------------------------------------------
# Parent side.


def _process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                text = stat.read()
        except OSError:
            continue
        fields = text[text.rfind(b")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(parents.get(pid, ()))
    return tree


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass(slots=True)
class Measurement:
    records: int
    seconds: float
    alerts: int
    notes: str
    max_rss_mb: float
    tree_pss_mb: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def measure(name: str, work: Path) -> Measurement | str:
    """Run one variant in a fresh process; its figures, or why it could not run."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", name, "--work-dir", str(work)], stdout=subprocess.PIPE, text=True
    )
    peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss
        while not done.wait(SAMPLE_SECONDS):
            peak_pss = max(peak_pss, sum(_pss_kib(pid) for pid in _process_tree(child.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert child.stdout is not None
    output = child.stdout.read()
    done.set()
    sampler.join()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        return f"failed (exit {child.returncode})"
    result = json.loads(output.strip().splitlines()[-1])
    if "unavailable" in result:
        return str(result["unavailable"])
    return Measurement(
        records=result["records"],
        seconds=result["seconds"],
        alerts=result["alerts"],
        notes=result["notes"],
        max_rss_mb=usage.ru_maxrss / 1024,
        tree_pss_mb=peak_pss / 1024,
    )


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def prepare_rules(shared: Path, work: Path) -> tuple[BigSetFiles, list[dict[str, Any]]]:
    """Load the big set (printing what loaded and what was refused), pickle it for the children, and convert its
    Sigma files to SQLite queries."""
    files = big_set_files(shared)
    print(f"big set: {len(files.sigma):,} Sigma process_creation files + {len(files.eql):,} Elastic EQL files")
    seconds, result = timed_value(lambda: load_big_set(files, jobs=2))
    counts = result.counts()
    print(
        f"  loaded with load_rules(jobs=2) in {seconds:.1f} s: {counts['ok']:,} rules loaded, "
        f"{counts['unsupported']:,} unsupported, {counts['error']:,} errors"
    )
    for reason, count in refusal_reasons(result).most_common():
        print(f"    {count:>4} {reason}")
    rules = result.rules
    sigma_rules = tuple(rule for rule in rules if rule.language == "sigma")
    print(f"  by language: {dict(Counter(rule.language for rule in rules))}")
    with (work / BIG_SET).open("wb") as out:
        pickle.dump(rules, out)
    with (work / BIG_SIGMA).open("wb") as out:
        pickle.dump(sigma_rules, out)

    with ProcessPoolExecutor(max_workers=2) as pool:
        seconds, converted = timed_value(
            lambda: list(pool.map(convert_sigma_file, [str(p) for p in files.sigma], chunksize=32))
        )
    queries = [entry for _, entry, _ in converted if entry is not None]
    failures = Counter(reason for _, entry, reason in converted if entry is None and reason is not None)
    print(
        f"  pySigma SQLite backend: {len(queries):,} of {len(files.sigma):,} Sigma files converted "
        f"({sum(len(q['queries']) for q in queries):,} queries) in {seconds:.1f} s; not converted:"
        + ("" if failures else " none")
    )
    for reason, count in failures.most_common():
        print(f"    {count:>4} {reason}")
    for path, entry, _ in converted:
        if entry is None:
            print(f"         {Path(path).relative_to(shared)}")
    (work / SQL_QUERIES).write_text(json.dumps(queries))
    return files, queries


def timed_value(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = work()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--ndjson-mb", type=int, default=1024)
    parser.add_argument("--sqlite-copies", type=int, default=1, help="copies of the corpus in the SQLite table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    arguments = parser.parse_args()

    if arguments.child:
        print(json.dumps(run_child(arguments.child, Path(arguments.work_dir))))
        return

    shared = Path(arguments.shared)
    needed = [shared / "corpus" / name for name in (*CORPORA, "sigmahq-rules", "elastic-detection-rules")]
    missing = [str(path) for path in needed if not path.is_dir()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found (the corpus lives in ../shared beside the project)")
        return

    began = time.perf_counter()
    print(f"{available_cores()} cores; load average before: {load_average()}")
    compiled = ", ".join(compiled_modules()) or "none (an editable install: `pip install .` compiles it)"
    print(f"compiled hot path: {compiled}")
    with tempfile.TemporaryDirectory(prefix="shellwatch-bench-scale-") as folder:
        work = Path(folder)
        prepare_rules(shared, work)

        corpus = sorted(str(path) for name in CORPORA for path in (shared / "corpus" / name).rglob("*.evtx"))
        one_pass, one_pass_records = timed(lambda: bare(corpus, 1, True))
        copies = max(1, int(arguments.min_seconds / one_pass) + 1)
        print(
            f"EVTX: {len(corpus)} files, {one_pass_records:,} records, x {copies} = {one_pass_records * copies:,} "
            f"records per hunt; SQLite table: x {arguments.sqlite_copies} = "
            f"{one_pass_records * arguments.sqlite_copies:,} records"
        )
        ndjson = work / "defend-process-start.ndjson"
        seconds, documents = timed_value(lambda: write_defend_ndjson(ndjson, arguments.ndjson_mb << 20))
        print(
            f"NDJSON: {documents:,} Elastic Defend process-start documents, {ndjson.stat().st_size / 2**20:,.0f} MiB "
            f"(1 in {WEB_SHELL_EVERY} a web server starting a shell), written in {seconds:.1f} s"
        )
        plan = {
            "evtx_files": corpus * copies,
            "sqlite_files": corpus * arguments.sqlite_copies,
            "ndjson": str(ndjson),
            "ndjson_documents": documents,
        }
        (work / PLAN).write_text(json.dumps(plan))

        variants = [
            "bare parser, 2 processes",
            "hunt EVTX, bundled pack",
            "hunt EVTX, big set",
            "hunt EVTX, big set Sigma only",
            "hunt EVTX, big set, corpus once",
            "SQLite per rule, big set Sigma",
            "hunt NDJSON, bundled pack, streaming",
            "hunt NDJSON, bundled pack, columnar",
        ]
        results: dict[str, list[Measurement]] = {name: [] for name in variants}
        unavailable: dict[str, str] = {}
        for run in range(arguments.repeat):
            for name in variants:
                if name in unavailable or (results[name] and results[name][0].seconds > REPEAT_UNDER_SECONDS):
                    continue
                outcome = measure(name, work)
                if isinstance(outcome, str):
                    unavailable[name] = outcome
                else:
                    results[name].append(outcome)
            print(f"  round {run + 1}/{arguments.repeat} done ({time.perf_counter() - began:.0f} s)", file=sys.stderr)

    report(results, unavailable, arguments.repeat)
    print(f"load average after: {load_average()}; whole run {time.perf_counter() - began:.0f} s")


def report(results: dict[str, list[Measurement]], unavailable: dict[str, str], repeat: int) -> None:
    width = max(len(name) for name in results)
    print()
    print(
        f"{'':{width}}  {'records':>10}  {'per second (median of ' + str(repeat) + '; min - max)':>40}  "
        f"{'alerts':>8}  {'max RSS':>8}  {'tree PSS':>8}  target"
    )
    median: dict[str, float] = {}
    for name, runs in results.items():
        if not runs:
            print(f"{name:{width}}  {unavailable.get(name, 'no run')}")
            continue
        rates = [run.rate for run in runs]
        median[name] = statistics.median(rates)
        last = runs[-1]
        target = TARGETS.get(name)
        verdict = "" if target is None else f">= {target:,}: {'yes' if median[name] >= target else 'NO'}"
        spread = f"{median[name]:>12,.0f}  ({min(rates):,.0f} - {max(rates):,.0f})"
        print(
            f"{name:{width}}  {last.records:>10,}  {spread:>40}  {last.alerts:>8,}  "
            f"{max(run.max_rss_mb for run in runs):>6.0f}MB  {max(run.tree_pss_mb for run in runs):>6.0f}MB  {verdict}"
        )
    print()
    for name, runs in results.items():
        if runs:
            once = f"; run once (its first run took over {REPEAT_UNDER_SECONDS:.0f} s)" if len(runs) < repeat else ""
            print(f"  {name}: {runs[-1].notes}{once}")
    print()
    print(
        f"peak memory target: <= {RSS_TARGET_MB} MB ('max RSS': the largest process, ru_maxrss via wait4; "
        "'tree PSS': the child and its workers together, sampled every 0.1 s)"
    )
    ratios = [
        ("hunt EVTX, bundled pack", "bare parser, 2 processes", None),
        ("hunt EVTX, big set", "bare parser, 2 processes", None),
        ("hunt EVTX, big set", "SQLite per rule, big set Sigma", SQLITE_RATIO_TARGET),
        ("hunt EVTX, big set Sigma only", "SQLite per rule, big set Sigma", SQLITE_RATIO_TARGET),
        ("hunt EVTX, big set, corpus once", "SQLite per rule, big set Sigma", SQLITE_RATIO_TARGET),
        ("hunt NDJSON, bundled pack, columnar", "hunt NDJSON, bundled pack, streaming", None),
    ]
    for top, bottom, target in ratios:
        if top in median and bottom in median:
            verdict = (
                ""
                if target is None
                else f"  (target >= {target}: {'yes' if median[top] / median[bottom] >= target else 'NO'})"
            )
            print(f"{top} / {bottom}: {median[top] / median[bottom]:.2f}{verdict}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
