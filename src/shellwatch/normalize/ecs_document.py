"""ECS documents (Elastic Defend, Winlogbeat 7/8, Elastic Agent's windows/system integrations) -> flat events.

An ingested ECS document already says what Elastic's pipelines say; it passes through flattened and unchanged,
with only what rules need and the shipper leaves out filled in:

* ``host.os.type: windows`` on a Windows event log document (``winlog.*`` present, or ``agent.type``
  winlogbeat) that lacks it: Elastic sets it from the shipper's host metadata, not from the event;
* ``process.name`` / ``process.parent.name`` from the executable path when missing;
* ``@timestamp`` as ISO 8601 UTC.

A Winlogbeat document that did not go through an ingest pipeline (Winlogbeat writing to a file or Logstash: it
has ``winlog.*`` but no ``event.module``/``event.category``) gets the provider's mapping from here, exactly as
its raw EVTX event would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shellwatch.ecs import Event, flatten
from shellwatch.normalize.providers import mapping_for
from shellwatch.normalize.timestamps import iso_utc
from shellwatch.normalize.windows_event import text_value

_EVENT_DATA = "winlog.event_data."
_USER_DATA = "winlog.user_data."


def is_windows_log_document(document: Mapping[str, Any]) -> bool:
    """Whether a (nested or dotted) JSON document is a Windows event log document: Winlogbeat's ``winlog``
    object, or an agent of type winlogbeat."""
    if "winlog" in document:
        return True
    agent = document.get("agent")
    if isinstance(agent, dict) and agent.get("type") == "winlogbeat":
        return True
    if document.get("agent.type") == "winlogbeat":
        return True
    return any(key.startswith("winlog.") for key in document)


def normalize_ecs_document(document: Mapping[str, Any], *, windows_log: bool) -> Event:
    """Flatten an ECS document, map it if it is an un-ingested Winlogbeat document, and fill in the fields
    rules need (see the module docstring)."""
    event = flatten(document)
    timestamp = event.get("@timestamp")
    if timestamp is not None and not isinstance(timestamp, list):
        moment = iso_utc(timestamp)
        if moment is not None:
            event["@timestamp"] = moment
    mapped_here = False
    if windows_log:
        if "event.module" not in event and "event.category" not in event:
            mapped_here = _map_collected_event(event)
        if "host.os.type" not in event:
            event["host.os.type"] = "windows"
    if not mapped_here:
        # The pipelines' own name rules already ran on a document mapped here; only documents shipped
        # without a name get one from their path.
        _complete_process_names(event)
    return event


def _fields_under(event: Event, prefix: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    start = len(prefix)
    for key, value in event.items():
        if key.startswith(prefix):
            text = text_value(value)
            if text is not None:
                fields[key[start:]] = text
    return fields


def _map_collected_event(event: Event) -> bool:
    # What the ingest pipeline would have done to Winlogbeat's output; False when no mapping applies.
    provider = event.get("winlog.provider_name")
    channel = event.get("winlog.channel")
    code_value = event.get("winlog.event_id", event.get("event.code"))
    code = text_value(code_value)
    record_id = event.get("winlog.record_id")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        event["winlog.record_id"] = str(record_id)
    if code is None:
        return False
    event.setdefault("event.code", code)
    event.setdefault("event.kind", "event")
    _, mapper = mapping_for(
        provider if isinstance(provider, str) else None, channel if isinstance(channel, str) else None
    )
    if mapper is None:
        return False
    data = _fields_under(event, _EVENT_DATA)
    if not data:
        data = _fields_under(event, _USER_DATA)
        data.pop("xml_name", None)
    mapper(event, data, code)
    return True


def _basename(path: str) -> str | None:
    # Windows paths use backslashes, the other ECS sources forward slashes; take whichever comes last.
    index = max(path.rfind("\\"), path.rfind("/"))
    return path[index + 1 :] or None


def _complete_process_names(event: Event) -> None:
    for prefix in ("process", "process.parent"):
        name_field = prefix + ".name"
        if name_field in event:
            continue
        executable = event.get(prefix + ".executable")
        if isinstance(executable, str) and executable:
            name = _basename(executable)
            if name is not None:
                event[name_field] = name
