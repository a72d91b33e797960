"""`shellwatch backtest`: hunt once, replay each rule's matches on its schedule, print runs and totals.

The replay's semantics are tested in tests/test_schedule_runs.py; here, the command's wiring: every match is alerted
exactly once over the runs (no duplicates, nothing dropped below max_signals), and with an exceptions file the
before/after counts differ by exactly the silenced matches (issue: "an exceptions file that allows whoami under one
named IIS application pool silences exactly those alerts, and backtest shows the before/after counts").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from shellwatch.cli import backtest, main
from shellwatch.query.ir import Equals
from shellwatch.rules.model import Rule, RuleSource
from test_hunt_exceptions import TUNING, defend_start


def stream(tmp_path: Path) -> str:
    """Whoami under MyAppPool and under Payroll, alternately, one a minute for 20 minutes."""
    lines = []
    for minute in range(20):
        pool = "MyAppPool" if minute % 2 == 0 else "Payroll"
        event = defend_start(minute, pool, "whoami.exe")
        event["@timestamp"] = f"2024-05-02T10:{minute:02d}:30.000Z"
        event["event"]["id"] = f"evt-{minute}"
        lines.append(json.dumps(event))
    path = tmp_path / "stream.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def totals(output: str) -> list[tuple[int, int, int, int]]:
    """(matching events, created, duplicates, dropped) of each rule's totals line."""
    found = re.findall(
        r"(\d+) matching events, (\d+) alerts created, (\d+) duplicates skipped in the look-back overlap, "
        r"(\d+) dropped",
        output,
    )
    return [tuple(int(n) for n in row) for row in found]  # type: ignore[misc]


def test_every_match_alerted_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["backtest", stream(tmp_path)])
    assert result.exit_code == 0, result.output
    # The Sigma seed rule lists whoami.exe; the EQL seed rule does not.
    assert "Web Shell Detection: Script Process Child of Common Web Processes: no matching event" in result.stdout
    (sigma,) = totals(result.stdout)
    matches, created, duplicates, dropped = sigma
    assert matches == created == 20
    assert dropped == 0
    # Consecutive windows overlap (5-minute runs looking back further): some matches are found twice.
    assert duplicates > 0


def test_exceptions_before_and_after(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["backtest", stream(tmp_path), "--exceptions", TUNING, "--exceptions-for", "*=web-shell-tuning"]
    )
    assert result.exit_code == 0, result.output
    (sigma,) = totals(result.stdout)
    assert sigma[1] == 10  # the Payroll half
    assert "20 alerts without them, 10 with them (10 matches silenced)" in result.stdout


def web_rules() -> list[Rule]:
    """The seed's new_terms form (first (host, command line) pair in 7 days) and a threshold rule (5 shells a
    host), both over w3wp.exe children, built on the IR until KQL rules load."""
    common: dict[str, Any] = {
        "description": "d",
        "language": "kuery",
        "query": "process.parent.name:w3wp.exe",
        "ir": Equals(field="process.parent.name", values=("w3wp.exe",)),
        "source": RuleSource(path="test"),
        "interval": "5m",
        "from_": "now-9m",
    }
    return [
        Rule(
            rule_id="nt",
            name="web shell new terms",
            type="new_terms",
            new_terms_fields=("host.name", "process.command_line"),
            history_window_start="now-7d",
            **common,
        ),
        Rule(
            rule_id="th",
            name="web shell burst",
            type="threshold",
            threshold={"field": "host.name", "value": 5},
            **common,
        ),
    ]


def test_new_terms_and_threshold_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty shells a minute apart, whoami and ipconfig alternately, on one host: the new_terms rule alerts on the
    two pairs once; the threshold rule on each run that counts 5 shells after its previous alert."""
    lines = []
    for minute in range(20):
        child = "whoami.exe" if minute % 2 == 0 else "ipconfig.exe"
        event = defend_start(minute, "MyAppPool", child)
        event["@timestamp"] = f"2024-05-02T10:{minute:02d}:30.000Z"
        event["event"]["id"] = f"evt-{minute}"
        lines.append(json.dumps(event))
    path = tmp_path / "stream.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(backtest, "load_selected_rules", lambda _paths: SimpleNamespace(rules=web_rules()))
    result = CliRunner().invoke(main, ["backtest", str(path), "--workers", "1"])
    assert result.exit_code == 0, result.output
    new_terms, threshold = totals(result.stdout)
    assert new_terms[:2] == (20, 2)
    assert (
        "new_terms on host.name, process.command_line, history now-7d: 2 distinct combinations among the "
        "matching events, 2 alerted as new" in result.stdout
    )
    assert "one aggregation per window" in result.stdout
    # Runs every 5 minutes from the first shell (10:00:30): the first window holding 5 shells alerts, each later
    # run counts only shells after the previous alert: 10:00:30-10:05:30 is 6, then 5 a run.
    assert threshold[1] == 3
    assert "threshold count >= 5 by host.name" in result.stdout
