"""Attacker-controlled text made safe to show: escapes for terminals, spreadsheets and rich markup.

Command lines, user names and file paths in logs are written by whoever ran the process. Shown raw they could
move the cursor, recolour or erase the screen (ANSI escape sequences, C0/C1 control characters), restyle a rich
table (``[bold]...``), or run a formula when a CSV is opened in a spreadsheet (``=cmd|...``). Every value shown
passes through one of these functions; the escaped form is readable and unambiguous (``\\x1b`` for ESC).
"""

from __future__ import annotations

import re

from rich.markup import escape as rich_escape

# C0 controls except none, DEL, C1 controls, and the Unicode line/paragraph separators and bidi overrides that
# can reorder what the reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """Control characters, ANSI escapes and bidi overrides shown as ``\\xNN`` / ``\\uNNNN``; backslashes kept."""
    return _UNSAFE.sub(_escape_char, text)


def terminal_text(text: str) -> str:
    """Text for a rich renderable: controls escaped and rich markup shown literally."""
    return rich_escape(escape_controls(text))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """A CSV cell: controls escaped, and a leading formula character neutralised with a quote (OWASP advice)."""
    text = escape_controls(text)
    return "'" + text if text.startswith(_FORMULA_START) else text
