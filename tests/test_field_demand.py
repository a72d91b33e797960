"""Normalizing for a field demand (shellwatch.normalize.demand): the demanded fields hold exactly what the full
normalization gives, whichever steps were left out; and a hunt, which matches on demanded fields and builds alerts
from full events, finds the same alerts as one that normalizes everything."""

from __future__ import annotations

from typing import Any

from conftest import shared_path
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.dispatch import normalize_with_family
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.query.eql import parse_eql
from shellwatch.query.ir import Keyword
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import Origin, RawRecord, ReadProblem


def sysmon_record(event_id: int, **data: Any) -> RawRecord:
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": event_id,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "WEB01",
        "TimeCreated": {"#attributes": {"SystemTime": "2024-03-01T10:00:00.123456Z"}},
    }
    return RawRecord({"Event": {"System": system, "EventData": data}}, "windows_event", Origin("test.evtx", 1))


PROCESS_START = sysmon_record(
    1,
    UtcTime="2024-03-01 10:00:00.120",
    Image=r"C:\Windows\System32\cmd.exe",
    CommandLine='cmd.exe /c "whoami"',
    ParentImage=r"C:\Windows\System32\inetsrv\w3wp.exe",
    ParentCommandLine="w3wp.exe -ap DefaultAppPool",
    User="IIS APPPOOL\\DefaultAppPool",
    Hashes="SHA256=ABCDEF,IMPHASH=0123",
)


def test_without_demand_every_step_runs() -> None:
    full = normalize_with_family(PROCESS_START)[1]
    assert full["process.args"] == ["cmd.exe", "/c", "whoami"]
    assert full["winlog.event_data.Image"] == r"C:\Windows\System32\cmd.exe"
    assert full["user.name"] == "DefaultAppPool" and full["related.hash"] == ["abcdef", "0123"]


def test_steps_writing_no_demanded_field_are_left_out() -> None:
    demand = FieldDemand({"process.parent.name", "process.name", "event.category"})
    family, event = normalize_with_family(PROCESS_START, demand)
    assert family == "sysmon"
    assert event["process.parent.name"] == "w3wp.exe" and event["process.name"] == "cmd.exe"
    assert event["event.category"] == ["process"]
    for left_out in ("process.args", "winlog.event_data.Image", "user.name", "related.hash", "event.created"):
        assert left_out not in event


def test_a_demanded_field_pulls_in_the_step_that_writes_it() -> None:
    event = normalize_with_family(PROCESS_START, FieldDemand({"related.user"}))[1]
    assert event["related.user"] == ["DefaultAppPool"]
    event = normalize_with_family(PROCESS_START, FieldDemand({"process.args_count"}))[1]
    assert event["process.args_count"] == 3


def test_single_field_demands_over_the_corpus() -> None:
    """For a sample of the corpus's raw Windows events: each field of the full event, demanded alone (the most
    steps left out), has its full value; so do fields the event does not have (they stay absent)."""
    roots = [shared_path("corpus", "evtx-attack-samples"), shared_path("corpus", "hayabusa-sample-evtx")]
    problems: list[ReadProblem] = []
    checked = 0
    for number, record in enumerate(read_paths([str(root) for root in roots], on_problem=problems.append)):
        if number % 11:
            continue
        full = normalize_with_family(record)[1]
        for field in [*full, "process.args", "user.name", "registry.path", "dns.question.name", "file.path"]:
            partial = normalize_with_family(record, FieldDemand({field}))[1]
            assert partial.get(field) == full.get(field), (record.origin, field)
            checked += 1
    assert checked > 15_000


def eql_rule(query: str, number: int) -> Rule:
    return Rule(
        rule_id=f"test-demand-{number}",
        name=f"demand probe {number}",
        description=query,
        type="eql",
        language="eql",
        query=query,
        ir=parse_eql(query),
        source=RuleSource(path="tests/test_field_demand.py"),
    )


NEVER_MATCHING_KEYWORD = Rule(
    rule_id="test-demand-keyword",
    name="whole-event search",
    description="A keyword search reads every field: the hunt then normalizes every event in full.",
    type="query",
    language="kuery",
    query="no-such-token-in-any-log-7f3a9c",
    ir=Keyword(patterns=("*no-such-token-in-any-log-7f3a9c*",)),
    source=RuleSource(path="tests/test_field_demand.py"),
)

PROBES = (
    'process where process.args : "*whoami*" or process.parent.args_count > 3',
    'any where user.name : "IEUser" and event.code == "1"',
    'any where related.hash : "*a*" and process.pe.imphash != null',
    'registry where registry.value : "*Run*"',
    'network where destination.port in (443, 445) or dns.question.name : "*.com"',
    'file where file.extension : ("ps1", "exe") and file.directory : "*Temp*"',
)


DETECTION_TIMES = ("@timestamp", "kibana.alert.start", "kibana.alert.last_detected")


def comparable(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert without the times of its hunt."""
    return {key: value for key, value in alert.items() if key not in DETECTION_TIMES}


def test_hunt_alerts_are_those_of_full_normalization() -> None:
    rules = [*load_bundled_rules().rules, *(eql_rule(query, n) for n, query in enumerate(PROBES))]
    paths = [
        str(shared_path("corpus", "evtx-attack-samples")),
        str(shared_path("corpus", "hayabusa-sample-evtx")),
    ]
    projected_stats, full_stats = HuntStats(), HuntStats()
    projected = list(hunt(paths, RuleSet(rules), stats=projected_stats, workers=1))
    full = list(hunt(paths, RuleSet([*rules, NEVER_MATCHING_KEYWORD]), stats=full_stats, workers=1))
    assert projected, "no alert: nothing compared"
    assert len({alert["kibana.alert.rule.rule_id"] for alert in projected}) >= 4
    assert [comparable(alert) for alert in projected] == [comparable(alert) for alert in full]
    assert projected_stats.by_source == full_stats.by_source
    assert projected_stats.records == full_stats.records
