"""ECS documents (Elastic Defend, Winlogbeat 7/8, Elastic Agent's windows/system integrations) -> flat events.

An ingested ECS document already says what Elastic's pipelines say; it passes through flattened and unchanged,
with only what rules need and the shipper leaves out filled in:

* ``host.os.type: windows`` on a Windows event log document (``winlog.*`` present, or ``agent.type``
  winlogbeat) that lacks it: Elastic sets it from the shipper's host metadata, not from the event;
* ``process.name`` / ``process.parent.name`` from the executable path when missing;
* ``@timestamp`` as ISO 8601 UTC.

A Winlogbeat document that did not go through an ingest pipeline (Winlogbeat writing to a file or Logstash: it
has ``winlog.*`` but no ``event.module``/``event.category``/``event.ingested``) gets the provider's mapping from
here, exactly as its raw EVTX event would.

Elastic Defend documents (``logs-endpoint.events.*``: :func:`is_elastic_defend_document`) are Elastic's own
endpoint writing ECS; they are kept whole, only names and ``@timestamp`` completed as above. They never get a
``host.os.type`` they do not carry: current endpoints send it, and a document without it (early schema versions)
is left as Elastic would search it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shellwatch.ecs import Event, flatten, flatten_fields
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.providers import mapping_for
from shellwatch.normalize.timestamps import iso_utc
from shellwatch.normalize.windows_event import text_value

ELASTIC_DEFEND_FAMILY: Final = "elastic_defend"

_EVENT_DATA = "winlog.event_data."
_USER_DATA = "winlog.user_data."

# Fields only an ingest pipeline writes: a document holding one has been through it. event.ingested is set by
# the integrations' final pipeline, also on events no categorization table lists.
_INGESTED_MARKERS: Final = ("event.module", "event.category", "event.ingested")
_DEFEND_VALUE = "endpoint"
_DEFEND_DATASET_PREFIX = "endpoint."


def _member(document: Mapping[str, Any], parent: str, child: str) -> Any:
    """``parent.child`` of a document written nested (``{parent: {child: ...}}``) or dotted; ``None`` when absent."""
    dotted = document.get(f"{parent}.{child}")
    if dotted is not None:
        return dotted
    inner = document.get(parent)
    return inner.get(child) if isinstance(inner, Mapping) else None


def is_elastic_defend_document(document: Mapping[str, Any]) -> bool:
    """Whether a (nested or dotted) JSON document was written by Elastic Defend: ``agent.type`` or
    ``event.module`` "endpoint", or an ``endpoint.*`` data stream (``data_stream.dataset`` or ``event.dataset``,
    e.g. ``endpoint.events.process``). Never raises."""
    try:
        if _member(document, "agent", "type") == _DEFEND_VALUE or _member(document, "event", "module") == _DEFEND_VALUE:
            return True
        for parent in ("data_stream", "event"):
            dataset = _member(document, parent, "dataset")
            if isinstance(dataset, str) and dataset.startswith(_DEFEND_DATASET_PREFIX):
                return True
    except Exception:  # an exotic mapping type: not a decoded JSON object of this family
        return False
    return False


def normalize_elastic_defend_document(
    document: Mapping[str, Any], context: SourceContext | None = None, demand: FieldDemand | None = None
) -> Event:
    """An Elastic Defend document, flattened and kept whole: only ``process.name`` / ``process.parent.name``
    (from the executable, when missing) and ``@timestamp`` (as ISO 8601 UTC) are completed. ``context`` is
    accepted for the family contract; nothing is remembered. ``demand``: see :func:`normalize_ecs_document`."""
    del context
    return normalize_ecs_document(document, windows_log=False, demand=demand)


def _demanded_paths(demand: FieldDemand) -> tuple[str, ...]:
    # A demanded name may be completed from its executable.
    paths = set(demand.fields)
    for prefix in ("process", "process.parent"):
        if prefix + ".name" in paths:
            paths.add(prefix + ".executable")
    return tuple(sorted(paths))


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


def normalize_ecs_document(
    document: Mapping[str, Any], *, windows_log: bool, demand: FieldDemand | None = None
) -> Event:
    """Flatten an ECS document, map it if it is an un-ingested Winlogbeat document, and fill in the fields
    rules need (see the module docstring).

    With ``demand``, a document that is not a Windows event log document is read for the demanded fields only
    (and the executables their names are completed from), with the values the full normalization gives them:
    the rest of the document is neither flattened nor copied.
    """
    if demand is not None and not windows_log:
        event = flatten_fields(document, demand.plan("ecs_document", _demanded_paths))
    else:
        event = flatten(document)
    timestamp = event.get("@timestamp")
    if timestamp is not None and not isinstance(timestamp, list):
        moment = iso_utc(timestamp)
        if moment is not None:
            event["@timestamp"] = moment
    mapped_here = False
    if windows_log:
        if not any(marker in event for marker in _INGESTED_MARKERS):
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
    # A keyword in Elasticsearch, and the pipelines set it from winlog.event_id as a string; Winlogbeat 7.0-7.x
    # wrote it as a number.
    event["event.code"] = code
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
    shipped_created = event.get("event.created")
    mapper(event, data, code)
    if event.get("event.created") != shipped_created:
        # The mapper keeps a raw event's System time there, as the sysmon pipeline copies winlog.time_created;
        # a document without winlog.time_created keeps Winlogbeat's own event.created (its read time), if any.
        time_created = iso_utc(event.get("winlog.time_created"))
        if time_created is not None:
            event["event.created"] = time_created
        elif shipped_created is not None:
            event["event.created"] = shipped_created
        else:
            del event["event.created"]
    return True


def path_basename(path: str) -> str | None:
    """The last part of a Windows or POSIX path (after whichever separator comes last); None when empty."""
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
            name = path_basename(executable)
            if name is not None:
                event[name_field] = name
