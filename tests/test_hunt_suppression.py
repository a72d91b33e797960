"""Alert suppression in a hunt: a rule's ``alert_suppression`` folds a group's matches into one alert.

Semantics: Kibana "Suppress detection alerts" (docs/detections/alert-suppression.asciidoc, elastic/security-docs):
"duplicate qualifying events are grouped, and only one alert is created for each group", per rule execution or
once within a time window; ``kibana.alert.suppression.{terms,start,end,docs_count}`` describe the group. How a hunt
maps executions and windows onto history is written in :mod:`shellwatch.alerts.hunt_suppression`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.elastic_toml import load_elastic_toml
from shellwatch.rules.loader import bundled_pack_path
from shellwatch.rules.model import Rule

SEED = bundled_pack_path() / "persistence_webshell_detection.toml"
T0 = datetime(2024, 3, 16, 11, 0, tzinfo=UTC)


def _rule(suppression: str) -> Rule:
    outcomes = load_elastic_toml(SEED.read_text() + "\n[rule.alert_suppression]\n" + suppression, str(SEED))
    assert outcomes[0].status == "ok", outcomes[0].reason
    assert outcomes[0].rule is not None
    return outcomes[0].rule


def _event(minute: float, host: str, command: str, **extra: Any) -> dict[str, Any]:
    """An Elastic Defend process start of cmd.exe under w3wp.exe: the seed EQL rule matches it."""
    moment = T0 + timedelta(minutes=minute)
    document: dict[str, Any] = {
        "@timestamp": moment.isoformat().replace("+00:00", "Z"),
        "agent": {"type": "endpoint"},
        "event": {"category": ["process"], "type": ["start"], "kind": "event", "dataset": "endpoint.events.process"},
        "host": {"name": host, "os": {"type": "windows"}},
        "process": {
            "name": "cmd.exe",
            "executable": "C:\\Windows\\System32\\cmd.exe",
            "command_line": command,
            "parent": {"name": "w3wp.exe"},
        },
        "user": {"name": "DefaultAppPool"},
    }
    document.update(extra)
    return document


def _hunt(tmp_path: Path, rule: Rule, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], HuntStats]:
    log = tmp_path / "events.ndjson"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    stats = HuntStats()
    alerts = list(hunt([str(log)], RuleSet([rule]), stats=stats, workers=1))
    return alerts, stats


def test_per_execution_suppression_gives_one_alert_per_group(tmp_path: Path) -> None:
    """Without a duration a group lives for one rule execution; a hunt is one execution over all it reads."""
    rule = _rule('group_by = ["host.name"]\n')
    events = [_event(m, "web01", f"cmd.exe /c whoami {m}") for m in (3, 1, 2)]
    events += [_event(4, "web02", "cmd.exe /c ipconfig")]
    alerts, stats = _hunt(tmp_path, rule, events)
    by_host = {a["host"]["name"]: a for a in alerts}
    assert sorted(by_host) == ["web01", "web02"]
    web01 = by_host["web01"]
    assert web01["kibana.alert.suppression.docs_count"] == 2
    assert web01["kibana.alert.suppression.terms"] == [{"field": "host.name", "value": ["web01"]}]
    assert web01["kibana.alert.suppression.start"] == "2024-03-16T11:01:00.000Z"
    assert web01["kibana.alert.suppression.end"] == "2024-03-16T11:03:00.000Z"
    # The kept alert is the group's first event's, whatever order the file gave them in.
    assert web01["process"]["command_line"] == "cmd.exe /c whoami 1"
    assert by_host["web02"]["kibana.alert.suppression.docs_count"] == 0
    assert stats.alerts == 2
    assert stats.suppressed_by_rule[rule.name] == 2


def test_duration_opens_a_new_alert_once_the_window_has_passed(tmp_path: Path) -> None:
    """With a duration, a group's alert takes the group's events for that long from its creation."""
    rule = _rule('group_by = ["host.name"]\nduration = { value = 5, unit = "m" }\n')
    events = [_event(m, "web01", f"cmd.exe /c whoami {m}") for m in (0, 4, 5, 5.5, 12)]
    alerts, _ = _hunt(tmp_path, rule, events)
    counts = [(a["process"]["command_line"], a["kibana.alert.suppression.docs_count"]) for a in alerts]
    assert counts == [("cmd.exe /c whoami 0", 2), ("cmd.exe /c whoami 5.5", 0), ("cmd.exe /c whoami 12", 0)]


def test_missing_field_under_do_not_suppress_alerts_one_by_one(tmp_path: Path) -> None:
    """missing_fields_strategy doNotSuppress: "a separate alert is created for each matching event" without the
    field; the default, suppress, groups them under null."""
    events = [_event(m, "web01", f"cmd.exe /c dir {m}") for m in (1, 2)]
    for event in events:
        del event["user"]
    separate = _rule('group_by = ["user.name"]\nmissing_fields_strategy = "doNotSuppress"\n')
    alerts, _ = _hunt(tmp_path, separate, events)
    assert len(alerts) == 2
    assert all("kibana.alert.suppression.terms" not in a for a in alerts)
    grouped = _rule('group_by = ["user.name"]\n')
    alerts, _ = _hunt(tmp_path, grouped, events)
    assert len(alerts) == 1
    assert alerts[0]["kibana.alert.suppression.terms"] == [{"field": "user.name", "value": None}]


def test_rules_without_suppression_are_untouched(tmp_path: Path) -> None:
    """Only the rule with alert_suppression groups; the same events under the plain seed rule alert one by one."""
    plain = load_elastic_toml(SEED.read_text(), str(SEED))[0].rule
    assert plain is not None
    events = [_event(m, "web01", f"cmd.exe /c whoami {m}") for m in (1, 2, 3)]
    alerts, stats = _hunt(tmp_path, plain, events)
    assert len(alerts) == 3
    assert not stats.suppressed_by_rule


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('group_by = ["a", "b", "c", "d"]\n', "Kibana allows 1 to 3"),
        ('group_by = ["host.name"]\nmissing_fields_strategy = "drop"\n', "missing_fields_strategy"),
        ('group_by = ["host.name"]\nduration = { value = 5, unit = "d" }\n', "unit"),
    ],
)
def test_invalid_suppression_is_a_rule_error(setting: str, message: str) -> None:
    """Kibana's rule schema: group_by holds 1-3 fields (AlertSuppressionGroupBy, minSize 1, maxSize 3), the
    strategy is suppress or doNotSuppress, duration units are s, m, h."""
    outcome = load_elastic_toml(SEED.read_text() + "\n[rule.alert_suppression]\n" + setting, str(SEED))[0]
    assert outcome.status == "error"
    assert message in outcome.reason


def test_backtest_replays_suppression_run_by_run(tmp_path: Path) -> None:
    """In a backtest the rule runs every 5 minutes over the last 9 (the seed rule's schedule) and suppresses per
    rule execution: a run makes one alert per group from what its search found; an event an earlier run already
    alerted on is a duplicate, and a group does not outlive its run (Kibana "Suppress detection alerts": "Per rule
    execution: Create an alert each time the rule runs and meets its criteria")."""
    from click.testing import CliRunner

    from shellwatch.cli import main

    rule_file = tmp_path / "rule.toml"
    rule_file.write_text(SEED.read_text() + '\n[rule.alert_suppression]\ngroup_by = ["host.name"]\n')
    # Runs start at the first match (11:00): the 11:00 run finds the 11:00 event; the 11:05 run finds it again
    # (a duplicate) with 11:01 and 11:02, which make one new alert standing for two events.
    events = [_event(m, "web01", f"cmd.exe /c whoami {m}") for m in (0, 1, 2)]
    log = tmp_path / "events.ndjson"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["backtest", "--rules", str(rule_file), str(log)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "3 matching events, 3 alerts created" in result.output  # the plain replay
    assert (
        "with its alert suppression by host.name (per rule execution): 2 alerts created, 1 matches folded into "
        "them, 0 updates of alerts of earlier runs"
    ) in result.output
