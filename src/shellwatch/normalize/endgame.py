"""Endgame telemetry (index pattern ``endgame-*``) -> ECS events.

Endgame records come in two shapes, and both are read here:

* **Legacy Endgame schema** (the sensor's own event records, as in the ``eql`` package's ``test_data.json``): flat
  objects with ``event_type`` (``process``, ``file``, ``network``, ``registry``, ``dns``...), ``event_type_full``,
  ``event_subtype_full`` (``creation_event``, ``termination_event``, ``already_running``, ``file_create_event``...),
  ``opcode``, a Windows FILETIME ``timestamp``, ``pid``/``ppid``, ``unique_pid``/``unique_ppid``, ``process_name``,
  ``process_path``, ``command_line``, ``parent_process_name``, ``parent_process_path``, ``user_name``,
  ``user_domain``, ``md5``, ``original_file_name``... They are mapped to ECS here (table in
  ../shared/reference/sources/MAPPING.md §3) and every original field is kept under ``endgame.*``, the namespace
  Elastic's Endgame index uses.
* **ECS-shaped Endgame documents** (Endgame streaming into Elasticsearch: ECS fields plus an ``endgame`` object,
  ``event.module: endgame``): passed through flattened, completing only what rules need and the document leaves out
  (``@timestamp`` as ISO 8601, ``host.os.type``, ``event.category``/``event.type`` from the Endgame subtype,
  ``process.name``/``process.parent.name``). A value the document has is never replaced: an Endgame document whose
  ``event.type`` is the pre-ECS-1.4 ``process_start`` keeps it, and ``event.type == "start"`` does not match it,
  exactly as in Elasticsearch.

Where the mapping decides:

* ``event.type`` from the subtype: ``creation_event`` (opcode 1) -> ``start``, ``termination_event`` (opcode 2) ->
  ``end``, ``already_running`` (opcode 3) -> ``info``: a process that was running when the sensor started is
  reported, not started, so a rule on process starts must not fire on it. Elastic Defend, Endgame's successor,
  writes exactly that for the same subtype (elastic/endpoint-package
  ``schemas/examples/v1/process_already_running_windows.json``: ``event.action: already_running``,
  ``event.type: ["info"]``), and Kibana's resolver treats ECS ``info`` as the counterpart of Endgame's
  ``already_running`` (elastic/kibana ``x-pack/plugins/security_solution/common/endpoint/models/event.ts``,
  ``isProcessRunning``). File and registry subtypes that name their operation (``file_create_event`` ->
  ``creation``...) get the ECS type of that operation; network and DNS subtypes get none.
* ``event.category`` from ``event_type``; DNS requests are ``network``, as Endgame's own ECS output files them
  (elastic/kibana ``x-pack/plugins/security_solution/public/common/demo_data/endgame_ecs/dns.ts``).
* ``event.action`` is the subtype, ``event.module``/``event.dataset`` are ``endgame``/``esensor``: what Endgame's
  ECS output writes (same folder, ``creation.ts``). ``event.sequence`` is ``serial_event_id``, as the resolver
  pairs them (``eventSequence`` in ``event.ts``).
* ``process.entity_id``/``process.parent.entity_id`` are ``unique_pid``/``unique_ppid`` as strings; 0 means "no
  parent known" and gives none (the resolver's ``entityId``/``parentEntityId`` do the same).
* ``process.name``/``process.parent.name`` come from the vendor's ``process_name``/``parent_process_name``, and only
  when those are absent from the last path segment (Endgame names a process itself; its name can differ from the
  file's, e.g. after a rename).
* ``host.os.type``: the legacy schema carries no operating system and no host name, so the type is read from the
  record's own evidence, checked in this order: a Windows path (``C:\\...``, ``\\\\server\\...``, ``\\??\\``,
  ``\\Device\\``, ``\\SystemRoot\\``, ``\\REGISTRY\\``), a registry event, a Windows SID (``S-1-...``) or the
  ``NT AUTHORITY`` domain -> ``windows``; otherwise an absolute POSIX path -> ``macos`` under the macOS system
  trees (``/Applications/``, ``/System/``, ``/Library/``, ``/Users/``, ``/private/``, ``/Volumes/``), else
  ``linux`` (Endgame ran on those three systems only). A record with no such evidence (the ``System Idle Process``,
  pid 0) gets no ``host.os.type``. An ECS-shaped document's ``host.os.platform``/``family``/``name``/``full``
  decide first (Endgame's ECS output has ``host.os.platform: windows`` and no ``host.os.type``), then the same
  evidence read from its ECS and ``endgame.*`` fields.
* ``@timestamp`` from the FILETIME (100 ns ticks since 1601-01-01 UTC), rendered with its 7 fractional digits as
  Windows renders ``SystemTime``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, TypeGuard

from shellwatch.ecs import Event, flatten
from shellwatch.normalize.command_line import command_line_to_argv
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.conversions import es_convert_ip, es_convert_long, whole_number
from shellwatch.normalize.ecs_document import path_basename
from shellwatch.normalize.timestamps import iso_utc

FAMILY: Final = "endgame"

_NAMESPACE = "endgame."
_SCALARS: Final = frozenset((str, int, float, bool, type(None)))


# FILETIME counts 100 ns ticks from 1601-01-01 UTC; naive here, and rendered with a Z.
_FILETIME_EPOCH: Final = datetime(1601, 1, 1)
_FILETIME_TICKS_PER_SECOND = 10_000_000

# event_type -> ECS event.category (ECS has no dns category: Endgame's ECS output files DNS under network).
_CATEGORIES: Final = {
    "process": "process",
    "file": "file",
    "network": "network",
    "dns": "network",
    "registry": "registry",
    "image_load": "library",
}

# event_subtype_full -> ECS event.type.
_SUBTYPE_TYPES: Final = {
    "creation_event": "start",
    "termination_event": "end",
    "already_running": "info",
    "file_create_event": "creation",
    "file_delete_event": "deletion",
    "file_modify_event": "change",
    "file_rename_event": "change",
    "registry_modify_event": "change",
}

# Process opcodes, read only when a process record has no subtype this module knows.
_PROCESS_OPCODE_TYPES: Final = {1: "start", 2: "end", 3: "info"}

_WINDOWS_PATH_PREFIXES: Final = ("\\\\", "\\??\\", "\\device\\", "\\systemroot\\", "\\registry\\")
_MACOS_PATH_PREFIXES: Final = ("/applications/", "/system/", "/library/", "/users/", "/private/", "/volumes/")

# Legacy fields holding a path, in the order their evidence is read.
_LEGACY_PATH_FIELDS: Final = (
    "process_path",
    "parent_process_path",
    "file_path",
    "image_path",
    "registry_path",
    "key_path",
)
_ECS_PATH_FIELDS: Final = (
    "process.executable",
    "process.parent.executable",
    "file.path",
    "dll.path",
    "registry.path",
    "endgame.process_path",
    "endgame.parent_process_path",
    "endgame.file_path",
    "endgame.image_path",
    "endgame.registry_path",
    "endgame.key_path",
)
_ECS_OS_NAME_FIELDS: Final = ("host.os.platform", "host.os.family", "host.os.name", "host.os.full")


# ------------------------------------------------------------------------------------------------------------
# Recognition


def is_endgame_record(document: Mapping[str, Any]) -> bool:
    """Whether a decoded JSON object (or CSV row) is an Endgame record: legacy schema or ECS-shaped. Never raises."""
    try:
        return _is_legacy_record(document) or _is_ecs_document(document)
    except Exception:  # attacker-shaped input: not recognized rather than fatal
        return False


def _is_legacy_record(document: Mapping[str, Any]) -> bool:
    if not isinstance(document.get("event_subtype_full"), str):
        return False
    if isinstance(document.get("event_type_full"), str):
        return True
    return isinstance(document.get("event_type"), str) and "unique_pid" in document


def _is_ecs_document(document: Mapping[str, Any]) -> bool:
    endgame = document.get("endgame")
    if _is_object(endgame) and endgame:
        return True
    event = document.get("event")
    if _is_object(event) and _holds(event.get("module"), "endgame"):
        return True
    if _holds(document.get("event.module"), "endgame"):
        return True
    return _has_dotted_namespace(document)


def _has_dotted_namespace(document: Mapping[str, Any]) -> bool:
    # Runs on every ECS document a hunt reads: one join and one substring search beat a loop over the keys.
    try:
        return "\x00endgame." in "\x00" + "\x00".join(document)
    except TypeError:  # a key that is not a string
        return any(type(key) is str and key.startswith(_NAMESPACE) for key in document)


def _is_object(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)


def _holds(value: Any, wanted: str) -> bool:
    if isinstance(value, list):
        return wanted in value
    return bool(value == wanted)


# ------------------------------------------------------------------------------------------------------------
# Normalization


def normalize_endgame(document: Mapping[str, Any], context: SourceContext) -> Event:
    """The flat ECS event of an Endgame record (see the module docstring). Never raises: a field that cannot be
    read is left out. ``context`` is unused: an Endgame record names its parent itself."""
    del context
    try:
        if _is_legacy_record(document) or not _is_ecs_document(document):
            return _normalize_legacy_record(document)
        return _normalize_ecs_document(document)
    except Exception as exc:  # a defect costs one record's mapping, not the hunt; the content is still kept
        event = _vendor_namespace(document)
        # Marked as Elastic's pipelines mark the documents they fail on.
        event["event.kind"] = "pipeline_error"
        event["error.message"] = f"Endgame record could not be mapped ({type(exc).__name__}); kept under endgame.*"
        return event


def _normalize_legacy_record(document: Mapping[str, Any]) -> Event:
    event: Event = {}
    timestamp = _filetime_iso(document.get("timestamp"))
    if timestamp is None:
        timestamp = _iso_text(document.get("timestamp_utc"))
    if timestamp is not None:
        event["@timestamp"] = timestamp

    event_type = _text(document.get("event_type"))
    subtype = _text(document.get("event_subtype_full"))
    event["event.kind"] = "event"
    event["event.module"] = "endgame"
    event["event.dataset"] = "esensor"
    if subtype is not None:
        event["event.action"] = subtype
    category = _CATEGORIES.get(event_type) if event_type is not None else None
    if category is not None:
        event["event.category"] = [category]
    ecs_type = _legacy_event_type(event_type, subtype, document.get("opcode"))
    if ecs_type is not None:
        event["event.type"] = [ecs_type]
    sequence = whole_number(document.get("serial_event_id"))
    if sequence is not None:
        event["event.sequence"] = sequence

    os_type = _legacy_os_type(document, event_type)
    if os_type is not None:
        event["host.os.type"] = os_type
    machine_id = _text(document.get("machine_id"))
    if machine_id is not None:
        event["host.id"] = machine_id

    _map_legacy_process(event, document)
    _map_legacy_user(event, document)
    if category == "file":
        _map_legacy_file(event, document)
    elif category == "registry":
        _map_legacy_registry(event, document)
    elif event_type == "dns":
        _map_legacy_dns(event, document)
    elif category == "network":
        _map_legacy_network(event, document)

    event.update(_vendor_namespace(document))
    return event


def _legacy_event_type(event_type: str | None, subtype: str | None, opcode: Any) -> str | None:
    if subtype is not None:
        mapped = _SUBTYPE_TYPES.get(subtype)
        if mapped is not None:
            return mapped
    if event_type == "process":
        code = whole_number(opcode)
        if code is not None:
            return _PROCESS_OPCODE_TYPES.get(code)
    return None


def _map_legacy_process(event: Event, document: Mapping[str, Any]) -> None:
    pid = whole_number(document.get("pid"))
    if pid is not None:
        event["process.pid"] = pid
    entity_id = _entity_id(document.get("unique_pid"))
    if entity_id is not None:
        event["process.entity_id"] = entity_id
    executable = _text(document.get("process_path"))
    if executable is not None:
        event["process.executable"] = executable
    name = _text(document.get("process_name")) or (path_basename(executable) if executable is not None else None)
    if name is not None:
        event["process.name"] = name
    command_line = _text(document.get("command_line"))
    if command_line is not None:
        event["process.command_line"] = command_line
        args = command_line_to_argv(command_line)
        if args:
            event["process.args"] = args
            event["process.args_count"] = len(args)
    for source, target in (("md5", "md5"), ("sha1", "sha1"), ("sha256", "sha256")):
        digest = _text(document.get(source))
        if digest is not None:
            event["process.hash." + target] = digest
    original_name = _text(document.get("original_file_name"))
    if original_name is not None:
        event["process.pe.original_file_name"] = original_name
    exit_code = whole_number(document.get("exit_code"))
    if exit_code is not None:
        event["process.exit_code"] = exit_code

    parent_pid = whole_number(document.get("ppid"))
    if parent_pid is not None:
        event["process.parent.pid"] = parent_pid
    parent_entity_id = _entity_id(document.get("unique_ppid"))
    if parent_entity_id is not None:
        event["process.parent.entity_id"] = parent_entity_id
    parent_executable = _text(document.get("parent_process_path"))
    if parent_executable is not None:
        event["process.parent.executable"] = parent_executable
    parent_name = _text(document.get("parent_process_name")) or (
        path_basename(parent_executable) if parent_executable is not None else None
    )
    if parent_name is not None:
        event["process.parent.name"] = parent_name


def _map_legacy_user(event: Event, document: Mapping[str, Any]) -> None:
    for source, target in (("user_name", "user.name"), ("user_domain", "user.domain"), ("user_sid", "user.id")):
        value = _text(document.get(source))
        if value is not None:
            event[target] = value


def _map_legacy_file(event: Event, document: Mapping[str, Any]) -> None:
    path = _text(document.get("file_path"))
    if path is not None:
        event["file.path"] = path
    name = _text(document.get("file_name")) or (path_basename(path) if path is not None else None)
    if name is not None:
        event["file.name"] = name


def _map_legacy_registry(event: Event, document: Mapping[str, Any]) -> None:
    path = _text(document.get("registry_path"))
    if path is not None:
        event["registry.path"] = path
    value = _text(document.get("registry_value"))
    if value is not None:
        event["registry.value"] = value
    strings = document.get("bytes_written_string_list")
    if isinstance(strings, list):
        texts = [item for item in strings if isinstance(item, str)]
        if texts:
            event["registry.data.strings"] = texts


def _map_legacy_network(event: Event, document: Mapping[str, Any]) -> None:
    for side in ("source", "destination"):
        address = _text(document.get(side + "_address"))
        if address is not None:
            event[side + ".address"] = address
            if es_convert_ip(address) is not None:
                event[side + ".ip"] = address
        port = whole_number(document.get(side + "_port"))
        if port is not None:
            event[side + ".port"] = port
    transport = _text(document.get("protocol"))
    if transport is not None:
        # ECS network.transport is lowercase (tcp, udp, icmp...).
        event["network.transport"] = transport.lower()


def _map_legacy_dns(event: Event, document: Mapping[str, Any]) -> None:
    event["network.protocol"] = "dns"
    name = _text(document.get("query_name"))
    if name is not None:
        event["dns.question.name"] = name


def _vendor_namespace(document: Mapping[str, Any]) -> Event:
    namespace: Event = {}
    for key, value in document.items():
        if type(key) is not str:
            continue
        if type(value) in _SCALARS:
            namespace[_NAMESPACE + key] = value
        else:
            namespace.update(_flatten_bounded({_NAMESPACE + key: value}))
    return namespace


def _flatten_bounded(document: Mapping[str, Any]) -> Event:
    """:func:`flatten`, leaving out a top-level field nested deeper than the interpreter's stack (JSON decoders
    accept about as many levels as Python's recursion limit) and keeping the others."""
    try:
        return flatten(document)
    except RecursionError:
        pass
    event: Event = {}
    for key, value in document.items():
        try:
            event.update(flatten({key: value}))
        except RecursionError:
            continue
    return event


