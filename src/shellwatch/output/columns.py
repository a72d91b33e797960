"""The columns an analyst reads first, taken from an alert document (for the table and CSV)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COLUMNS = (
    "time",
    "host",
    "severity",
    "risk",
    "rule",
    "parent",
    "process",
    "user",
    "command_line",
    "parent_command_line",
    "pid",
    "parent_pid",
    "source",
    "alert_id",
    "rule_id",
)


def _get(document: Mapping[str, Any], path: str) -> Any:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _user(alert: Mapping[str, Any]) -> str:
    name = _text(_get(alert, "user.name"))
    domain = _text(_get(alert, "user.domain"))
    return f"{domain}\\{name}" if domain and name else name


def _origin(alert: Mapping[str, Any]) -> str:
    origin = alert.get("shellwatch.origin")
    if not isinstance(origin, Mapping):
        return ""
    path = _text(origin.get("path"))
    if origin.get("record_id") is not None:
        return f"{path} record {origin['record_id']}"
    if origin.get("line") is not None:
        return f"{path}:{origin['line']}"
    return path


def alert_columns(alert: Mapping[str, Any]) -> dict[str, str]:
    """The analyst's columns of one alert, as plain (not yet escaped) strings."""
    return {
        "time": _text(alert.get("kibana.alert.original_time")),
        "host": _text(_get(alert, "host.name")),
        "severity": _text(alert.get("kibana.alert.severity")),
        "risk": _text(alert.get("kibana.alert.risk_score")),
        "rule": _text(alert.get("kibana.alert.rule.name")),
        "parent": _text(_get(alert, "process.parent.name")) or _text(_get(alert, "process.parent.executable")),
        "process": _text(_get(alert, "process.name")) or _text(_get(alert, "process.executable")),
        "user": _user(alert),
        "command_line": _text(_get(alert, "process.command_line")),
        "parent_command_line": _text(_get(alert, "process.parent.command_line")),
        "pid": _text(_get(alert, "process.pid")),
        "parent_pid": _text(_get(alert, "process.parent.pid")),
        "source": _origin(alert),
        "alert_id": _text(alert.get("kibana.alert.uuid")),
        "rule_id": _text(alert.get("kibana.alert.rule.rule_id")),
    }
