"""The terminal view: a table of alerts, then a summary of what was read and found.

Every cell goes through :func:`~shellwatch.output.safe_text.terminal_text`, so markup and control characters in
logs are shown, never obeyed. Rows are kept as short strings only (not whole alerts) until the table is printed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shellwatch.output.columns import alert_columns
from shellwatch.output.safe_text import escape_controls

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_COMMAND_LINE_WIDTH = 160
_WIDE = 110
"""Below this many columns the command line is shown under the process instead of in its own column."""


def _cell(value: str, limit: int | None = None) -> Text:
    """A table cell holding ``value`` as literal text (Text objects are never parsed for markup)."""
    text = escape_controls(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return Text(text)


def _short_time(value: str) -> str:
    """``2024-03-14T09:12:01.113Z`` shown as ``2024-03-14 09:12:01``; anything else as it is."""
    if len(value) >= 19 and value[10] == "T":
        return f"{value[:10]} {value[11:19]}"
    return value


class AlertTable:
    """Collects the display columns of alerts and prints them as a rich table."""

    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []

    def add(self, alert: dict[str, Any]) -> None:
        """Keep one alert's display columns."""
        self.rows.append(alert_columns(alert))

    def print(self, console: Console) -> None:
        """Print the table (or a one-line note when there are no alerts)."""
        if not self.rows:
            console.print(Text("No alerts."))
            return
        table = Table(title=f"{len(self.rows)} alert{'s' if len(self.rows) != 1 else ''}", width=console.size.width)
        # Two facts per cell keep the table readable on a narrow terminal: what happened where, how bad and which
        # rule, who started what; the command line gets a column of its own when there is room, else it goes
        # under the process it belongs to.
        narrow = console.size.width < _WIDE
        table.add_column("time (UTC) / host", overflow="fold", max_width=20 if narrow else 22)
        table.add_column("severity / rule", overflow="fold", max_width=22 if narrow else 30)
        table.add_column(
            "parent -> process / user" + (" / command line" if narrow else ""), overflow="fold", min_width=26, ratio=1
        )
        if not narrow:
            table.add_column("command line", overflow="fold", ratio=2, min_width=16)
        for row in self.rows:
            severity = row["severity"]
            when = _cell(_short_time(row["time"]))
            when.append("\n" + escape_controls(row["host"]), style="dim")
            rule = Text(escape_controls(severity), style=_SEVERITY_STYLE.get(severity, ""))
            rule.append("\n" + escape_controls(row["rule"]))
            who = _cell(f"{row['parent']} -> {row['process']}")
            who.append("\n" + escape_controls(row["user"]), style="dim")
            command_line = _cell(row["command_line"], _COMMAND_LINE_WIDTH)
            if narrow:
                who.append("\n")
                who.append(command_line)
                table.add_row(when, rule, who)
            else:
                table.add_row(when, rule, who, command_line)
        console.print(table)


def print_rule_summary(console: Console, alerts_by_rule: Counter[tuple[str, str]]) -> None:
    """Alerts per rule, most severe first."""
    if not alerts_by_rule:
        return
    table = Table(title="Alerts by rule")
    table.add_column("severity")
    table.add_column("rule")
    table.add_column("alerts", justify="right")
    ordered = sorted(alerts_by_rule.items(), key=lambda item: (_SEVERITY_ORDER.get(item[0][1], 9), -item[1]))
    for (name, severity), count in ordered:
        table.add_row(Text(severity, style=_SEVERITY_STYLE.get(severity, "")), _cell(name), str(count))
    console.print(table)
