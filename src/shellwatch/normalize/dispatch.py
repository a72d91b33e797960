"""The one entry point from raw records to ECS events: recognizes each record's source and hands it to that
source's normalizer.

Sources (:data:`SOURCES`), recognized per record by content (:func:`source_family`), or named for every record with
``source`` (``shellwatch hunt --source``):

* raw Windows events (EVTX, event XML, evtx_dump JSON): ``sysmon``, ``windows_security`` or ``windows`` by provider;
* ``winlogbeat``: Winlogbeat 6.x, 7.x and 8.x documents; ``elastic_agent``: Elastic Agent's windows / system
  integration documents (``data_stream.dataset`` ``windows.*`` / ``system.*``), Windows event log documents too;
* ``elastic_defend``: Elastic Defend (endpoint) documents; ``ecs``: any other ECS document;
* ``endgame``, ``sentinel_one_cloud_funnel``, ``m365_defender``, ``crowdstrike_fdr``: those vendors' raw exports;
* ``otrf``: OTRF Security-Datasets flat records;
* ``unknown``: a JSON object none of them recognizes, kept flattened as it is.

Vendor records are recognized before the generic ECS shapes: Cloud Funnel and Endgame 3.x documents carry ECS-like
``event.*`` keys, and a CrowdStrike or Defender export row is a flat object like an OTRF record.

Logs are attacker-controlled: :func:`normalize` never raises. A record no normalizer can read still gives an
event, its content flattened as is, with ``event.kind: pipeline_error`` and ``error.message`` saying so, as
Elastic's pipelines mark the documents they fail on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from shellwatch.ecs import Event, flatten
from shellwatch.normalize import crowdstrike, endgame, m365_defender, sentinel_one, winlogbeat_legacy
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.ecs_document import (
    ELASTIC_DEFEND_FAMILY,
    is_elastic_defend_document,
    is_windows_log_document,
    normalize_ecs_document,
    normalize_elastic_defend_document,
)
from shellwatch.normalize.otrf import is_otrf_record, normalize_otrf
from shellwatch.normalize.providers import SYSMON, WINDOWS, WINDOWS_SECURITY, mapping_for
from shellwatch.normalize.timestamps import iso_utc
from shellwatch.normalize.windows_event import normalize_windows_event
from shellwatch.sources.record import RawRecord

WINLOGBEAT: Final = "winlogbeat"
ELASTIC_AGENT: Final = "elastic_agent"
ELASTIC_DEFEND: Final = ELASTIC_DEFEND_FAMILY
ECS: Final = "ecs"
OTRF: Final = "otrf"
UNKNOWN: Final = "unknown"

SOURCES: Final[dict[str, str]] = {
    SYSMON: "Sysmon events, raw (EVTX, event XML, evtx_dump JSON): logs-windows.sysmon_operational-*",
    WINDOWS_SECURITY: "Windows Security log events, raw: logs-system.security*",
    WINDOWS: "any other Windows event log, raw",
    WINLOGBEAT: "Winlogbeat 6/7/8 documents: winlogbeat-*",
    ELASTIC_AGENT: "Elastic Agent windows/system integration documents: logs-windows.*, logs-system.security*",
    ELASTIC_DEFEND: "Elastic Defend documents: logs-endpoint.events.process-*",
    endgame.FAMILY: "Endgame events: endgame-*",
    sentinel_one.FAMILY: "SentinelOne Cloud Funnel JSON: logs-sentinel_one_cloud_funnel.*",
    m365_defender.FAMILY: "Microsoft 365 Defender streaming / Advanced Hunting exports: logs-m365_defender.event-*",
    crowdstrike.FAMILY: "CrowdStrike Falcon Data Replicator events: logs-crowdstrike.fdr*",
    ECS: "other ECS documents",
    OTRF: "OTRF Security-Datasets flat Windows records",
}
"""The sources shellwatch normalizes, by name, with what they are and the Elastic index pattern they stand for."""

WINDOWS_FAMILIES: Final = frozenset((SYSMON, WINDOWS_SECURITY, WINDOWS))
"""Sources of raw Windows events: which one a record is comes from its provider."""

_Normalizer = Callable[[Mapping[str, Any], SourceContext], Event]
_VENDORS: Final[tuple[tuple[str, Callable[[Mapping[str, Any]], bool], _Normalizer], ...]] = (
    (crowdstrike.FAMILY, crowdstrike.is_crowdstrike_record, crowdstrike.normalize_crowdstrike),
    (sentinel_one.FAMILY, sentinel_one.is_sentinel_one_record, sentinel_one.normalize_sentinel_one),
    (m365_defender.FAMILY, m365_defender.is_m365_defender_record, m365_defender.normalize_m365_defender),
    (endgame.FAMILY, endgame.is_endgame_record, endgame.normalize_endgame),
)
_BY_VENDOR: Final = {family: normalizer for family, _, normalizer in _VENDORS}

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
    return _recognize(document)[0]


def _recognize(document: Mapping[str, Any]) -> tuple[str, _Normalizer]:
    """The source of a JSON object that is not a raw Windows event, and the normalizer that reads it."""
    for family, recognizes, normalizer in _VENDORS:
        if recognizes(document):
            return family, normalizer
    # OTRF first: its flat records have many keys, which the dotted-winlog scan below would walk.
    if "winlog" not in document and is_otrf_record(document):
        return OTRF, _normalize_otrf
    if is_elastic_defend_document(document):
        return ELASTIC_DEFEND, _normalize_defend
    if winlogbeat_legacy.is_winlogbeat6_record(document):
        return WINLOGBEAT, _normalize_winlogbeat6
    if is_windows_log_document(document):
        return (ELASTIC_AGENT if _agent_dataset(document) else WINLOGBEAT), _normalize_windows_log_document
    if any(marker in document for marker in _ECS_MARKERS) or any(key.startswith("event.") for key in document):
        return ECS, _normalize_ecs
    return UNKNOWN, _as_is


def _normalizer_of(source: str, document: Mapping[str, Any]) -> _Normalizer:
    """The normalizer that reads ``document`` as the JSON source ``source``."""
    vendor = _BY_VENDOR.get(source)
    if vendor is not None:
        return vendor
    if source == WINLOGBEAT:
        if winlogbeat_legacy.is_winlogbeat6_record(document):
            return _normalize_winlogbeat6
        return _normalize_windows_log_document
    return _GENERIC_NORMALIZERS[source]


# The non-vendor normalizers under the vendors' signature (they keep no memory).
def _normalize_otrf(document: Mapping[str, Any], _context: SourceContext) -> Event:
    return normalize_otrf(document)[1]


def _normalize_defend(document: Mapping[str, Any], _context: SourceContext) -> Event:
    return normalize_elastic_defend_document(document)


def _normalize_winlogbeat6(document: Mapping[str, Any], _context: SourceContext) -> Event:
    return winlogbeat_legacy.normalize_winlogbeat6(document)


def _normalize_windows_log_document(document: Mapping[str, Any], _context: SourceContext) -> Event:
    return normalize_ecs_document(document, windows_log=True)


def _normalize_ecs(document: Mapping[str, Any], _context: SourceContext) -> Event:
    return normalize_ecs_document(document, windows_log=False)


def _agent_dataset(document: Mapping[str, Any]) -> bool:
    """Whether a Windows event log document was shipped by an Elastic Agent integration (its data stream's
    dataset ``windows.*`` or ``system.*``), not by Winlogbeat."""
    data_stream = document.get("data_stream")
    dataset = data_stream.get("dataset") if isinstance(data_stream, dict) else document.get("data_stream.dataset")
    return isinstance(dataset, str) and dataset.startswith(("windows.", "system."))


def source_family(record: RawRecord) -> str:
    """The source of a record, for per-source counts: a name of :data:`SOURCES`, or ``unknown``."""
    try:
        if record.shape == "windows_event":
            root = record.data.get("Event", record.data)
            return _windows_family(root if isinstance(root, dict) else {})
        return _json_family(record.data)
    except Exception:  # a malformed record is counted, never fatal
        return UNKNOWN


def normalize(record: RawRecord, context: SourceContext | None = None) -> Event:
    """The flat ECS event for a raw record (see the module docstring); never raises."""
    return normalize_with_family(record, context=context)[1]


def normalize_with_family(
    record: RawRecord,
    demand: FieldDemand | None = None,
    *,
    context: SourceContext | None = None,
    source: str | None = None,
) -> tuple[str, Event]:
    """:func:`source_family` and :func:`normalize` in one pass over the record.

    With ``demand``, the event holds the demanded fields as the full normalization would, and may leave out others
    (:mod:`shellwatch.normalize.demand`); for matching, not for output. ``context``: the memory of the input the
    record belongs to (a fresh one when None: nothing remembered). ``source``: a name of :data:`SOURCES` to read
    the record as, instead of recognizing it.
    """
    if context is None:
        context = SourceContext()
    try:
        if source is not None:
            return _normalize_as(source, record, demand, context)
        return _normalize(record, demand, context)
    except Exception as exc:  # attacker-written input must not stop a hunt
        return UNKNOWN, _unreadable(record, exc)


def _normalize(record: RawRecord, demand: FieldDemand | None, context: SourceContext) -> tuple[str, Event]:
    document = record.data
    if record.shape == "windows_event" or _windows_root(document) is not None:
        return normalize_windows_event(document, demand)
    family, normalizer = _recognize(document)
    if demand is not None and normalizer in _DEMAND_AWARE:
        return family, _DEMAND_AWARE[normalizer](document, demand)
    return family, normalizer(document, context)


def _normalize_as(
    source: str, record: RawRecord, demand: FieldDemand | None, context: SourceContext
) -> tuple[str, Event]:
    document = record.data
    if source in WINDOWS_FAMILIES:
        # Which Windows family an event is comes from its provider; any other shape is not a Windows event.
        if record.shape == "windows_event" or _windows_root(document) is not None:
            return normalize_windows_event(document, demand)
        return UNKNOWN, _as_is(document)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    return source, _normalizer_of(source, document)(document, context)


_DEMAND_AWARE: Final[dict[_Normalizer, Callable[[Mapping[str, Any], FieldDemand], Event]]] = {
    _normalize_defend: lambda document, demand: normalize_elastic_defend_document(document, demand=demand),
    _normalize_ecs: lambda document, demand: normalize_ecs_document(document, windows_log=False, demand=demand),
}
"""Normalizers that can read only the demanded fields of a document (no memory: the context is not needed)."""

_GENERIC_NORMALIZERS: Final[dict[str, _Normalizer]] = {
    OTRF: _normalize_otrf,
    ELASTIC_DEFEND: _normalize_defend,
    ELASTIC_AGENT: _normalize_windows_log_document,
    ECS: _normalize_ecs,
}


def _as_is(document: Mapping[str, Any], _context: SourceContext | None = None) -> Event:
    event = flatten(document)
    timestamp = iso_utc(event.get("@timestamp"))
    if timestamp is not None:
        event["@timestamp"] = timestamp
    return event


def _unreadable(record: RawRecord, exc: Exception) -> Event:
    try:
        event = flatten(record.data)
    except RecursionError:
        event = {}
    event["event.kind"] = "pipeline_error"
    event["error.message"] = f"record could not be normalized ({type(exc).__name__}); kept as read"
    return event