def _normalize_ecs_document(document: Mapping[str, Any]) -> Event:
    event = _flatten_bounded(document)

    timestamp = _ecs_timestamp(event.get("@timestamp"))
    if timestamp is None and "@timestamp" not in event:
        timestamp = _iso_text(_first_text(event.get("endgame.timestamp_utc")))
    if timestamp is not None:
        event["@timestamp"] = timestamp

    if "host.os.type" not in event:
        os_type = _ecs_os_type(event)
        if os_type is not None:
            event["host.os.type"] = os_type
    if "event.category" not in event:
        category = _ecs_category(event)
        if category is not None:
            event["event.category"] = [category]
    if "event.type" not in event:
        subtype = _first_text(event.get("endgame.event_subtype_full")) or _first_text(event.get("event.action"))
        ecs_type = _SUBTYPE_TYPES.get(subtype) if subtype is not None else None
        if ecs_type is not None:
            event["event.type"] = [ecs_type]

    for prefix, vendor_name in (("process", "endgame.process_name"), ("process.parent", "endgame.parent_process_name")):
        name_field = prefix + ".name"
        if name_field in event:
            continue
        name = _first_text(event.get(vendor_name))
        if name is None:
            executable = _first_text(event.get(prefix + ".executable"))
            name = path_basename(executable) if executable is not None else None
        if name is not None:
            event[name_field] = name
    return event


