"""Alerts as CSV for the spreadsheet: one row per alert, the analyst's columns (see :mod:`columns`)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

from shellwatch.output.columns import COLUMNS, alert_columns
from shellwatch.output.safe_text import spreadsheet_text


def write_csv(alerts: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    """Write a header and one row per alert; returns how many alerts were written."""
    writer = csv.writer(stream)
    writer.writerow(COLUMNS)
    count = 0
    for alert in alerts:
        row = alert_columns(alert)
        writer.writerow([spreadsheet_text(row[c]) for c in COLUMNS])
        count += 1
    return count
