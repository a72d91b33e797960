"""Raw Windows events (the evtx package's JSON rendering of ``<Event>``) -> the fields Winlogbeat collects.

A raw EVTX or XML event has no shipper in front of it, so this module does what Winlogbeat's collection does
(``winlogbeat/sys/winevent/event.go`` and ``maputil.go`` in elastic/beats) before the provider's ingest
mapping runs: ``winlog.*`` from the System part,
``event.code``/``event.provider``/``event.outcome``/``log.level``, ``host.name``, and every EventData
(UserData) value as a string under ``winlog.event_data.*`` (``winlog.user_data.*``). It also sets
``host.os.type``, which Elastic leaves to the shipper's host metadata.

What Winlogbeat takes from the publisher's message files and this module cannot: ``message``, ``winlog.task``
(except task 0, "None"), ``event.action`` of unmapped events, keyword names beyond the standard ones, and the
account name behind ``winlog.user.identifier``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from shellwatch.ecs import Event
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.providers import mapping_for, os_type_for
from shellwatch.normalize.timestamps import iso_utc

_EVENT_DATA = "winlog.event_data."
_USER_DATA = "winlog.user_data."

# The standard values of winmeta.xml that Winlogbeat falls back to (winlogbeat/sys/winevent/winmeta.go).
_KEYWORDS: Final = (
    (0x1000000000000, "Response Time"),
    (0x4000000000000, "WDI Diag"),
    (0x8000000000000, "SQM"),
    (0x10000000000000, "Audit Failure"),
    (0x20000000000000, "Audit Success"),
    (0x40000000000000, "Correlation Hint"),
    (0x80000000000000, "Classic"),
)
_AUDIT_FAILURE = 0x10000000000000
_AUDIT_SUCCESS = 0x20000000000000
_OPCODES: Final = {
    0: "Info",
    1: "Start",
    2: "Stop",
    3: "DCStart",
    4: "DCStop",
    5: "Extension",
    6: "Reply",
    7: "Resume",
    8: "Suspend",
    9: "Send",
}
# log.level: Winlogbeat lower-cases the level name; level 0 ("Log Always") shows as Information.
_LEVELS: Final = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}


def keyword_names(keywords: int) -> list[str]:
    """The standard keyword names set in a Keywords bit mask, in bit order."""
    return [name for mask, name in _KEYWORDS if keywords & mask]


def outcome_of(keywords: int) -> str | None:
    """``event.outcome`` as Winlogbeat derives it from the audit keywords."""
    if keywords & _AUDIT_FAILURE:
        return "failure"
    if keywords & _AUDIT_SUCCESS:
        return "success"
    return None


def level_name(level: int) -> str | None:
    """``log.level`` for a numeric event level."""
    return _LEVELS.get(level)


def opcode_name(opcode: int) -> str | None:
    """``winlog.opcode`` for a standard numeric opcode."""
    return _OPCODES.get(opcode)


def as_int(value: Any) -> int | None:
    """An integer System value as rendered (int, decimal or ``0x`` hex text), else ``None``."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text[:2] in ("0x", "0X") else int(text)
        except ValueError:
            return None
    return None


def braced_guid(value: Any) -> str | None:
    """A GUID in Windows' rendering, with braces (the evtx package renders GUIDs without them)."""
    if not isinstance(value, str) or not value:
        return None
    return value if value[0] == "{" else "{" + value + "}"


def text_value(value: Any) -> str | None:
    """An event data value as the string Winlogbeat stores, or ``None`` for an empty one (Winlogbeat drops
    empty values). CRLF becomes LF and trailing newlines go, as ``RemoveWindowsLineEndings`` does."""
    kind = type(value)
    if kind is str:
        text: str = value
    elif kind is int:
        return str(value)
    elif kind is bool:
        return "true" if value else "false"
    elif kind is float:
        return repr(value)
    elif kind is dict:
        inner = value.get("#text")
        if isinstance(inner, list):
            inner = "".join(item for item in inner if isinstance(item, str))
        return text_value(inner) if inner is not None and type(inner) is not dict else None
    else:
        return None
    if not text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if text[-1] == "\n":
        text = text.rstrip("\n")
    return text


def _unnamed_values(data: Any) -> list[Any]:
    # Unnamed <Data> elements: evtx renders one as a value, several as {"#text": [...]} or a list.
    if isinstance(data, dict):
        data = data.get("#text")
    if isinstance(data, list):
        return data
    return [] if data is None else [data]