def _ecs_timestamp(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, str) and value.isdigit() and value.isascii():
        # Elasticsearch's default date format is strict_date_optional_time||epoch_millis: digits are epoch ms.
        millis = es_convert_long(value)
        return iso_utc(millis) if millis is not None else None
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return iso_utc(value)
    return None


def _ecs_category(event: Event) -> str | None:
    full = _first_text(event.get("endgame.event_type_full"))
    if full is not None and full.endswith("_event"):
        category = _CATEGORIES.get(full[: -len("_event")])
        if category is not None:
            return category
    kind = _first_text(event.get("endgame.event_type"))
    return _CATEGORIES.get(kind) if kind is not None else None


# ------------------------------------------------------------------------------------------------------------
# Operating system evidence


def _legacy_os_type(document: Mapping[str, Any], event_type: str | None) -> str | None:
    paths = [text for text in (_text(document.get(field)) for field in _LEGACY_PATH_FIELDS) if text is not None]
    return _os_from_evidence(
        paths,
        registry=event_type == "registry",
        sids=[_text(document.get("user_sid"))],
        domains=[_text(document.get("user_domain"))],
    )


def _ecs_os_type(event: Event) -> str | None:
    for field in _ECS_OS_NAME_FIELDS:
        for text in _texts(event.get(field)):
            os_type = _os_from_name(text)
            if os_type is not None:
                return os_type
    paths = [text for field in _ECS_PATH_FIELDS for text in _texts(event.get(field))]
    registry = any(key.startswith("registry.") for key in event) or _holds(event.get("event.category"), "registry")
    return _os_from_evidence(
        paths,
        registry=registry,
        sids=[*_texts(event.get("user.id")), *_texts(event.get("endgame.user_sid"))],
        domains=[*_texts(event.get("user.domain")), *_texts(event.get("endgame.user_domain"))],
    )


