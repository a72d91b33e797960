"""Every SigmaHQ rule (../shared/corpus/sigmahq-rules, SigmaHQ/sigma at 8eaafff1: 3,780 rules, 1,434 under
process_creation) through pySigma, the front end and the Python engine.

Each rule ends as ``ok`` (IR built, compiled by ``compile_predicate`` and evaluated on sample events),
``unsupported: <feature>`` (:class:`UnsupportedQuery`) or ``error: <message>`` (:class:`QueryError`, or any other
exception, which would be a bug). Run with ``-s`` to see the counts by reason.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from conftest import shared_path
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.sigma import logsource_support, sigma_rule_to_ir

SAMPLE_EVENTS = (
    {
        "host.os.type": "windows",
        "event.category": ["process"],
        "event.type": ["start"],
        "event.code": "1",
        "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
        "process.executable": r"C:\Windows\System32\cmd.exe",
        "process.command_line": "cmd.exe /c whoami /all",
        "process.parent.executable": r"C:\Windows\System32\inetsrv\w3wp.exe",
        "process.pid": 4242,
        "winlog.event_data.User": "NT AUTHORITY\\SYSTEM",
        "winlog.event_data.Hashes": "MD5=0123456789ABCDEF0123456789ABCDEF",
        "destination.port": "443",
    },
    {"host.os.type": "linux", "event.category": "process", "event.type": "start", "process.args": ["sh", "-c"]},
)


@dataclass(frozen=True)
class Outcome:
    path: Path
    title: str
    result: str
    placeholders: tuple[str, ...] = ()


def convert(rule: SigmaRule, placeholders: Mapping[str, list[str]] | None = None) -> str:
    try:
        predicate = compile_predicate(sigma_rule_to_ir(rule, placeholders))
        for sample in SAMPLE_EVENTS:
            predicate(sample)
    except UnsupportedQuery as unsupported:
        return f"unsupported: {unsupported.feature}"
    except QueryError as error:
        return f"error: {error}"
    except Exception as crash:  # any other exception is a bug; the outcome names it
        return f"error: {type(crash).__name__}: {crash}"
    return "ok"


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    root = shared_path("corpus", "sigmahq-rules")
    found: list[Outcome] = []
    for path in sorted(root.rglob("*.yml")):
        collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True)
        for error in collection.errors:
            found.append(Outcome(path, "?", f"error: pySigma: {error}"))
        for rule in collection.rules:
            assert isinstance(rule, SigmaRule)
            result = convert(rule)
            names: tuple[str, ...] = ()
            if result.startswith("unsupported: expand placeholder"):
                names = tuple(re.findall(r"%([^%]+)%", str(rule.detection.to_dict())))
            found.append(Outcome(path, rule.title, result, names))
            logsource_support(rule)
    return found


def summary(label: str, selected: list[Outcome]) -> collections.Counter[str]:
    by_reason = collections.Counter(
        "unsupported: expand placeholder" if o.result.startswith("unsupported: expand placeholder") else o.result
        for o in selected
    )
    print(f"\n{label}: {len(selected)} rules")
    for reason, count in by_reason.most_common():
        print(f"  {count:5d}  {reason}")
    return by_reason


def test_process_creation_rules(outcomes: list[Outcome]) -> None:
    """At least 99% of SigmaHQ's process_creation rules run; none is an error."""
    selected = [o for o in outcomes if "process_creation" in o.path.parts]
    by_reason = summary("process_creation", selected)
    assert len(selected) >= 1400, "the corpus holds 1,434 process_creation rules"
    assert by_reason["ok"] / len(selected) >= 0.99
    assert [o for o in selected if o.result.startswith("error")] == []


def test_all_rules(outcomes: list[Outcome]) -> None:
    """Every SigmaHQ rule converts, or is reported as unsupported with a reason; none is an error."""
    by_reason = summary("all rules", outcomes)
    assert len(outcomes) >= 3700, "the corpus holds 3,780 rules"
    errors = [(o.path.name, o.result) for o in outcomes if o.result.startswith("error")]
    assert errors == []
    assert by_reason["ok"] / len(outcomes) >= 0.99


def test_placeholder_rules_run_once_their_placeholders_are_configured(outcomes: list[Outcome]) -> None:
    """The rules left unsupported for want of placeholder values convert when the values are configured."""
    waiting = [o for o in outcomes if o.placeholders]
    assert waiting, "SigmaHQ's rules-placeholder folder uses placeholders"
    for outcome in waiting:
        (rule,) = SigmaCollection.from_yaml(outcome.path.read_text(encoding="utf-8")).rules
        assert isinstance(rule, SigmaRule)
        values = {name: ["configured-value"] for name in outcome.placeholders}
        assert convert(rule, values) == "ok", outcome.path.name