def _data_name(item: Any) -> str | None:
    # A <Data Name="..."> left as an element ({"#attributes": {"Name": ...}, "#text": ...}) by a renderer
    # that does not fold names into keys.
    if type(item) is dict:
        attributes = item.get("#attributes")
        if type(attributes) is dict:
            name = attributes.get("Name")
            if isinstance(name, str) and name:
                return name
    return None


def event_data_strings(section: Mapping[str, Any], event: Event | None = None, prefix: str = "") -> dict[str, str]:
    """An EventData section by field name, values as strings; unnamed values become ``param1``, ``param2``...
    numbered by position as Winlogbeat numbers them, empty values left out. With ``event``, each field is also
    written there under ``prefix`` (one pass for both)."""
    out: dict[str, str] = {}
    position = 0
    for key, value in section.items():
        if key == "Data":
            for item in _unnamed_values(value):
                position += 1
                text = text_value(item)
                if text is not None:
                    name = _data_name(item) or f"param{position}"
                    if name not in out:
                        out[name] = text
                        if event is not None:
                            event[prefix + name] = text
            continue
        if key == "#attributes":
            continue
        position += 1
        # Most values are non-empty strings without line breaks: taken as they are.
        if type(value) is str and value and value[-1] != "\n" and "\r" not in value:
            text = value
        else:
            text = text_value(value)
            if text is None:
                continue
        out[key] = text
        if event is not None:
            event[prefix + key] = text
    return out


def user_data_strings(section: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """A UserData section: the name of its single child element (``winlog.user_data.xml_name``) and that
    element's children as strings."""
    for name, element in section.items():
        if name == "#attributes":
            continue
        if isinstance(element, dict):
            return name, event_data_strings(element)
        return name, {}
    return None, {}


def _attributes(element: Any) -> Mapping[str, Any]:
    if isinstance(element, dict):
        attributes = element.get("#attributes")
        if isinstance(attributes, dict):
            return attributes
    return {}


def _event_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("#text")
    number = as_int(value)
    return str(number) if number is not None else None


def event_parts(
    document: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], Mapping[str, Any], str | None, str | None, str | None]:
    """The parts of a raw Windows event everything else hangs on: its root element, ``System``, the provider's
    attributes, and the provider name, channel and event id as the normalizer reads them (each ``None`` when
    absent or unusable)."""
    root = document.get("Event", document)
    if not isinstance(root, dict):
        root = {}
    system = root.get("System")
    if not isinstance(system, dict):
        system = {}
    # _attributes and _event_id, written out: this runs for every event a hunt reads.
    provider_attributes: Mapping[str, Any] = _NO_ATTRIBUTES
    provider_element = system.get("Provider")
    if isinstance(provider_element, dict):
        attributes = provider_element.get("#attributes")
        if isinstance(attributes, dict):
            provider_attributes = attributes
    provider = provider_attributes.get("Name") or provider_attributes.get("EventSourceName")
    if not isinstance(provider, str):
        provider = None
    channel = system.get("Channel")
    if not isinstance(channel, str) or not channel:
        channel = None
    event_id = system.get("EventID")
    code = str(event_id) if type(event_id) is int else _event_id(event_id)
    return root, system, provider_attributes, provider, channel, code


_NO_ATTRIBUTES: Final[Mapping[str, Any]] = MappingProxyType({})


def identity_fields(provider: str | None, channel: str | None, code: str | None) -> dict[str, Any]:
    """The fields :func:`normalize_windows_event` derives from the provider, channel and event id alone, with
    ``None`` for those it leaves unset; no later step (provider mappers included) writes them again."""
    return {
        "event.kind": "event",
        "event.code": code,
        "winlog.event_id": code,
        "event.provider": provider or None,
        "winlog.provider_name": provider or None,
        "winlog.channel": channel,
        "host.os.type": os_type_for(provider),
    }


SYSTEM_FIELDS: Final = frozenset(
    (
        "@timestamp",
        "event.kind",
        "event.code",
        "winlog.event_id",
        "event.provider",
        "winlog.provider_name",
        "winlog.provider_guid",
        "winlog.channel",
        "host.name",
        "winlog.computer_name",
        "host.os.type",
        "winlog.record_id",
        "winlog.version",
        "log.level",
        "winlog.opcode",
        "winlog.task",
        "winlog.keywords",
        "event.outcome",
        "winlog.process.pid",
        "winlog.process.thread.id",
        "winlog.user.identifier",
        "winlog.activity_id",
        "winlog.related_activity_id",
    )
)
"""Every field :func:`normalize_windows_event` can write besides ``winlog.event_data.*`` and
``winlog.user_data.*`` before the provider's mapper runs: an event no mapper maps has no other field."""

