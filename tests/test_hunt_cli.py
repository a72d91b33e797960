"""``shellwatch hunt`` end to end on the shipped samples/ folder and on small logs written here.

samples/ holds Sysmon event XML (web01), Security 4688 event XML (web02), Elastic Defend NDJSON (web03) and an
Event Viewer export of an unrelated 4688 (seed-002). The README's sample description says which events each
bundled rule must alert on; the tests below check exactly those events, every output format, the time window,
exit statuses, problem reporting, stdin, and that attacker-written text never reaches a terminal raw.

Output goes through click's CliRunner (in-process). Rich sizes tables from the terminal it finds, so every run
sets ``COLUMNS`` explicitly: results must not depend on the terminal the tests happen to run in.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shellwatch.cli import main
from shellwatch.rules.loader import load_bundled_rules

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
EQL_SEED_ID = "2917d495-59bd-4250-b395-c29409b76086"
NEW_TERMS_ID = "4203af34-1eac-57d8-b0d4-58a2d525bb80"
"""The new_terms version of the seed rule: it needs host.id, which only the Elastic Defend sample carries, and
alerts on each (host.id, command line) pair once."""
WIDE = "250"
"""Terminal width for table runs: wide enough for every column of the table."""

EXPECTED_EQL = sorted(
    [
        ("w3wp.exe", "cmd.exe"),
        ("W3WP.EXE", "powershell.exe"),
        ("nginx.exe", "pwsh.exe"),
        ("php-cgi.exe", "cmd.exe"),
        ("tomcat.exe", "wscript.exe"),
        ("php.exe", "cmd.exe"),
    ]
)
EXPECTED_SIGMA = sorted(
    [
        ("w3wp.exe", "cmd.exe"),
        ("w3wp.exe", "whoami.exe"),
        ("W3WP.EXE", "powershell.exe"),
        ("sqlservr.exe", "cmd.exe"),
        ("httpd.exe", "cmd.exe"),
        ("php-cgi.exe", "cmd.exe"),
        ("php-cgi.exe", "PING.EXE"),
        ("tomcat.exe", "wscript.exe"),
    ]
)


@cache
def sigma_seed_id() -> str:
    ids = [rule.rule_id for rule in load_bundled_rules().rules if rule.language == "sigma"]
    assert len(ids) == 1
    return ids[0]


def shellwatch(*args: str, stdin: bytes | None = None, columns: str = WIDE) -> Result:
    """``shellwatch ARGS`` in-process, stdout and stderr apart, on a terminal of ``columns`` columns."""
    env: Mapping[str, str | None] = {"COLUMNS": columns, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(main, list(args), input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ndjson_alerts(result: Result) -> list[dict[str, Any]]:
    """Every stdout line parsed as one JSON alert (a line that is not JSON fails the test)."""
    lines = result.stdout.splitlines()
    assert all(line.strip() for line in lines), "blank line in NDJSON output"
    return [json.loads(line) for line in lines]


def by_rule(alerts: list[dict[str, Any]]) -> Counter[str]:
    return Counter(alert["kibana.alert.rule.rule_id"] for alert in alerts)


def pairs(alerts: list[dict[str, Any]], rule_id: str) -> list[tuple[str, str]]:
    return sorted(
        (a["process"]["parent"]["name"], a["process"]["name"])
        for a in alerts
        if a["kibana.alert.rule.rule_id"] == rule_id
    )


def hostile_event(command_line: str, host: str = "web09", user: str = "svc-web") -> dict[str, Any]:
    """An Elastic Defend style ECS process start: w3wp.exe -> cmd.exe (both seed rules fire)."""
    return {
        "@timestamp": "2024-03-16T12:00:00.000Z",
        "event": {"category": ["process"], "type": ["start"], "kind": "event", "action": "start"},
        "host": {"name": host, "os": {"type": "windows"}},
        "user": {"name": user},
        "process": {
            "name": "cmd.exe",
            "executable": "C:\\Windows\\System32\\cmd.exe",
            "command_line": command_line,
            "parent": {"name": "w3wp.exe", "executable": "C:\\Windows\\System32\\inetsrv\\w3wp.exe"},
        },
    }


def write_ndjson(path: Path, *events: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------------------
# The samples: which alerts, in every format.


def test_ndjson_output_is_json_lines_with_six_eql_and_eight_sigma_alerts() -> None:
    result = shellwatch("hunt", "--format", "ndjson", str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    alerts = ndjson_alerts(result)
    assert by_rule(alerts) == {EQL_SEED_ID: 6, NEW_TERMS_ID: 2, sigma_seed_id(): 8}
    assert len({alert["kibana.alert.uuid"] for alert in alerts}) == 16
    assert "16 alerts" in result.stderr  # the summary goes to stderr, never into the JSON stream


def test_alerts_are_the_documented_parent_child_events() -> None:
    alerts = ndjson_alerts(shellwatch("hunt", "--format", "ndjson", str(SAMPLES)))
    assert pairs(alerts, EQL_SEED_ID) == EXPECTED_EQL
    assert pairs(alerts, sigma_seed_id()) == EXPECTED_SIGMA
    command_lines = {
        (a["kibana.alert.rule.rule_id"], a["process"]["parent"]["name"]): a["process"]["command_line"]
        for a in alerts
        if a["process"]["parent"]["name"] in ("php.exe", "httpd.exe")
    }
    # php.exe -> cmd.exe runs whoami: not one of the EQL rule's excluded console-probing command lines.
    assert "whoami" in command_lines[(EQL_SEED_ID, "php.exe")]
    # httpd.exe -> cmd.exe "mode CON" is excluded by the EQL rule only; the Sigma rule has no exclusion.
    assert "mode CON" in command_lines[(sigma_seed_id(), "httpd.exe")]
    assert (EQL_SEED_ID, "httpd.exe") not in command_lines
    for alert in alerts:
        origin = alert["shellwatch.origin"]
        assert Path(origin["path"]).parent == SAMPLES
        assert origin["line"] is not None or origin["record_id"] is not None


def test_rerun_gives_the_same_alert_ids() -> None:
    first = ndjson_alerts(shellwatch("hunt", "--format", "ndjson", str(SAMPLES)))
    second = ndjson_alerts(shellwatch("hunt", "--format", "ndjson", str(SAMPLES)))
    assert {a["kibana.alert.uuid"] for a in first} == {a["kibana.alert.uuid"] for a in second}
    assert len(first) == 16


def test_csv_output_has_a_header_and_one_row_per_alert() -> None:
    result = shellwatch("hunt", "--format", "csv", str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert Counter(row["rule_id"] for row in rows) == {EQL_SEED_ID: 6, NEW_TERMS_ID: 2, sigma_seed_id(): 8}
    assert sorted((row["parent"], row["process"]) for row in rows if row["rule_id"] == EQL_SEED_ID) == EXPECTED_EQL
    assert all(row["alert_id"] and row["time"].startswith("2024-03-1") for row in rows)


def test_json_output_is_one_array_of_all_alerts() -> None:
    result = shellwatch("hunt", "--format", "json", str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    alerts = json.loads(result.stdout)
    assert isinstance(alerts, list)
    assert by_rule(alerts) == {EQL_SEED_ID: 6, NEW_TERMS_ID: 2, sigma_seed_id(): 8}
    assert pairs(alerts, sigma_seed_id()) == EXPECTED_SIGMA


def rule_summary_counts(table_output: str) -> list[int]:
    """The alert counts of the "Alerts by rule" table (the last column of each row after its title)."""
    summary = table_output[table_output.index("Alerts by rule") :]
    return sorted(int(found) for found in re.findall(r"│\s*(\d+)\s*│\s*$", summary, flags=re.MULTILINE))


def test_table_output_lists_alerts_and_the_alerts_by_rule_summary() -> None:
    result = shellwatch("hunt", "--format", "table", str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    assert "16 alerts" in result.stdout
    assert "Alerts by rule" in result.stdout
    assert rule_summary_counts(result.stdout) == [2, 6, 8]
    for parent, child in EXPECTED_EQL + EXPECTED_SIGMA:
        assert f"{parent} -> {child}" in result.stdout


def test_table_on_an_80_column_terminal_still_shows_which_process_ran() -> None:
    result = shellwatch("hunt", "--format", "table", str(SAMPLES / "web03-endpoint.ndjson"), columns="80")
    assert result.exit_code == 0, result.stderr
    assert "tomcat.exe -> wscript.exe" in result.stdout


def test_output_file_receives_the_alerts_and_stdout_stays_empty(tmp_path: Path) -> None:
    ndjson_file = tmp_path / "alerts.ndjson"
    result = shellwatch("hunt", "--format", "ndjson", "-o", str(ndjson_file), str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    alerts = [json.loads(line) for line in ndjson_file.read_text(encoding="utf-8").splitlines()]
    assert by_rule(alerts) == {EQL_SEED_ID: 6, NEW_TERMS_ID: 2, sigma_seed_id(): 8}

    table_file = tmp_path / "alerts.txt"
    result = shellwatch("hunt", "--format", "table", "--output", str(table_file), str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert rule_summary_counts(table_file.read_text(encoding="utf-8")) == [2, 6, 8]


# ------------------------------------------------------------------------------------------------------------
# Time window and exit statuses.


def test_from_and_to_keep_events_of_the_window_only() -> None:
    """web02's events (2024-03-15) only: php-cgi.exe -> cmd.exe (both rules), php-cgi.exe -> PING.EXE (Sigma)."""
    alerts = ndjson_alerts(
        shellwatch("hunt", "--format", "ndjson", "--from", "2024-03-15", "--to", "2024-03-16", str(SAMPLES))
    )
    assert pairs(alerts, EQL_SEED_ID) == [("php-cgi.exe", "cmd.exe")]
    assert pairs(alerts, sigma_seed_id()) == [("php-cgi.exe", "PING.EXE"), ("php-cgi.exe", "cmd.exe")]
    assert all(a["kibana.alert.original_time"].startswith("2024-03-15") for a in alerts)


