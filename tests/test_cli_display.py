"""Attacker-controlled text on the terminal (shellwatch.cli.display): escaped, never interpreted.

A command line or rule name may hold ANSI escape sequences (``\\x1b[2J`` clears the screen), other control
characters, Unicode bidi overrides (U+202E reverses what follows) or rich markup (``[bold]``); shown raw, they
would rewrite what the analyst sees. ECMA-48 (ISO/IEC 6429) defines the C0/C1 controls and CSI sequences; Unicode
UAX #9 the bidi controls.
"""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from shellwatch.cli.display import cell, make_console, safe_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("evil\u202egnp.exe", "evil\\u202egnp.exe"),
        ("line\u2028sep", "line\\u2028sep"),
        ("[bold]not bold[/bold]", "[bold]not bold[/bold]"),
        ("C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\cmd.exe"),
        ("web服务产生的可疑进程", "web服务产生的可疑进程"),
    ],
)
def test_safe_text_escapes_controls_and_keeps_the_rest(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown


def test_safe_text_of_non_strings() -> None:
    assert safe_text(None) == ""
    assert safe_text(73) == "73"
    assert safe_text(["start", "info\x1b"]) == "start, info\\x1b"


def test_keep_newlines_keeps_line_breaks_only() -> None:
    assert safe_text("a\r\nb\n\tc\x1b[2J", keep_newlines=True) == "a\nb\n    c\\x1b[2J"


def _render(renderable: object) -> str:
    buffer = io.StringIO()
    console = make_console()
    console.file = buffer
    console.print(renderable)
    return buffer.getvalue()


def test_rich_table_shows_markup_and_escapes_literally() -> None:
    table = Table()
    table.add_column("Command line")
    table.add_row(cell('cmd.exe /c "[bold red]pwned[/] \x1b[2J"'))
    output = _render(table)
    assert "\x1b" not in output
    assert "[bold red]pwned[/]" in output
    assert "\\x1b[2J" in output


def test_console_does_not_interpret_markup_in_plain_strings() -> None:
    output = _render("[blink]x[/blink] :smile:")
    assert output == "[blink]x[/blink] :smile:\n"
