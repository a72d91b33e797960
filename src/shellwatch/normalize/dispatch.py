"""The one entry point from raw records to ECS events: recognizes each record's telemetry family and hands it
to that family's normalizer.

Families (:func:`source_family`): ``sysmon``, ``windows_security``, ``windows`` (any other Windows event log
provider) for raw Windows events; ``winlogbeat`` (documents with ``winlog.*``), ``ecs`` (other ECS documents,
e.g. Elastic Defend), ``otrf`` (OTRF Security-Datasets flat records) and ``unknown`` for JSON.

Logs are attacker-controlled: :func:`normalize` never raises. A record no normalizer can read still gives an
event, its content flattened as is, with ``event.kind: pipeline_error`` and ``error.message`` saying so, as
Elastic's pipelines mark the documents they fail on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shellwatch.ecs import Event, flatten
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.ecs_document import is_windows_log_document, normalize_ecs_document
from shellwatch.normalize.otrf import is_otrf_record, normalize_otrf
from shellwatch.normalize.providers import mapping_for
from shellwatch.normalize.timestamps import iso_utc
from shellwatch.normalize.windows_event import normalize_windows_event
from shellwatch.sources.record import RawRecord

WINLOGBEAT = "winlogbeat"
ECS = "ecs"
OTRF = "otrf"
UNKNOWN = "unknown"

# Top-level names that make a JSON object an ECS document.
_ECS_MARKERS = ("@timestamp", "ecs", "event", "process", "host", "agent", "data_stream")


def _windows_root(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    root = document.get("Event")
    if isinstance(root, dict) and isinstance(root.get("System"), dict):
        return root
    return None


def _windows_family(root: Mapping[str, Any]) -> str:
    system = root.get("System")
    if not isinstance(system, dict):
        return mapping_for(None, None)[0]
    provider = system.get("Provider")
    attributes = provider.get("#attributes") if isinstance(provider, dict) else None
    name = None
    if isinstance(attributes, dict):
        name = attributes.get("Name") or attributes.get("EventSourceName")
    channel = system.get("Channel")
    return mapping_for(name if isinstance(name, str) else None, channel if isinstance(channel, str) else None)[0]


def _json_family(document: Mapping[str, Any]) -> str:
    root = _windows_root(document)
    if root is not None:
        return _windows_family(root)
    # OTRF first: its flat records have many keys, which the dotted-winlog scan below would walk.
    if "winlog" not in document and is_otrf_record(document):
        return OTRF
    if is_windows_log_document(document):
        return WINLOGBEAT
    if any(marker in document for marker in _ECS_MARKERS) or any(key.startswith("event.") for key in document):
        return ECS
    return UNKNOWN


def source_family(record: RawRecord) -> str:
    """The telemetry family of a record, for per-source counts: ``sysmon``, ``windows_security``, ``windows``,
    ``winlogbeat``, ``ecs``, ``otrf`` or ``unknown``."""
    try:
        if record.shape == "windows_event":
            root = record.data.get("Event", record.data)
            return _windows_family(root if isinstance(root, dict) else {})
        return _json_family(record.data)
    except Exception:  # a malformed record is counted, never fatal
        return UNKNOWN


def normalize(record: RawRecord) -> Event:
    """The flat ECS event for a raw record (see the module docstring); never raises."""
    return normalize_with_family(record)[1]


def normalize_with_family(record: RawRecord, demand: FieldDemand | None = None) -> tuple[str, Event]:
    """:func:`source_family` and :func:`normalize` in one pass over the record.

    With ``demand``, the event holds the demanded fields as the full normalization would, and may leave out others
    (:mod:`shellwatch.normalize.demand`); for matching, not for output.
    """
    try:
        return _normalize(record, demand)
    except Exception as exc:  # attacker-written input must not stop a hunt
        return UNKNOWN, _unreadable(record, exc)


def _normalize(record: RawRecord, demand: FieldDemand | None) -> tuple[str, Event]:
    document = record.data
    if record.shape == "windows_event":
        return normalize_windows_event(document, demand)
    if _windows_root(document) is not None:
        return normalize_windows_event(document, demand)
    family = _json_family(document)
    if family == OTRF:
        return normalize_otrf(document)
    if family in (WINLOGBEAT, ECS):
        return family, normalize_ecs_document(document, windows_log=family == WINLOGBEAT)
    event = flatten(document)
    timestamp = iso_utc(event.get("@timestamp"))
    if timestamp is not None:
        event["@timestamp"] = timestamp
    return UNKNOWN, event


def _unreadable(record: RawRecord, exc: Exception) -> Event:
    try:
        event = flatten(record.data)
    except RecursionError:
        event = {}
    event["event.kind"] = "pipeline_error"
    event["error.message"] = f"record could not be normalized ({type(exc).__name__}); kept as read"
    return event