def test_window_is_closed_at_from_and_open_at_to() -> None:
    """php.exe -> cmd.exe happened at 2024-03-16T11:05:51.003Z: in [that moment, ...), not in [..., that moment)."""
    moment = "2024-03-16T11:05:51.003Z"
    after = ndjson_alerts(shellwatch("hunt", "--format", "ndjson", "--from", moment, str(SAMPLES)))
    assert pairs(after, EQL_SEED_ID) == [("php.exe", "cmd.exe")]
    assert by_rule(after) == {EQL_SEED_ID: 1, NEW_TERMS_ID: 1}
    before = ndjson_alerts(shellwatch("hunt", "--format", "ndjson", "--to", moment, str(SAMPLES)))
    assert ("php.exe", "cmd.exe") not in pairs(before, EQL_SEED_ID)
    assert len(before) == 14  # the 16 but the EQL and new_terms alerts on that moment


def test_bad_time_bound_is_a_usage_error() -> None:
    result = shellwatch("hunt", "--format", "ndjson", "--from", "last tuesday", str(SAMPLES))
    assert result.exit_code == 2
    assert "last tuesday" in result.stderr
    assert result.stdout == ""


def test_fail_on_alert_exits_1_only_when_there_are_alerts() -> None:
    alerting = shellwatch("hunt", "--format", "ndjson", "--fail-on-alert", str(SAMPLES))
    assert alerting.exit_code == 1
    assert len(ndjson_alerts(alerting)) == 16
    quiet = shellwatch("hunt", "--format", "ndjson", "--fail-on-alert", str(SAMPLES / "seed-002-event-viewer.xml"))
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stdout == ""


