"""``kibana.alert.reason``: the one-line sentence Kibana writes for every security alert.

It follows Kibana's ``buildReasonMessageUtil`` (x-pack/plugins/security_solution, detection_engine
reason_formatters.ts) word for word: event category, then (when any is present) "with" and the process, parent
process, file, source and destination, then the user and the host, then "created <severity> alert <rule name>.".
A multi-valued field is joined with ", "; a missing, empty or "-" value is left out, as Kibana does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _text(value: Any) -> str | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        if value == ["-"]:
            return None
        return ", ".join(str(v) for v in value)
    if value == "-":
        return None
    return str(value)


def alert_reason(event: Mapping[str, Any], *, severity: str, rule_name: str) -> str:
    """Kibana's reason sentence for ``event`` (a flat ECS event) matched by a rule."""
    category = _text(event.get("event.category"))
    process = _text(event.get("process.name"))
    parent = _text(event.get("process.parent.name"))
    file_name = _text(event.get("file.name"))
    source = _text(event.get("source.address"))
    source_port = _text(event.get("source.port"))
    destination = _text(event.get("destination.address"))
    destination_port = _text(event.get("destination.port"))
    user = _text(event.get("user.name"))
    host = _text(event.get("host.name"))

    parts: list[str] = [f"{category} event" if category else "event"]
    if any(v is not None for v in (process, parent, file_name, source, source_port, destination, destination_port)):
        parts.append(" with")
    if process:
        parts.append(f" process {process},")
    if parent:
        parts.append(f" parent process {parent},")
    if file_name:
        parts.append(f" file {file_name},")
    if source:
        parts.append(f" source {source}")
    if source_port:
        parts.append(f":{source_port},")
    if destination:
        parts.append(f" destination {destination}")
    if destination_port:
        parts.append(f":{destination_port},")
    if user:
        parts.append(f" by {user}")
    if host:
        parts.append(f" on {host}")
    parts.append(f" created {severity} alert {rule_name}.")
    return "".join(parts)