def _os_from_name(text: str) -> str | None:
    lowered = text.strip().lower()
    if "windows" in lowered:
        return "windows"
    if "linux" in lowered:
        return "linux"
    if lowered in ("macos", "darwin", "osx", "mac os x") or lowered.startswith("macos"):
        return "macos"
    return None


def _os_from_evidence(
    paths: list[str], *, registry: bool, sids: Iterable[str | None], domains: Iterable[str | None]
) -> str | None:
    if registry or any(_is_windows_path(path) for path in paths):
        return "windows"
    if any(sid is not None and sid.startswith("S-1-") for sid in sids):
        return "windows"
    if any(domain is not None and domain.upper() == "NT AUTHORITY" for domain in domains):
        return "windows"
    for path in paths:
        if path.startswith("/"):
            return "macos" if path.lower().startswith(_MACOS_PATH_PREFIXES) else "linux"
    return None


def _is_windows_path(path: str) -> bool:
    if len(path) >= 3 and path[1] == ":" and path[2] in "\\/" and path[0].isascii() and path[0].isalpha():
        return True
    return path[:1] == "\\" and path.lower().startswith(_WINDOWS_PATH_PREFIXES)


# ------------------------------------------------------------------------------------------------------------
# Values


def _text(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _texts(value: Any) -> list[str]:
    if isinstance(value, list):
        return [item for item in value if type(item) is str and item]
    return [value] if type(value) is str and value else []


def _first_text(value: Any) -> str | None:
    texts = _texts(value)
    return texts[0] if texts else None


def _entity_id(value: Any) -> str | None:
    if type(value) is str:
        return value if value and value != "0" else None
    number = whole_number(value)
    return str(number) if number else None


def _filetime_iso(value: Any) -> str | None:
    ticks = whole_number(value)
    if ticks is None or ticks < 0:
        return None
    seconds, fraction = divmod(ticks, _FILETIME_TICKS_PER_SECOND)
    try:
        moment = _FILETIME_EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None
    return f"{moment.isoformat()}.{fraction:07d}Z"


def _iso_text(value: Any) -> str | None:
    return iso_utc(value) if isinstance(value, str) and value else None