DATA_PREFIXES: Final = (_EVENT_DATA, _USER_DATA)

# System values repeat from event to event (a log has a handful of providers, levels and keyword masks):
# what they give is computed once per distinct combination. Bounded: crafted logs can vary them at will.
_CACHE_LIMIT = 4096
_HEADS: dict[tuple[Any, ...], tuple[tuple[str, Any], ...]] = {}
_NUMBERS: dict[tuple[Any, ...], tuple[tuple[tuple[str, Any], ...], tuple[str, ...], str | None]] = {}


def _head(
    provider: str | None, channel: str | None, code: str | None, guid: Any, computer: Any
) -> tuple[tuple[str, Any], ...]:
    # Types belong to the key: 1, 1.0 and True are equal keys but not equal values here.
    key: tuple[Any, ...] = (provider, channel, code, guid, computer, type(guid), type(computer))
    try:
        cached = _HEADS.get(key)
    except TypeError:  # an unhashable value where a scalar belongs
        cached = None
        key = ()
    if cached is not None:
        return cached
    items: list[tuple[str, Any]] = [("event.kind", "event")]
    if code is not None:
        items += [("event.code", code), ("winlog.event_id", code)]
    if provider:
        items += [("event.provider", provider), ("winlog.provider_name", provider)]
    braced = braced_guid(guid)
    if braced is not None:
        items.append(("winlog.provider_guid", braced))
    if channel is not None:
        items.append(("winlog.channel", channel))
    if isinstance(computer, str) and computer:
        items += [("host.name", computer), ("winlog.computer_name", computer)]
    items.append(("host.os.type", os_type_for(provider)))
    head = tuple(items)
    if key:
        if len(_HEADS) >= _CACHE_LIMIT:
            _HEADS.clear()
        _HEADS[key] = head
    return head


def _numbers(
    version: Any, level: Any, opcode: Any, task: Any, keywords: Any
) -> tuple[tuple[tuple[str, Any], ...], tuple[str, ...], str | None]:
    """The System numbers after the record id and before the execution ids: version, level, opcode and task
    fields; the keyword names; the outcome."""
    key: tuple[Any, ...] = (
        version,
        level,
        opcode,
        task,
        keywords,
        type(version),
        type(level),
        type(opcode),
        type(task),
        type(keywords),
    )
    try:
        cached = _NUMBERS.get(key)
    except TypeError:
        cached = None
        key = ()
    if cached is not None:
        return cached
    items: list[tuple[str, Any]] = []
    # Winlogbeat adds these only when non-zero (AddOptional).
    version_number = as_int(version)
    if version_number:
        items.append(("winlog.version", version_number))
    level_number = as_int(level)
    if level_number is not None:
        name = level_name(level_number)
        if name is not None:
            items.append(("log.level", name))
    opcode_number = as_int(opcode)
    if opcode_number is not None:
        opcode_text = opcode_name(opcode_number)
        if opcode_text is not None:
            items.append(("winlog.opcode", opcode_text))
    if as_int(task) == 0:
        items.append(("winlog.task", "None"))
    names: tuple[str, ...] = ()
    outcome = None
    mask = as_int(keywords)
    if mask:
        names = tuple(keyword_names(mask))
        outcome = outcome_of(mask)
    numbers = (tuple(items), names, outcome)
    if key:
        if len(_NUMBERS) >= _CACHE_LIMIT:
            _NUMBERS.clear()
        _NUMBERS[key] = numbers
    return numbers


def _named_strings(section: Mapping[str, Any]) -> dict[str, str]:
    """:func:`event_data_strings` of a section without unnamed ``Data`` and ``#attributes``: every key is a
    field name, so positions do not matter."""
    out: dict[str, str] = {}
    for key, value in section.items():
        # Most values are non-empty strings without line breaks: taken as they are.
        if type(value) is str and value and value[-1] != "\n" and "\r" not in value:
            out[key] = value
        else:
            text = text_value(value)
            if text is not None:
                out[key] = text
    return out


