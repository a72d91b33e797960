"""``shellwatch rules list / show / validate`` through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shellwatch.cli import main
from shellwatch.rules.loader import bundled_pack_path

SIGMA = """title: {title}
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        ParentImage|endswith: '\\w3wp.exe'
    condition: selection
level: high
"""

NOTE_ATTACK = "Guide \x1b[2J with [red]markup[/red]"


# Rich wraps tables at 80 columns when stdout is not a terminal; a wide one keeps cells whole for the asserts.
def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "250"}).invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """An ok Sigma rule, an unsupported ES|QL rule and a broken TOML file."""
    (tmp_path / "ok.yml").write_text(SIGMA.format(title="Shell from w3wp"), encoding="utf-8")
    (tmp_path / "esql.toml").write_text(
        '[rule]\nrule_id = "k1"\nname = "ESQL"\ndescription = "d"\ntype = "esql"\nlanguage = "esql"\n'
        'risk_score = 21\nseverity = "low"\nquery = "from logs-* | where process.name == \\"cmd.exe\\""\n',
        encoding="utf-8",
    )
    (tmp_path / "broken.toml").write_text('[rule]\nname = "x"\nseverity = = 1\n', encoding="utf-8")
    return tmp_path


def test_main_lists_its_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "rules" in result.output and "eval" in result.output


def test_list_defaults_to_the_bundled_pack() -> None:
    result = run("rules", "list")
    assert result.exit_code == 0
    assert "2917d495" in result.stdout and "12a3e00c" in result.stdout
    assert "Web Shell" in result.stdout and "T1505.003" in result.stdout
    assert "(bundled)" in result.stdout
    assert "4203af34" in result.stdout  # the new_terms version of the seed rule
    assert "3 rules" in result.stdout


def test_list_reports_what_did_not_load_on_stderr(mixed_folder: Path) -> None:
    result = run("rules", "list", "--rules", str(mixed_folder))
    assert result.exit_code == 0
    assert "1 rules" in result.stdout
    assert f"{mixed_folder / 'broken.toml'}:3: invalid TOML" in result.stderr
    assert "1 rules use features shellwatch does not run yet: rule type 'esql'" in result.stderr


@pytest.mark.parametrize(
    "ref",
    [
        "2917d495-59bd-4250-b395-c29409b76086",
        "2917",
        "web shell detection: script process child of common web processes",
    ],
)
def test_show_finds_a_rule_by_id_prefix_or_name(ref: str) -> None:
    result = run("rules", "show", ref)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Web Shell Detection: Script Process Child of Common Web Processes")
    assert "TA0003 Persistence" in out and "T1505.003 Web Shell" in out
    assert "T1047 Windows Management Instrumentation" in out
    assert "Investigation guide" in out and "### False positive analysis" in out
    assert "process.parent.name in~" in out
    assert "Elastic License v2" in out


def test_show_ambiguous_and_unknown_references_fail_with_a_message() -> None:
    ambiguous = run("rules", "show", "web")
    assert ambiguous.exit_code == 1
    assert "3 rules match 'web'" in ambiguous.stderr
    # The full name of the EQL seed rule is part of its new_terms version's name; the full name still picks it.
    assert run("rules", "show", "script process child").exit_code == 1
    unknown = run("rules", "show", "no-such-rule")
    assert unknown.exit_code == 1
    assert "no rule matches 'no-such-rule'" in unknown.stderr


@pytest.mark.parametrize("flag", ["--plain", "--markdown"])
def test_show_escapes_attacker_controlled_rule_text(tmp_path: Path, flag: str) -> None:
    rule = (bundled_pack_path() / "persistence_webshell_detection.toml").read_text(encoding="utf-8")
    rule = rule.replace(
        'name = "Web Shell Detection: Script Process Child of Common Web Processes"',
        'name = "Evil \\u001b[31m[bold]name"',
    )
    start = rule.index('note = """')
    end = rule.index('"""', start + 10) + 3
    toml_note = NOTE_ATTACK.replace("\x1b", "\\u001b")
    rule = rule[:start] + f'note = "{toml_note}"' + rule[end:]
    (tmp_path / "evil.toml").write_text(rule, encoding="utf-8")
    result = run("rules", "show", "2917", "--rules", str(tmp_path), flag)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert "Evil \\x1b[31m[bold]name" in result.stdout
    assert "\\x1b[2J" in result.stdout


def test_validate_text_lists_every_rule_and_fails_on_errors(mixed_folder: Path) -> None:
    result = run("rules", "validate", str(mixed_folder))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("error") and "broken.toml:3" in lines[0] and "invalid TOML" in lines[0]
    assert lines[1].startswith("unsupported") and "rule type 'esql'" in lines[1]
    assert lines[2].startswith("ok") and "Shell from w3wp" in lines[2]
    assert "3 rules: 1 ok, 1 unsupported, 1 error" in result.stdout


def test_validate_unsupported_alone_is_not_a_failure(mixed_folder: Path) -> None:
    (mixed_folder / "broken.toml").unlink()
    assert run("rules", "validate", str(mixed_folder)).exit_code == 0


def test_validate_json_prints_only_json_records(mixed_folder: Path) -> None:
    result = run("rules", "validate", str(mixed_folder), "--format", "json")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(r) for r in records] == [{"path", "rule_id", "name", "language", "status", "reason"}] * 3
    assert [(Path(r["path"]).name, r["status"]) for r in records] == [
        ("broken.toml", "error"),
        ("esql.toml", "unsupported"),
        ("ok.yml", "ok"),
    ]
    assert records[0]["reason"].startswith("line 3: invalid TOML")
    assert records[1]["rule_id"] == "k1" and records[1]["language"] == "esql"
    assert "3 rules: 1 ok, 1 unsupported, 1 error" in result.stderr


def test_validate_in_worker_processes_keeps_file_order(tmp_path: Path) -> None:
    for i in range(70):
        (tmp_path / f"rule{i:03d}.yml").write_text(SIGMA.format(title=f"Rule {i:03d}"), encoding="utf-8")
    result = run("rules", "validate", str(tmp_path), "--format", "json", "--jobs", "2")
    assert result.exit_code == 0
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert names == [f"Rule {i:03d}" for i in range(70)]


def test_validate_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run("rules", "validate", str(tmp_path / "absent"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
