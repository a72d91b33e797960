"""new_terms and threshold rules in a hunt and in a backtest, with the bundled seed rules.

The new_terms version of the seed rule (Elastic's since September 2025, bundled beside the EQL version) alerts only
on the first (host.id, process.command_line) pair seen in its 7-day history window (Kibana "Create a new terms
rule": "alerts when a value combination ... appears for the first time within the history window"); the EQL
version alerts on every match. A threshold rule alerts once per bucket of matches reaching its count (Kibana
"Create a threshold rule"). How a hunt reads both is written in :mod:`shellwatch.alerts.held`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from shellwatch.cli import main
from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.elastic_toml import load_elastic_toml
from shellwatch.rules.loader import load_bundled_rules

EQL_ID = "2917d495-59bd-4250-b395-c29409b76086"
NEW_TERMS_ID = "4203af34-1eac-57d8-b0d4-58a2d525bb80"
T0 = datetime(2025, 10, 1, 8, 0, tzinfo=UTC)

THRESHOLD_RULE = """
[rule]
rule_id = "threshold-shells"
name = "Three or more shells under one web server process on a host"
description = "d"
type = "threshold"
language = "kuery"
risk_score = 47
severity = "medium"
query = 'event.category:process and process.parent.name:(w3wp.exe or php-cgi.exe)'
[rule.threshold]
field = ["host.id"]
value = 3
"""


def _event(when: datetime, host: str, command: str) -> dict[str, Any]:
    """An Elastic Defend process start: w3wp.exe starting cmd.exe, which both seed rules match."""
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "@timestamp": stamp,
        "agent": {"type": "endpoint"},
        "event": {
            "category": ["process"],
            "type": ["start"],
            "kind": "event",
            "dataset": "endpoint.events.process",
            "ingested": stamp,
        },
        "host": {"id": f"id-{host}", "name": host, "os": {"type": "windows"}},
        "process": {
            "name": "cmd.exe",
            "executable": "C:\\Windows\\System32\\cmd.exe",
            "command_line": command,
            "args": command.split(" "),
            "parent": {"name": "w3wp.exe", "executable": "C:\\Windows\\System32\\inetsrv\\w3wp.exe"},
        },
        "user": {"name": "DefaultAppPool"},
    }


def _stream(tmp_path: Path) -> Path:
    """Two hosts; one runs `whoami` every hour for two days, the other `ipconfig` twice, 10 days apart."""
    events = [_event(T0 + timedelta(hours=h), "web01", "cmd.exe /c whoami") for h in range(48)]
    events += [_event(T0 + timedelta(days=d), "web02", "cmd.exe /c ipconfig") for d in (0, 10)]
    events.append(_event(T0 + timedelta(hours=5), "web02", "cmd.exe /c whoami"))
    log = tmp_path / "defend.ndjson"
    log.write_text("".join(json.dumps(e) + "\n" for e in reversed(events)))  # input order is not time order
    return log


def test_new_terms_seed_rule_alerts_once_per_new_pair_in_a_hunt(tmp_path: Path) -> None:
    log = _stream(tmp_path)
    stats = HuntStats()
    alerts = list(hunt([str(log)], RuleSet(load_bundled_rules().rules), stats=stats, workers=1))
    by_rule = Counter(a["kibana.alert.rule.rule_id"] for a in alerts)
    assert by_rule[EQL_ID] == 51  # every match
    new_terms = [a for a in alerts if a["kibana.alert.rule.rule_id"] == NEW_TERMS_ID]
    # web01 whoami once; web02 whoami once; web02 ipconfig twice: silent for 10 days > the 7-day history.
    assert sorted(
        (a["host"]["id"], a["process"]["command_line"], a["kibana.alert.original_time"]) for a in new_terms
    ) == [
        ("id-web01", "cmd.exe /c whoami", "2025-10-01T08:00:00.000Z"),
        ("id-web02", "cmd.exe /c ipconfig", "2025-10-01T08:00:00.000Z"),
        ("id-web02", "cmd.exe /c ipconfig", "2025-10-11T08:00:00.000Z"),
        ("id-web02", "cmd.exe /c whoami", "2025-10-01T13:00:00.000Z"),
    ]
    assert all(a["kibana.alert.new_terms"] for a in new_terms)
    assert stats.aggregated_by_rule[new_terms[0]["kibana.alert.rule.name"]] == 51 - 4


def test_threshold_rule_alerts_once_per_bucket_in_a_hunt(tmp_path: Path) -> None:
    log = _stream(tmp_path)
    outcome = load_elastic_toml(THRESHOLD_RULE, "threshold.toml")[0]
    assert outcome.rule is not None, outcome.reason
    first = list(hunt([str(log)], RuleSet([outcome.rule]), workers=1))
    results = sorted(
        (a["kibana.alert.threshold_result"]["terms"][0]["value"], a["kibana.alert.threshold_result"]["count"])
        for a in first
    )
    assert results == [("id-web01", 48), ("id-web02", 3)]
    again = list(hunt([str(log)], RuleSet([outcome.rule]), workers=1))
    assert [a["kibana.alert.uuid"] for a in again] == [a["kibana.alert.uuid"] for a in first]


def test_backtest_shows_the_eql_and_new_terms_versions_side_by_side(tmp_path: Path) -> None:
    """On the same data, Kibana's schedule (every 5 minutes over the last 9) makes the EQL version alert on every
    match and the new_terms version on each new pair only."""
    log = _stream(tmp_path)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["backtest", str(log)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    created: dict[str, int] = {}
    rule = None
    for line in result.output.splitlines():
        if " — every " in line:
            rule = line.split(" — every ")[0]
        found = re.search(r"runs: [\d,]+ matching events, ([\d,]+) alerts created", line)
        if found and rule is not None:
            created[rule] = int(found.group(1).replace(",", ""))
    eql_name = "Web Shell Detection: Script Process Child of Common Web Processes"
    assert created[eql_name] == 51
    assert created[eql_name + " (new terms)"] == 4
