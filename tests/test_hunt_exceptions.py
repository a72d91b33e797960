"""`shellwatch hunt --exceptions`: exception lists silence exactly the matches their items describe.

Seed 002's warning: some sites run whoami from web applications legitimately, so the rule must be tunable. Kibana
applies a rule's exception lists before it creates alerts ("Add and manage exceptions",
https://www.elastic.co/guide/en/security/current/add-exceptions.html): an event an item describes raises no alert.
The fixture list allows whoami.exe under w3wp.exe only for the IIS application pool "MyAppPool".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shellwatch.cli import main
from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import ExceptionSpec, HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "exceptions"
TUNING = str(FIXTURES / "iis_app_pool.ndjson")
SIGMA_RULE = "web服务产生的可疑进程"


def defend_start(number: int, pool: str, child: str) -> dict[str, Any]:
    """An Elastic Defend process start: w3wp.exe of application pool ``pool`` starting ``child``."""
    return {
        "@timestamp": f"2024-05-02T10:0{number}:00.000Z",
        "agent": {"type": "endpoint"},
        "event": {"category": ["process"], "type": ["start"], "kind": "event", "id": f"evt-{number}"},
        "host": {"name": "web01", "os": {"type": "windows"}},
        "user": {"name": "IIS APPPOOL\\" + pool},
        "process": {
            "pid": 4000 + number,
            "name": child,
            "executable": f"C:\\Windows\\System32\\{child}",
            "command_line": child,
            "parent": {
                "pid": 3000 + number,
                "name": "w3wp.exe",
                "executable": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
                "command_line": f'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "{pool}" -v "v4.0"',
            },
        },
    }


@pytest.fixture
def logs(tmp_path: Path) -> list[str]:
    """Two files (so that two workers can share them): whoami under MyAppPool and under Payroll, and cmd.exe
    under MyAppPool."""
    first = tmp_path / "web01-a.ndjson"
    second = tmp_path / "web01-b.ndjson"
    first.write_text(
        "\n".join(
            json.dumps(d)
            for d in (defend_start(1, "MyAppPool", "whoami.exe"), defend_start(2, "Payroll", "whoami.exe"))
        )
        + "\n",
        encoding="utf-8",
    )
    second.write_text(json.dumps(defend_start(3, "MyAppPool", "cmd.exe")) + "\n", encoding="utf-8")
    return [str(first), str(second)]


def alerts_of(
    paths: list[str], exceptions: ExceptionSpec | None, workers: int
) -> tuple[list[dict[str, Any]], HuntStats]:
    stats = HuntStats()
    found = list(hunt(paths, RuleSet(load_bundled_rules().rules), stats=stats, workers=workers, exceptions=exceptions))
    return found, stats


def pools(alerts: list[dict[str, Any]], rule: str) -> list[tuple[str, str]]:
    """(child, application pool) of each alert of ``rule`` (alerts keep the source event nested, as Kibana's do)."""
    return sorted(
        (a["process"]["name"], a["process"]["parent"]["command_line"].split('"')[1])
        for a in alerts
        if a["kibana.alert.rule.name"] == rule
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_the_allowed_pool_is_silenced_and_no_other(logs: list[str], workers: int) -> None:
    before, _ = alerts_of(logs, None, workers)
    assert pools(before, SIGMA_RULE) == [
        ("cmd.exe", "MyAppPool"),
        ("whoami.exe", "MyAppPool"),
        ("whoami.exe", "Payroll"),
    ]
    spec = ExceptionSpec((TUNING,), attach=(("*", ("web-shell-tuning",)),))
    after, stats = alerts_of(logs, spec, workers)
    assert pools(after, SIGMA_RULE) == [("cmd.exe", "MyAppPool"), ("whoami.exe", "Payroll")]
    # The EQL rule does not list whoami.exe: its cmd.exe alert is untouched.
    assert len([a for a in after if a["kibana.alert.rule.name"] != SIGMA_RULE]) == len(
        [a for a in before if a["kibana.alert.rule.name"] != SIGMA_RULE]
    )
    assert stats.excluded_by_rule == {SIGMA_RULE: 1}
    assert len(before) - len(after) == 1


def test_lists_apply_only_to_the_rules_named(logs: list[str]) -> None:
    """Attached to the EQL rule alone (by its rule id), the list silences nothing: the EQL rule never matched
    whoami, and the Sigma rule has no exceptions."""
    spec = ExceptionSpec((TUNING,), attach=(("2917d495-59bd-4250-b395-c29409b76086", ("web-shell-tuning",)),))
    after, stats = alerts_of(logs, spec, 1)
    before, _ = alerts_of(logs, None, 1)
    assert len(after) == len(before)
    assert not stats.excluded_by_rule


def test_cli_reports_silenced_matches(logs: list[str]) -> None:
    result = CliRunner().invoke(
        main,
        ["hunt", *logs, "--format", "ndjson", "--exceptions", TUNING, "--exceptions-for", "*=web-shell-tuning"],
    )
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert ("whoami.exe", "MyAppPool") not in pools(alerts, SIGMA_RULE)
    assert ("whoami.exe", "Payroll") in pools(alerts, SIGMA_RULE)
    assert "1 matches silenced by exceptions" in result.stderr


def test_cli_refuses_a_bad_exceptions_file(logs: list[str]) -> None:
    """One clear message naming the file and line, no traceback, nothing hunted."""
    broken = str(FIXTURES / "broken.ndjson")
    result = CliRunner().invoke(main, ["hunt", *logs, "--exceptions", broken])
    assert result.exit_code == 2
    assert "broken.ndjson:" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_cli_needs_a_file_for_attachments(logs: list[str]) -> None:
    result = CliRunner().invoke(main, ["hunt", *logs, "--exceptions-for", "*=web-shell-tuning"])
    assert result.exit_code == 2
    assert "--exceptions" in result.stderr


def test_rules_show_lists_the_exceptions() -> None:
    """`rules show` names each list and item a rule's exceptions hold, entry by entry."""
    result = CliRunner().invoke(
        main, ["rules", "show", SIGMA_RULE, "--exceptions", TUNING, "--exceptions-for", "*=web-shell-tuning"]
    )
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    assert "Exceptions" in shown
    assert 'item "whoami under the MyAppPool application pool"' in shown
    assert 'process.parent.name is "w3wp.exe"' in shown