# ------------------------------------------------------------------------------------------------------------
# Bad input: named, skipped, the rest hunted.


def test_missing_path_and_garbage_file_are_named_and_the_rest_is_hunted(tmp_path: Path) -> None:
    missing = tmp_path / "missing.evtx"
    garbage = tmp_path / "garbage.evtx"
    garbage.write_bytes(b"\x00\x01\x02 this is not a log \xff\xfe" * 20)
    result = shellwatch("hunt", "--format", "ndjson", str(missing), str(garbage), str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    assert by_rule(ndjson_alerts(result)) == {EQL_SEED_ID: 6, NEW_TERMS_ID: 2, sigma_seed_id(): 8}
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2, result.stderr
    assert str(missing) in result.stderr
    assert str(garbage) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_named_and_the_rest_is_hunted(tmp_path: Path) -> None:
    locked = tmp_path / "locked.ndjson"
    write_ndjson(locked, hostile_event("cmd.exe /c whoami"))
    locked.chmod(0)
    try:
        result = shellwatch("hunt", "--format", "ndjson", str(locked), str(SAMPLES))
    finally:
        locked.chmod(0o600)
    assert result.exit_code == 0, result.stderr
    assert str(locked) in result.stderr
    assert len(ndjson_alerts(result)) == 16


def test_nothing_readable_exits_3(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00" * 64 + b"not a log")
    result = shellwatch("hunt", "--format", "ndjson", str(garbage), str(tmp_path / "absent.evtx"))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert str(garbage) in result.stderr


def test_broken_json_line_is_reported_with_its_line_and_the_others_hunted(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(
        json.dumps(hostile_event("cmd.exe /c ver", host="web09"))
        + '\n{"event": {"category": ["process"], "type": \n'
        + json.dumps(hostile_event("cmd.exe /c hostname", host="web10"))
        + "\n",
        encoding="utf-8",
    )
    result = shellwatch("hunt", "--format", "ndjson", str(events))
    assert result.exit_code == 0, result.stderr
    assert f"{events}:2" in result.stderr
    alerts = ndjson_alerts(result)
    assert sorted((a["host"]["name"], a["shellwatch.origin"]["line"]) for a in alerts) == [
        ("web09", 1),
        ("web09", 1),
        ("web10", 3),
        ("web10", 3),
    ]


def test_dash_reads_ndjson_from_stdin() -> None:
    """web03's Elastic Defend events on stdin: tomcat.exe -> wscript.exe (both rules), php.exe -> cmd.exe (EQL)."""
    result = shellwatch("hunt", "--format", "ndjson", "-", stdin=(SAMPLES / "web03-endpoint.ndjson").read_bytes())
    assert result.exit_code == 0, result.stderr
    alerts = ndjson_alerts(result)
    assert pairs(alerts, EQL_SEED_ID) == [("php.exe", "cmd.exe"), ("tomcat.exe", "wscript.exe")]
    assert pairs(alerts, sigma_seed_id()) == [("tomcat.exe", "wscript.exe")]
    assert {a["shellwatch.origin"]["path"] for a in alerts} == {"-"}


# ------------------------------------------------------------------------------------------------------------
# Attacker-written text.

HOSTILE_COMMAND_LINE = "cmd.exe /c \x1b[31mRED\x1b[0m [bold red]pwn[/bold red] \x9b2J \x07\u202eexe.lave"
HOSTILE_ESCAPED = "cmd.exe /c \\x1b[31mRED\\x1b[0m [bold red]pwn[/bold red] \\x9b2J \\x07\\u202eexe.lave"
"""The command line as shellwatch shows it: controls, C1 and bidi overrides as \\xNN / \\uNNNN, markup literal."""
RAW_CONTROLS = ("\x1b", "\x9b", "\x07", "\u202e")


def test_hostile_command_line_is_shown_escaped_in_table_and_csv_and_never_raw_in_ndjson(tmp_path: Path) -> None:
    events = write_ndjson(tmp_path / "hostile.ndjson", hostile_event(HOSTILE_COMMAND_LINE, user="=cmd|' /C calc'!A0"))

    table = shellwatch("hunt", "--format", "table", str(events))
    assert table.exit_code == 0, table.stderr
    assert HOSTILE_ESCAPED in table.stdout
    assert not any(control in table.stdout for control in RAW_CONTROLS)

    spreadsheet = shellwatch("hunt", "--format", "csv", str(events))
    assert spreadsheet.exit_code == 0, spreadsheet.stderr
    rows = list(csv.DictReader(io.StringIO(spreadsheet.stdout)))
    assert len(rows) == 2
    assert {row["command_line"] for row in rows} == {HOSTILE_ESCAPED}
    assert {row["user"] for row in rows} == {"'=cmd|' /C calc'!A0"}  # no formula when opened in a spreadsheet
    assert not any(control in spreadsheet.stdout for control in RAW_CONTROLS)

    lines = shellwatch("hunt", "--format", "ndjson", str(events))
    assert lines.exit_code == 0, lines.stderr
    raw = lines.stdout_bytes
    assert b"\x1b" not in raw and b"\x07" not in raw
    assert "\x9b".encode() not in raw  # C1 CSI, as UTF-8
    alerts = ndjson_alerts(lines)
    assert len(alerts) == 2
    # Escaped on the wire, exact once decoded: the alert keeps the evidence as it was logged.
    assert {a["process"]["command_line"] for a in alerts} == {HOSTILE_COMMAND_LINE}


def test_hostile_file_name_in_a_warning_is_escaped(tmp_path: Path) -> None:
    name = "evil\x1b]0;owned\x07.evtx"
    (tmp_path / name).write_bytes(b"not a log at all")
    result = shellwatch("hunt", "--format", "ndjson", str(tmp_path / name), str(SAMPLES / "web03-endpoint.ndjson"))
    assert result.exit_code == 0, result.stderr
    assert "evil\\x1b]0;owned\\x07.evtx" in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


def test_warning_names_a_path_with_spaces_on_one_line(tmp_path: Path) -> None:
    """A real process with stderr piped to a file, as in ``shellwatch hunt ... 2> problems.txt``."""
    folder = tmp_path / "IIS logs" / "web server 01"
    folder.mkdir(parents=True)
    missing = folder / "missing export of the W3SVC1 site.evtx"
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    completed = subprocess.run(
        [sys.executable, "-m", "shellwatch", "hunt", "--format", "ndjson", str(missing), str(SAMPLES)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )
    stderr = completed.stderr.decode("utf-8")
    assert completed.returncode == 0, stderr
    assert str(missing) in stderr


# ------------------------------------------------------------------------------------------------------------
# --rules.

SQLSERVR_RULE = r"""
title: SQL Server spawning a shell
id: 6b2f1c4e-8a3d-4f5e-9c7b-2d1e0f3a4b5c
status: test
description: xp_cmdshell at work
author: shellwatch tests
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        ParentImage|endswith: '\sqlservr.exe'
    condition: selection
level: critical
"""


def test_rules_option_replaces_the_bundled_pack(tmp_path: Path) -> None:
    rule_file = tmp_path / "sqlservr.yml"
    rule_file.write_text(SQLSERVR_RULE, encoding="utf-8")
    result = shellwatch("hunt", "--format", "ndjson", "--rules", str(rule_file), str(SAMPLES))
    assert result.exit_code == 0, result.stderr
    alerts = ndjson_alerts(result)
    assert by_rule(alerts) == {"6b2f1c4e-8a3d-4f5e-9c7b-2d1e0f3a4b5c": 1}
    assert alerts[0]["process"]["parent"]["name"] == "sqlservr.exe"
    assert alerts[0]["kibana.alert.rule.severity"] == "critical"
    assert alerts[0]["kibana.alert.rule.name"] == "SQL Server spawning a shell"
