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

from click.testing import CliRunner

from shellwatch.cli import main
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
