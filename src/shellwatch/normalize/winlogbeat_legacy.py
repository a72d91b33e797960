"""Winlogbeat 6.x documents -> ECS, through the same provider mappings as raw Windows events.

Before 7.0, Winlogbeat wrote an event's System part at the top level under its own names (``event_id``,
``source_name``, ``log_name``, ``computer_name``, ``record_number``, ``process_id``, ``thread_id``, ``level``,
``keywords``, ``type``...), the event data under ``event_data`` (``user_data``) and the shipper under ``beat.*``;
there is no ``winlog`` object and no ECS field (https://www.elastic.co/guide/en/beats/winlogbeat/6.8/
exported-fields-eventlog.html). This module rebuilds the raw event those fields came from (the evtx package's
rendering of ``<Event>``) and hands it to :func:`shellwatch.normalize.windows_event.normalize_windows_event`, so
a 4688 or a Sysmon 1 shipped by Winlogbeat 6 gets exactly the mapping of the same record read from an EVTX file.

What a raw event cannot carry stays, under the names Winlogbeat 7 gives it (the "Legacy Winlogbeat alias fields"
table, https://www.elastic.co/guide/en/beats/winlogbeat/7.17/exported-fields-eventlog.html, and
``winlogbeat/sys/winevent/event.go`` in elastic/beats): the names Winlogbeat rendered from the provider's message
tables (``level`` -> ``log.level``, ``task`` -> ``winlog.task``, ``opcode``, ``keywords``, ``message``), the account
behind the System SID (``user.name`` -> ``winlog.user.name``...), ``type`` -> ``winlog.api``, ``xml`` ->
``event.original`` and the shipper's ``beat.*`` -> ``agent.*``. Anything else the document holds (``tags``,
``fields.*``, Logstash's ``@version``, ``host.os.*``...) is kept as it is, without overwriting a normalized field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shellwatch.ecs import Event, flatten
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.windows_event import as_int, keyword_names, normalize_windows_event

FAMILY: Final = "winlogbeat"

# 6.x fields the rebuilt raw event carries, read through it: never copied as they are.
_SYSTEM_FIELDS: Final = frozenset(
    (
        "@timestamp",
        "event_id",
        "source_name",
        "log_name",
        "computer_name",
        "record_number",
        "provider_guid",
        "version",
        "process_id",
        "thread_id",
        "activity_id",
        "related_activity_id",
        "user.identifier",
    )
)

# 6.x name -> the field Winlogbeat 7 writes the same value to (Legacy Winlogbeat alias fields; event.go).
_RENAMED: Final = {
    "type": "winlog.api",
    "task": "winlog.task",
    "opcode": "winlog.opcode",
    "message": "message",
    "message_error": "error.message",
    "xml": "event.original",
    "user.name": "winlog.user.name",
    "user.domain": "winlog.user.domain",
    "user.type": "winlog.user.type",
    # Only in events read from event tracing (.etl) logs; event.go names them under winlog.
    "processor_id": "winlog.processor_id",
    "session_id": "winlog.session_id",
    "kernel_time": "winlog.kernel_time",
    "user_time": "winlog.user_time",
    "processor_time": "winlog.processor_time",
    # The shipper: libbeat 7 moved beat.* to agent.* (beat.timezone to event.timezone). beat.name is aliased to
    # host.name there, but host.name is the event's computer here, as Winlogbeat 7 sets it; agent.name is where
    # later versions keep the Beat's name.
    "beat.name": "agent.name",
    "beat.hostname": "agent.hostname",
    "beat.version": "agent.version",
    "beat.timezone": "event.timezone",
}

# Keyword name -> its bit in the Keywords mask, for the standard names (winmeta.xml) event.outcome is read from.
_KEYWORD_BITS: Final = {name: 1 << bit for bit in range(64) for name in keyword_names(1 << bit)}

_DATA_PREFIXES: Final = ("event_data.", "user_data.")

# Read by normalize_winlogbeat6 itself, never copied as they are.
_READ_HERE: Final = frozenset(("level", "keywords", "host", "host.name"))

_PLACEHOLDER_USER_DATA = "UserData"
"""The element name given to user data whose ``xml_name`` the document does not say (then not reported)."""


def is_winlogbeat6_record(document: Mapping[str, Any]) -> bool:
    """Whether a decoded JSON object is a Winlogbeat 6.x (or 5.x) document: a numeric ``event_id`` beside
    ``source_name`` or ``log_name``, and no ``winlog`` object (Winlogbeat 7 and later). Raw Windows events
    (``Event``), OTRF/NXLog records (``EventID``, ``SourceName``) and ECS documents never have these names."""
    try:
        if "event_id" not in document or "winlog" in document or "Event" in document:
            return False
        if "source_name" not in document and "log_name" not in document:
            return False
        event_id = document["event_id"]
        return type(event_id) is not bool and as_int(event_id) is not None
    except Exception:  # an exotic mapping type: not a decoded JSON object of this family
        return False


def normalize_winlogbeat6(document: Mapping[str, Any], context: SourceContext | None = None) -> Event:
    """A Winlogbeat 6.x document -> the flat ECS event its raw Windows event gives, plus the 6.x fields a raw
    event cannot carry under their Winlogbeat 7 names (see the module docstring). Never raises; a field that
    cannot be read is left out. ``context`` is accepted for the family contract; nothing is remembered."""
    del context
    parts = _Parts(document)
    _, event = normalize_windows_event(_raw_event(parts))
    fields = parts.others
    if parts.xml_name is None:
        event.pop("winlog.user_data.xml_name", None)

    for name, target in _RENAMED.items():
        value = fields.get(name)
        if value is not None and target not in event:
            event[target] = value
    level = fields.get("level")
    if isinstance(level, str) and level and "log.level" not in event:
        # event.go lower-cases the rendered level name.
        event["log.level"] = level.lower()
    keywords = fields.get("keywords")
    if isinstance(keywords, str):
        keywords = [keywords]
    if isinstance(keywords, list) and keywords:
        # The names Winlogbeat rendered, provider-specific ones included: what Winlogbeat 7 writes there too.
        event["winlog.keywords"] = keywords
    task = event.get("winlog.task")
    if isinstance(task, str) and task and "event.action" not in event:
        # Winlogbeat 7 sets event.action to the task name; the provider's pipeline replaces it when it maps the
        # event (eventlog.go ToEvent).
        event["event.action"] = task

    _keep_the_rest(event, fields)
    return event


class _Parts:
    """A 6.x document's fields by dotted path (nested and dotted keys alike), split once: event data, user data
    (and its element name), everything else. A part nested deeper than the interpreter can follow is left out."""

    __slots__ = ("event_data", "others", "user_data", "xml_name")

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.event_data: dict[str, Any] = {}
        self.user_data: dict[str, Any] = {}
        self.others: Event = {}
        self.xml_name: str | None = None
        others = self.others
        for key, value in document.items():
            kind = type(value)
            # Most top-level fields: a plain value under a plain name.
            if (kind is str or kind is int) and type(key) is str and not key.startswith(_DATA_PREFIXES):
                others.setdefault(key, value)
                continue
            if type(key) is not str:
                continue
            if kind is dict or isinstance(value, Mapping):
                if key == "event_data":
                    self._data(self.event_data, value)
                elif key == "user_data":
                    self._data(self.user_data, value)
                else:
                    self._add_flattened(key, value)
            elif kind is list:
                self._add_flattened(key, value)
            else:
                self._add(key, value)
        xml_name = self.user_data.pop("xml_name", None)
        self.xml_name = _text(xml_name)

    def _data(self, target: dict[str, Any], section: Mapping[str, Any]) -> None:
        # Winlogbeat writes event data values as strings; anything else is flattened under the field's name.
        for name, value in section.items():
            if type(value) is str and type(name) is str and name:
                target.setdefault(name, value)
                continue
            if type(name) is not str or not name:
                continue
            if isinstance(value, Mapping | list):
                for path, leaf in _flattened(name, value).items():
                    target.setdefault(path, leaf)
            else:
                target.setdefault(name, value)

    def _add_flattened(self, key: str, value: Any) -> None:
        for path, leaf in _flattened(key, value).items():
            self._add(path, leaf)

    def _add(self, path: str, value: Any) -> None:
        if path.startswith("event_data."):
            if len(path) > 11:
                self.event_data.setdefault(path[11:], value)
        elif path.startswith("user_data."):
            if len(path) > 10:
                self.user_data.setdefault(path[10:], value)
        else:
            self.others.setdefault(path, value)


def _flattened(key: str, value: Any) -> Event:
    try:
        return flatten({key: value})
    except RecursionError:
        return {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _data_section(values: dict[str, Any]) -> dict[str, Any]:
    """Event (user) data as the evtx package renders it: ``{name: value}``; when a name would read as the
    renderer's own (``Data``, ``#attributes``), every value as a ``<Data Name="...">`` element instead, so any
    name keeps its value and its position."""
    if "Data" not in values and "#attributes" not in values:
        return values
    return {"Data": [{"#attributes": {"Name": name}, "#text": value} for name, value in values.items()]}


def _keywords_mask(keywords: Any) -> int | None:
    names = [keywords] if isinstance(keywords, str) else keywords if isinstance(keywords, list) else []
    mask = 0
    for name in names:
        if isinstance(name, str):
            mask |= _KEYWORD_BITS.get(name, 0)
    return mask or None


def _number(value: Any) -> Any:
    """A System number as the document gives it (an int or its text), or None."""
    return value if (type(value) is int or isinstance(value, str)) else None


def _raw_event(parts: _Parts) -> dict[str, Any]:
    """The evtx-package rendering of the Windows event a Winlogbeat 6 document was made from."""
    get = parts.others.get
    provider: dict[str, Any] = {}
    if _text(get("source_name")) is not None:
        provider["Name"] = get("source_name")
    if _text(get("provider_guid")) is not None:
        provider["Guid"] = get("provider_guid")
    system: dict[str, Any] = {"Provider": {"#attributes": provider}}
    event_id = _number(get("event_id"))
    if event_id is not None:
        system["EventID"] = event_id
    version = _number(get("version"))
    if version is not None:
        system["Version"] = version
    mask = _keywords_mask(get("keywords"))
    if mask is not None:
        system["Keywords"] = f"0x{mask:016x}"
    timestamp = get("@timestamp")
    if timestamp is not None and not isinstance(timestamp, list):
        system["TimeCreated"] = {"#attributes": {"SystemTime": timestamp}}
    record = _number(get("record_number"))
    if record is not None:
        system["EventRecordID"] = record
    correlation = {
        attribute: get(name)
        for attribute, name in (("ActivityID", "activity_id"), ("RelatedActivityID", "related_activity_id"))
        if _text(get(name)) is not None
    }
    if correlation:
        system["Correlation"] = {"#attributes": correlation}
    execution = {
        attribute: get(name)
        for attribute, name in (("ProcessID", "process_id"), ("ThreadID", "thread_id"))
        if _number(get(name)) is not None
    }
    if execution:
        system["Execution"] = {"#attributes": execution}
    if _text(get("log_name")) is not None:
        system["Channel"] = get("log_name")
    if _text(get("computer_name")) is not None:
        system["Computer"] = get("computer_name")
    if _text(get("user.identifier")) is not None:
        system["Security"] = {"#attributes": {"UserID": get("user.identifier")}}

    root: dict[str, Any] = {"System": system}
    if parts.event_data:
        root["EventData"] = _data_section(parts.event_data)
    if parts.user_data or parts.xml_name is not None:
        root["UserData"] = {parts.xml_name or _PLACEHOLDER_USER_DATA: _data_section(parts.user_data)}
    return {"Event": root}


def _keep_the_rest(event: Event, fields: Event) -> None:
    """Copy every field no step above read, as it is, where the normalized event has none."""
    host_name = fields.get("host.name", fields.get("host"))
    for path, value in fields.items():
        if path in _SYSTEM_FIELDS or path in _RENAMED or path in _READ_HERE or path in event:
            continue
        event[path] = value
    # The 6.x host.name (or Logstash's host string) names the shipping host, as beat.hostname does; host.name
    # is the event's computer here, as for the raw event. The shipper's name is kept as agent.hostname.
    if isinstance(host_name, str) and host_name and "agent.hostname" not in event:
        event["agent.hostname"] = host_name
