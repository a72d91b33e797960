"""OTRF Security-Datasets records -> ECS, through the same provider mappings as raw Windows events.

The Security-Datasets (formerly Mordor) JSON lines are Windows events flattened by NXLog's ``im_msvistalog``
and Logstash: the System fields under NXLog's names (``EventID``, ``SourceName``, ``Hostname``,
``ExecutionProcessID``, ``RecordNumber``, ``EventTime``...), the shipper's own fields (``@timestamp``,
``host``, ``port``, ``tags``...) and every EventData field at the top level (``Image``,
``NewProcessName``...).
Newer datasets use ``TimeCreated``/``Level`` instead of ``EventTime``/``Severity``. The metadata names are set
apart here; every other top-level field is event data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shellwatch.ecs import Event
from shellwatch.normalize.providers import mapping_for, os_type_for
from shellwatch.normalize.timestamps import iso_utc
from shellwatch.normalize.windows_event import (
    as_int,
    braced_guid,
    keyword_names,
    level_name,
    outcome_of,
    text_value,
)

_EVENT_DATA = "winlog.event_data."

# NXLog im_msvistalog System/rendering fields and Logstash's own: never event data.
_METADATA: Final = frozenset(
    (
        "EventID", "SourceName", "ProviderGuid", "Channel", "Hostname", "RecordNumber", "EventTime",
        "TimeCreated", "EventReceivedTime", "Keywords", "EventType", "Severity", "SeverityValue", "Level",
        "Version", "Task", "Category", "Opcode", "OpcodeValue", "ExecutionProcessID", "ThreadID",
        "ActivityID", "RelatedActivityID", "UserID", "AccountName", "Domain", "AccountType", "Message",
        "SourceModuleName", "SourceModuleType", "ERROR_EVT_UNRESOLVED",
        "@timestamp", "@version", "host", "port", "tags",
    )
)  # fmt: skip

_SEVERITIES: Final = {
    "INFO": "information",
    "WARNING": "warning",
    "ERROR": "error",
    "CRITICAL": "critical",
    "DEBUG": "verbose",
}


def is_otrf_record(document: Mapping[str, Any]) -> bool:
    """Whether a JSON object is an OTRF/NXLog flat Windows event."""
    return "EventID" in document and ("SourceName" in document or "Channel" in document)


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def normalize_otrf(document: Mapping[str, Any]) -> tuple[str, Event]:
    """An OTRF flat record -> (source family, ECS event)."""
    provider = _string(document.get("SourceName"))
    channel = _string(document.get("Channel"))
    event_id = as_int(document.get("EventID"))
    code = str(event_id) if event_id is not None else None

    event: Event = {}
    # NXLog's EventTime is local time without a zone; TimeCreated (newer datasets) and Logstash's @timestamp
    # are UTC.
    timestamp = iso_utc(document.get("TimeCreated")) or iso_utc(document.get("@timestamp"))
    if timestamp is not None:
        event["@timestamp"] = timestamp
    event["event.kind"] = "event"
    if code is not None:
        event["event.code"] = code
        event["winlog.event_id"] = code
    if provider is not None:
        event["event.provider"] = provider
        event["winlog.provider_name"] = provider
    guid = braced_guid(document.get("ProviderGuid"))
    if guid is not None:
        event["winlog.provider_guid"] = guid
    if channel is not None:
        event["winlog.channel"] = channel
    computer = _string(document.get("Hostname"))
    if computer is not None:
        event["host.name"] = computer
        event["winlog.computer_name"] = computer
    event["host.os.type"] = os_type_for(provider)
    _add_system_fields(event, document)

    data: dict[str, str] = {}
    for key, value in document.items():
        if key in _METADATA:
            continue
        text = text_value(value)
        if text is not None:
            data[key] = text
            event[_EVENT_DATA + key] = text

    _, mapper = mapping_for(provider, channel)
    if mapper is not None and code is not None:
        mapper(event, data, code)
    return "otrf", event


def _add_system_fields(event: Event, document: Mapping[str, Any]) -> None:
    record_id = as_int(document.get("RecordNumber"))
    if record_id:
        event["winlog.record_id"] = str(record_id)
    version = as_int(document.get("Version"))
    if version:
        event["winlog.version"] = version
    level = as_int(document.get("Level"))
    level_text = level_name(level) if level is not None else None
    if level_text is None:
        severity = document.get("Severity")
        level_text = _SEVERITIES.get(severity) if isinstance(severity, str) else None
    if level_text is not None:
        event["log.level"] = level_text
    task = _string(document.get("Category"))
    if task is not None:
        event["winlog.task"] = task
    opcode = _string(document.get("Opcode"))
    if opcode is not None:
        event["winlog.opcode"] = opcode
    keywords = as_int(document.get("Keywords"))
    if keywords:
        # NXLog writes the 64-bit mask as a signed integer.
        keywords &= 0xFFFFFFFFFFFFFFFF
        names = keyword_names(keywords)
        if names:
            event["winlog.keywords"] = names
        outcome = outcome_of(keywords)
        if outcome is not None:
            event["event.outcome"] = outcome
    pid = as_int(document.get("ExecutionProcessID"))
    if pid:
        event["winlog.process.pid"] = pid
    thread = as_int(document.get("ThreadID"))
    if thread:
        event["winlog.process.thread.id"] = thread
    for source, target in (
        ("UserID", "winlog.user.identifier"),
        ("AccountName", "winlog.user.name"),
        ("Domain", "winlog.user.domain"),
        ("AccountType", "winlog.user.type"),
    ):
        value = _string(document.get(source))
        if value is not None:
            event[target] = value
    activity = braced_guid(document.get("ActivityID"))
    if activity is not None:
        event["winlog.activity_id"] = activity
    message = text_value(document.get("Message"))
    if message is not None:
        event["message"] = message