def normalize_windows_event(document: Mapping[str, Any], demand: FieldDemand | None = None) -> tuple[str, Event]:
    """A raw Windows event ``{"Event": {"System": ..., "EventData": ...}}`` -> (source family, ECS event).

    With ``demand``, the System fields, the copies of the event and user data under ``winlog.*`` and the provider
    mapper's steps that write no demanded field (nor one a step left in reads) are left out
    (:mod:`shellwatch.normalize.demand`).
    """
    root, system, provider_attributes, provider, channel, code = event_parts(document)
    steps = _ALL_STEPS if demand is None else demand.plan("windows_event", _plan)
    get = system.get

    event: Event = {}
    if steps.timestamp:
        timestamp = iso_utc(_attributes(get("TimeCreated")).get("SystemTime"))
        if timestamp is not None:
            event["@timestamp"] = timestamp
    event.update(_head(provider, channel, code, provider_attributes.get("Guid"), get("Computer")))

    if steps.numbers:
        record_id = as_int(get("EventRecordID"))
        if record_id:
            # winlog.record_id is a keyword: the pipelines convert it to a string.
            event["winlog.record_id"] = str(record_id)
        items, keyword_list, outcome = _numbers(
            get("Version"), get("Level"), get("Opcode"), get("Task"), get("Keywords")
        )
        if items:
            event.update(items)
        if keyword_list:
            event["winlog.keywords"] = list(keyword_list)
        if outcome is not None:
            event["event.outcome"] = outcome
        execution = _attributes(get("Execution"))
        if execution:
            pid = as_int(execution.get("ProcessID"))
            if pid:
                event["winlog.process.pid"] = pid
            thread = as_int(execution.get("ThreadID"))
            if thread:
                event["winlog.process.thread.id"] = thread
    if steps.identities:
        _add_system_identities(event, system)

    data: dict[str, str] = {}
    event_data = root.get("EventData")
    if isinstance(event_data, dict):
        if "Data" in event_data or "#attributes" in event_data:
            data = event_data_strings(event_data, event if steps.event_data else None, _EVENT_DATA)
        else:
            data = _named_strings(event_data)
            if steps.event_data:
                # The event holds no event data field yet: the same keys, values and order as writing each.
                event.update({_EVENT_DATA + key: text for key, text in data.items()})
    user_data = root.get("UserData")
    if isinstance(user_data, dict):
        xml_name, user_fields = user_data_strings(user_data)
        if steps.user_data:
            for key, value in user_fields.items():
                event[_USER_DATA + key] = value
            if xml_name is not None:
                event[_USER_DATA + "xml_name"] = xml_name
        if not data:
            data = user_fields

    family, mapper = mapping_for(provider, channel)
    if mapper is not None and code is not None:
        mapper(event, data, code, demand)
    return family, event


class _Steps(NamedTuple):
    """Which optional steps of :func:`normalize_windows_event` run (see :mod:`shellwatch.normalize.demand`)."""

    timestamp: bool
    numbers: bool
    identities: bool
    event_data: bool
    user_data: bool


_ALL_STEPS = _Steps(*(True,) * len(_Steps._fields))

# What each optional step writes, and what the provider mappers read of it: the Sysmon mapper keeps the System time
# as event.created, and takes user.id from winlog.user.identifier.
_TIMESTAMP_OUTPUTS: Final = ("@timestamp", "event.created")
_NUMBER_OUTPUTS: Final = (
    "winlog.record_id",
    "winlog.version",
    "log.level",
    "winlog.opcode",
    "winlog.task",
    "winlog.keywords",
    "event.outcome",
    "winlog.process.pid",
    "winlog.process.thread.id",
)
_IDENTITY_OUTPUTS: Final = ("winlog.user.identifier", "winlog.activity_id", "winlog.related_activity_id", "user.")


def _plan(demand: FieldDemand) -> _Steps:
    wants = demand.wants
    return _Steps(
        timestamp=wants(_TIMESTAMP_OUTPUTS),
        numbers=wants(_NUMBER_OUTPUTS),
        identities=wants(_IDENTITY_OUTPUTS),
        event_data=wants((_EVENT_DATA,)),
        user_data=wants((_USER_DATA,)),
    )


def _add_system_identities(event: Event, system: Mapping[str, Any]) -> None:
    user = _attributes(system.get("Security")).get("UserID")
    if isinstance(user, str) and user:
        event["winlog.user.identifier"] = user
    correlation = system.get("Correlation")
    if correlation is None:
        return
    attributes = _attributes(correlation)
    activity = braced_guid(attributes.get("ActivityID"))
    if activity is not None:
        event["winlog.activity_id"] = activity
    related = braced_guid(attributes.get("RelatedActivityID"))
    if related is not None:
        event["winlog.related_activity_id"] = related
