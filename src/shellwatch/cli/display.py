"""Terminal output of the command line: every value from an event or a rule is shown escaped.

Rule names, notes, command lines and host names are written by whoever wrote the rule or ran the process.
Printed raw they could recolour or clear the terminal (ANSI escape sequences, control characters), reorder
text (bidi overrides) or restyle rich output (``[bold]``). :func:`safe_text` is the one function every shown
value passes through; :func:`cell` wraps it in a rich ``Text`` so that rich never interprets markup in it, and
the consoles made here have markup, emoji codes and highlighting switched off as a second line of defence.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from shellwatch.output.safe_text import escape_controls


def safe_text(value: Any, *, keep_newlines: bool = False) -> str:
    """``value`` as text that is safe to print: controls, ANSI escapes and bidi overrides shown as ``\\xNN``.

    ``None`` is the empty string; lists are joined with ", ". Rich markup is left as written; print it through
    :func:`cell` (a ``Text``) or a console from :func:`make_console`, which never parse markup. With
    ``keep_newlines`` line breaks stay line breaks and tabs become spaces (multi-line notes and queries);
    every other control is escaped.
    """
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(safe_text(item, keep_newlines=keep_newlines) for item in value)
    text = value if isinstance(value, str) else str(value)
    if keep_newlines:
        lines = text.replace("\r\n", "\n").split("\n")
        return "\n".join(escape_controls(line.expandtabs(4)) for line in lines)
    return escape_controls(text)


def cell(value: Any, style: str = "", *, keep_newlines: bool = False) -> Text:
    """A rich ``Text`` of :func:`safe_text` (``Text`` content is never parsed as markup)."""
    return Text(safe_text(value, keep_newlines=keep_newlines), style=style)


def make_console(*, stderr: bool = False) -> Console:
    """A console that never interprets markup, emoji codes or highlighting in what it prints."""
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


def stderr_is_terminal() -> bool:
    """Whether progress bars may be drawn (only on an interactive stderr)."""
    return sys.stderr.isatty()
