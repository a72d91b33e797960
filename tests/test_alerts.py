"""Alert documents: Kibana's reason sentence, deterministic ids, the Kibana alert shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from shellwatch.alerts.document import alert_uuid, build_alert, event_identity
from shellwatch.alerts.reason import alert_reason
from shellwatch.query.ir import TRUE
from shellwatch.rules.model import AttackEntry, Rule, RuleSource, Technique, Threat

RULE = Rule(
    rule_id="2917d495-59bd-4250-b395-c29409b76086",
    name="Web Shell Detection: Script Process Child of Common Web Processes",
    description="d",
    type="eql",
    language="eql",
    query="process where true",
    ir=TRUE,
    source=RuleSource(path="pack.toml"),
    severity="high",
    risk_score=73,
    interval="5m",
    from_="now-9m",
    threat=(
        Threat(
            framework="MITRE ATT&CK",
            tactic=AttackEntry(id="TA0003", name="Persistence", reference="https://attack.mitre.org/tactics/TA0003/"),
            techniques=(
                Technique(
                    id="T1505",
                    name="Server Software Component",
                    reference="https://attack.mitre.org/techniques/T1505/",
                    subtechniques=(
                        AttackEntry(
                            id="T1505.003", name="Web Shell", reference="https://attack.mitre.org/techniques/T1505/003/"
                        ),
                    ),
                ),
            ),
        ),
    ),
)

EVENT = {
    "@timestamp": "2024-03-14T09:12:01.113Z",
    "event.category": ["process"],
    "event.type": ["start"],
    "event.kind": "event",
    "event.code": "1",
    "host.name": "WEB01",
    "user.name": "DefaultAppPool",
    "process.name": "cmd.exe",
    "process.parent.name": "w3wp.exe",
    "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
    "winlog.computer_name": "WEB01",
    "winlog.record_id": 41207,
}


def test_reason_matches_kibana_wording() -> None:
    """Kibana's buildReasonMessageUtil (security_solution reason_formatters.ts): category, 'with', process,
    parent process, user, host, then 'created <severity> alert <name>.'"""
    reason = alert_reason(EVENT, severity="high", rule_name="R")
    assert (
        reason == "process event with process cmd.exe, parent process w3wp.exe, by DefaultAppPool on WEB01"
        " created high alert R."
    )


def test_reason_leaves_out_missing_fields_and_with() -> None:
    """With no field of interest Kibana drops the word 'with'; '-' counts as missing."""
    assert (
        alert_reason({"user.name": "-", "host.name": "h"}, severity="low", rule_name="R")
        == "event on h created low alert R."
    )


def test_reason_joins_multi_valued_fields() -> None:
    reason = alert_reason({"event.category": ["process", "network"]}, severity="low", rule_name="R")
    assert reason.startswith("process, network event created")


def test_alert_ids_are_deterministic_and_per_rule() -> None:
    identity = event_identity(EVENT)
    assert identity == event_identity(dict(EVENT))
    assert alert_uuid(RULE, identity) == alert_uuid(RULE, event_identity(EVENT))
    other = Rule(**{**{f: getattr(RULE, f) for f in RULE.__dataclass_fields__}, "rule_id": "other"})
    assert alert_uuid(other, identity) != alert_uuid(RULE, identity)


def test_windows_event_identity_ignores_which_export_it_came_from() -> None:
    """The same record of the same channel on the same computer is one event, like one Elasticsearch _id."""
    from shellwatch.sources.record import Origin

    a = event_identity(EVENT, Origin(path="a.evtx", record_id=41207))
    b = event_identity(EVENT, Origin(path="copy/a.xml", line=3))
    assert a == b
    other_record = event_identity({**EVENT, "winlog.record_id": 41208})
    assert other_record != a


def test_windows_event_identity_tells_a_cleared_logs_new_event_from_the_old_one() -> None:
    """Clearing a log restarts its record numbers: "The very first record written to an event log is record number
    1, and other records are numbered sequentially" (Microsoft, "Event Log Records",
    https://learn.microsoft.com/windows/win32/eventlog/event-log-records), so after ``wevtutil cl`` (event 1102)
    a new event takes the number of an old one. The second it was written sets them apart; renderings of one
    event with other sub-second precision (Winlogbeat's milliseconds, EVTX's 100 ns) do not."""
    same_event = {**EVENT, "@timestamp": EVENT["@timestamp"][:19] + ".113456Z"}
    assert event_identity(same_event) == event_identity(EVENT)
    after_clear = {**EVENT, "@timestamp": "2024-03-20T17:40:09.001Z"}
    assert event_identity(after_clear) != event_identity(EVENT)
    assert event_identity({k: v for k, v in EVENT.items() if k != "@timestamp"}) != event_identity(EVENT)


def test_identical_json_lines_at_different_lines_are_distinct_events() -> None:
    from shellwatch.sources.record import Origin

    doc = {"process.name": "cmd.exe"}
    assert event_identity(doc, Origin(path="x.ndjson", line=1)) != event_identity(doc, Origin(path="x.ndjson", line=2))


def test_alert_document_shape() -> None:
    """Kibana security alerts: source fields nested, kibana.* dotted, event.kind 'signal', original event kept."""
    from shellwatch.sources.record import Origin

    detected = datetime(2024, 3, 14, 10, 0, tzinfo=UTC)
    alert = build_alert(RULE, EVENT, origin=Origin(path="web01.xml", line=1), detected_at=detected)
    assert alert["@timestamp"] == "2024-03-14T10:00:00.000Z"
    assert alert["kibana.alert.original_time"] == "2024-03-14T09:12:01.113Z"
    assert alert["event"]["kind"] == "signal"
    assert alert["kibana.alert.original_event"]["kind"] == "event"
    assert alert["process"]["parent"]["name"] == "w3wp.exe"
    assert alert["kibana.alert.rule.rule_id"] == RULE.rule_id
    assert alert["kibana.alert.rule.from"] == "now-9m"
    assert alert["kibana.alert.rule.interval"] == "5m"
    assert alert["kibana.alert.rule.max_signals"] == 100
    assert alert["kibana.alert.severity"] == "high"
    assert alert["kibana.alert.risk_score"] == 73
    assert alert["kibana.alert.workflow_status"] == "open"
    assert alert["kibana.alert.rule.threat"][0]["technique"][0]["subtechnique"][0]["id"] == "T1505.003"
    assert alert["kibana.alert.reason"].endswith(f"created high alert {RULE.name}.")
    assert alert["shellwatch.origin"] == {"path": "web01.xml", "record_id": None, "line": 1}
    again = build_alert(RULE, EVENT, origin=Origin(path="web01.xml", line=1), detected_at=datetime.now(UTC))
    assert again["kibana.alert.uuid"] == alert["kibana.alert.uuid"]


def test_a_cleared_logs_events_alert_again_and_a_second_export_does_not(tmp_path: Path) -> None:
    """End to end over the shipped Sysmon sample: the same records exported twice give one alert each (the same
    event), while the log's records written again a day later under the same record ids, as after ``wevtutil cl``
    restarts the numbering, give alerts of their own."""
    from shellwatch.engine.ruleset import RuleSet
    from shellwatch.pipeline import hunt
    from shellwatch.rules.loader import load_bundled_rules

    sample = Path(__file__).resolve().parents[1] / "samples" / "web01-sysmon.xml"
    text = sample.read_text(encoding="utf-8")
    second_export = tmp_path / "second-export.xml"
    # Another export of the same events: times written to the microsecond instead of the millisecond.
    finer = re.sub(r'SystemTime="([^".]+)\.(\d{3})Z"', r'SystemTime="\1.\g<2>417Z"', text)
    second_export.write_text(re.sub(r'(Name="UtcTime">[^<.]+)\.(\d{3})<', r"\1.\g<2>417<", finer))
    after_clear = tmp_path / "after-clear.xml"
    after_clear.write_text(text.replace("2024-03-14", "2024-03-15"))
    assert second_export.read_text() != text and after_clear.read_text() != text

    rules = RuleSet(load_bundled_rules().rules)

    def alert_ids(*paths: Path) -> list[str]:
        found = hunt([str(path) for path in paths], rules, on_problem=lambda _p: None, workers=1, per_match=True)
        return [alert["kibana.alert.uuid"] for alert in found]

    once = alert_ids(sample)
    assert once
    assert alert_ids(sample, second_export) == once
    both = alert_ids(sample, after_clear)
    assert len(both) == 2 * len(once) and len(set(both)) == len(both)
