"""Output sinks: attacker-controlled text is shown escaped in every format."""

from __future__ import annotations

import csv
import io

import orjson
from rich.console import Console

from shellwatch.output.csv_file import write_csv
from shellwatch.output.json_lines import write_json_array, write_ndjson
from shellwatch.output.safe_text import escape_controls, spreadsheet_text
from shellwatch.output.table import AlertTable

HOSTILE = "cmd.exe /c \x1b[2J\x1b]0;pwned\x07 [bold red]x[/] \u009b31m \u202eexe.txt"

ALERT = {
    "kibana.alert.original_time": "2024-03-14T09:12:01.113Z",
    "kibana.alert.severity": "high",
    "kibana.alert.risk_score": 73,
    "kibana.alert.rule.name": "R [link=http://x]y[/link]",
    "kibana.alert.uuid": "abc",
    "host": {"name": "WEB01"},
    "user": {"name": '=HYPERLINK("http://x")', "domain": None},
    "process": {"name": "cmd.exe", "command_line": HOSTILE, "parent": {"name": "w3wp.exe"}},
}


def test_escape_controls_shows_every_control_character() -> None:
    shown = escape_controls(HOSTILE)
    assert "\x1b" not in shown and "\x07" not in shown and "\u009b" not in shown and "\u202e" not in shown
    assert "\\x1b[2J" in shown and "\\x9b" in shown and "\\u202e" in shown


def test_spreadsheet_cells_never_start_a_formula() -> None:
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=x", "\r=x"):
        cell = spreadsheet_text(value)
        assert cell.startswith("'") or cell[0] not in "=+-@\t\r", cell
    assert spreadsheet_text("cmd.exe") == "cmd.exe"


def test_table_shows_markup_and_escapes_literally() -> None:
    table = AlertTable()
    table.add(ALERT)
    buffer = io.StringIO()
    table.print(Console(file=buffer, width=400, force_terminal=True, color_system="truecolor"))
    out = buffer.getvalue()
    assert "[bold red]x[/]" in out
    assert "[link=http://x]y[/link]" in out
    assert "\\x1b[2J" in out
    assert "\x1b]0;pwned" not in out and "\x1b[2J" not in out


def test_ndjson_and_json_array_escape_c1_controls_and_round_trip() -> None:
    lines = io.BytesIO()
    assert write_ndjson([ALERT, ALERT], lines) == 2
    raw = lines.getvalue()
    assert b"\xc2\x9b" not in raw and b"\x1b" not in raw
    decoded = [orjson.loads(line) for line in raw.splitlines()]
    assert decoded[0]["process"]["command_line"] == HOSTILE
    array = io.BytesIO()
    write_json_array([ALERT], array)
    assert orjson.loads(array.getvalue())[0]["kibana.alert.uuid"] == "abc"
    empty = io.BytesIO()
    write_json_array([], empty)
    assert orjson.loads(empty.getvalue()) == []


def test_csv_has_header_and_escaped_cells() -> None:
    out = io.StringIO()
    assert write_csv([ALERT], out) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["parent"] == "w3wp.exe"
    assert rows[0]["user"].startswith("'=")
    assert "\x1b" not in out.getvalue() and "\\x1b" in rows[0]["command_line"]
