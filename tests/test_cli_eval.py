"""``shellwatch eval``: rules over NDJSON ECS events, the original lines out, bad lines warned about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shellwatch.cli import main
from shellwatch.cli.ndjson_events import BadLine, EventLine, read_events
from shellwatch.rules.loader import bundled_pack_path

SEED_EQL = 'process where process.parent.name : "w3wp.exe" and process.name : "cmd.exe"'


def start(parent: str, child: str, command_line: str = "cmd.exe /c whoami", **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"name": "iis01", "os": {"type": "windows"}},
        "process": {
            "name": child,
            "executable": f"C:\\Windows\\System32\\{child}",
            "command_line": command_line,
            "parent": {"name": parent, "executable": f"C:\\Windows\\System32\\inetsrv\\{parent}"},
        },
    }
    document.update(extra)
    return document


# Rich wraps tables at 80 columns when stdout is not a terminal; a wide one keeps cells whole for the asserts.
def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "250"}).invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def events(tmp_path: Path) -> Path:
    matching = json.dumps(start("w3wp.exe", "cmd.exe"), indent=None, separators=(", ", ": "))
    dotted = json.dumps(
        {
            "event.category": "process",
            "event.type": "start",
            "host.os.type": "windows",
            "process.parent.name": "W3WP.EXE",
            "process.parent.executable": "C:\\inetpub\\W3WP.EXE",
            "process.name": "cmd.exe",
            "process.executable": "C:\\Windows\\System32\\cmd.exe",
        }
    )
    lines = [
        matching,
        json.dumps(start("explorer.exe", "cmd.exe")),
        '{"broken": ',
        "",
        "[1, 2]",
        dotted + "\r",
    ]
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ndjson_output_is_the_original_lines_only(events: Path) -> None:
    result = run("eval", "--eql", SEED_EQL, str(events), "--format", "ndjson")
    assert result.exit_code == 0
    original = events.read_text(encoding="utf-8").split("\n")
    assert result.stdout.split("\n") == [original[0], original[5].rstrip("\r"), ""]
    assert f"{events}:3: invalid JSON" in result.stderr
    assert f"{events}:5: not a JSON object" in result.stderr
    assert result.stderr.count("warning") == 2


def test_table_output_has_the_match_columns_and_a_count(events: Path) -> None:
    result = run("eval", "--rules", str(bundled_pack_path()), str(events))
    assert result.exit_code == 0
    out = result.stdout
    assert "Web Shell Detection" in out and "web服务产生的可疑进程" in out
    assert "w3wp.exe -> cmd.exe" in out and "iis01" in out and "2024-05-01T10:00:00.000Z" in out
    assert "2 matching events (4 rule matches)" in out


def test_an_event_matched_by_two_rules_is_printed_once(events: Path) -> None:
    result = run("eval", "--rules", str(bundled_pack_path()), str(events), "--format", "ndjson")
    assert len(result.stdout.splitlines()) == 2


def test_sigma_file(events: Path) -> None:
    sigma = bundled_pack_path() / "web_server_suspicious_child_process.yml"
    result = run("eval", "--sigma", str(sigma), str(events), "--format", "ndjson")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2


def test_table_escapes_attacker_controlled_fields(tmp_path: Path) -> None:
    hostile = start("w3wp.exe", "cmd.exe", command_line='cmd /c "\x1b[2J\x1b]0;owned\x07[bold red]x[/]"')
    hostile["host"]["name"] = "iis\u202e01"
    path = tmp_path / "hostile.ndjson"
    path.write_text(json.dumps(hostile) + "\n", encoding="utf-8")
    result = run("eval", "--eql", SEED_EQL, str(path))
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b[2J" in result.stdout and "[bold red]x[/]" in result.stdout and "iis\\u202e01" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --rules, --eql or --sigma"),
        (["--eql", SEED_EQL, "--rules", "."], "give exactly one of --rules, --eql or --sigma"),
        (["--eql", "process where"], "Invalid value for '--eql'"),
        (["--eql", "sequence [process where true] [file where true]"], "Invalid value for '--eql': sequence"),
    ],
)
def test_bad_arguments_are_usage_errors(events: Path, args: list[str], message: str) -> None:
    result = run("eval", *args, str(events))
    assert result.exit_code == 2
    assert message in result.stderr


def test_missing_events_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    result = run("eval", "--eql", SEED_EQL, str(tmp_path / "absent.ndjson"))
    assert result.exit_code == 2
    assert "absent.ndjson" in result.stderr


def test_no_match_prints_a_zero_count(events: Path) -> None:
    result = run("eval", "--eql", 'process where process.name == "none"', str(events))
    assert result.stdout.strip() == "0 matching events (0 rule matches)"


def test_overlong_lines_are_skipped_with_their_line_number(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    long_line = json.dumps({"pad": "x" * 500})
    path.write_text(json.dumps({"a": 1}) + "\n" + long_line + "\n" + json.dumps({"b": 2}) + "\n", encoding="utf-8")
    items = list(read_events(path, limit=100))
    assert isinstance(items[0], EventLine) and items[0].event == {"a": 1}
    assert isinstance(items[1], BadLine) and items[1].line == 2 and "longer than 100 bytes" in items[1].reason
    assert isinstance(items[2], EventLine) and items[2].line == 3 and items[2].event == {"b": 2}


def test_deeply_nested_documents_are_bad_lines(tmp_path: Path) -> None:
    """orjson parses 1,000 levels; flattening them would exceed Python's recursion limit: a warning, not a crash."""
    path = tmp_path / "deep.ndjson"
    path.write_text('{"a":' * 1000 + "1" + "}" * 1000 + "\n" + json.dumps({"b": 1}) + "\n", encoding="utf-8")
    items = list(read_events(path))
    assert isinstance(items[0], BadLine) and items[0].reason == "JSON object nested too deeply"
    assert isinstance(items[1], EventLine)
