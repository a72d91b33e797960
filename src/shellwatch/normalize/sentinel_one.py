"""SentinelOne Cloud Funnel (Deep Visibility) records -> ECS, as Elastic's ``sentinel_one_cloud_funnel``
integration maps them into ``logs-sentinel_one_cloud_funnel.*``.

Cloud Funnel writes one flat JSON object per line with dotted keys (``"src.process.image.path"``,
``"meta.event.name": "PROCESSCREATION"``, ``"event.time"`` in epoch milliseconds, ...); the same keys nested
(``{"src": {"process": {...}}}``) are read alike. Every record names up to three processes:

* ``src.process.*``: the actor of the event; for a process creation, the creator;
* ``src.process.parent.*``: the actor's parent;
* ``tgt.process.*``: for a process event, the process it is about; for a process creation, the new process.

The mapping choice: for process events the created process (``tgt``) becomes ``process.*`` and its creator
(``src``) becomes ``process.parent.*``, so ``process.name`` and ``process.parent.name`` hold a real child and
parent, as every other source writes a process start. The creator's parent (the new process's grandparent) has no
ECS field (``process.parent.group_leader`` is a process-group leader, not a grandparent), so it stays under the
vendor namespace only. Elastic's pipeline maps process events the same way since integration 0.10.0
(elastic/integrations#8608); before that, ``process.*`` was the creator and ``process.parent.*`` the creator's
parent, one generation up (docs/sources/sentinel_one.md shows what that does to the web shell rule). Events of
other categories keep the actor in ``process.*`` and its parent in ``process.parent.*``, as Elastic's default
pipeline does for every event.

Every raw field is kept, under its Cloud Funnel name, as ``sentinel_one_cloud_funnel.event.<key>``. Elastic keeps
them there too, though renamed to snake case and with the ones copied to ECS removed; the names are kept as
SentinelOne writes them here, so a field reads as the vendor's documentation and Deep Visibility queries name it.

Pipelines followed (elastic/integrations, ../shared/reference/sources/MAPPING.md §4):
``packages/sentinel_one_cloud_funnel/data_stream/event/elasticsearch/ingest_pipeline/default.yml`` @ 047030f6
and ``pipeline-process.yml`` @ 127f8141. Where this module deviates, a comment says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shellwatch.ecs import Event, flatten
from shellwatch.normalize.command_line import command_line_to_argv
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.conversions import es_convert_long
from shellwatch.normalize.pipeline_values import append_unique
from shellwatch.normalize.timestamps import iso_utc

FAMILY: Final = "sentinel_one_cloud_funnel"

VENDOR_PREFIX: Final = "sentinel_one_cloud_funnel.event."
"""Where every raw Cloud Funnel field is kept, under its own (dotted) name."""

# default.yml copies endpoint.os to host.os.type only for these values. Cloud Funnel writes "osx" for macOS
# (records quoted in elastic/integrations#13575 and #13709), which Elastic leaves without a type; mapping it to
# "macos" lets macOS rules read it and keeps Windows rules quiet all the same.
_OS_TYPES: Final = {
    "linux": "linux",
    "windows": "windows",
    "macos": "macos",
    "ios": "ios",
    "android": "android",
    "osx": "macos",
}

# pipeline-process.yml: the event.type values that make a process event an end.
_PROCESS_END_TYPES: Final = frozenset(("ProcessExit", "ProcessTermination", "Process Exit", "Process Termination"))

# default.yml trims one enclosing pair of double quotes from these two command lines only (not from
# src.process.cmdline), before any mapping.
_QUOTE_TRIMMED_SOURCES: Final = frozenset(("tgt.process.", "src.process.parent."))

# Fields that, beside meta.event.name, only a Cloud Funnel record has (ECS documents name the host host.*).
_ENDPOINT_KEYS: Final = ("endpoint.os", "endpoint.name", "endpoint.type")

_EMPTY_VALUES: Final[tuple[Any, ...]] = (None, "", [])  # what Elastic's final clean-up drops

_SCALAR_TYPES: Final = frozenset((str, int, float, bool, type(None)))

_TGT_PROCESS_KEYS: Final = ("tgt.process.name", "tgt.process.image.path", "tgt.process.pid", "tgt.process.uid")

# related.hash in the order default.yml then pipeline-process.yml append them. default.yml adds the parent's sha1
# and sha256 where it sets process.parent.hash.* and its md5 only later, hence the order.
_RELATED_HASH_KEYS: Final = (
    "src.process.image.md5",
    "src.process.image.sha1",
    "src.process.image.sha256",
    "src.process.parent.image.sha1",
    "src.process.parent.image.sha256",
    "osSrc.process.image.md5",
    "osSrc.process.image.sha1",
    "osSrc.process.image.sha256",
    "osSrc.process.parent.image.sha1",
    "osSrc.process.parent.image.sha256",
    "src.process.parent.image.md5",
    "tgt.file.sha1",
    "tgt.process.image.md5",
    "tgt.process.image.sha1",
    "tgt.process.image.sha256",
)

# related.user in the pipelines' order. Deviation: src.process.user (whose account user.* holds) is added; the
# pipelines leave it out of related.user.
_RELATED_USER_KEYS: Final = (
    "src.process.parent.rUserUid",
    "src.process.parent.rUserName",
    "src.process.parent.eUserUid",
    "src.process.parent.user",
    "src.process.parent.eUserName",
    "src.process.rUserUid",
    "src.process.rUserName",
    "src.process.user",
    "osSrc.process.parent.user",
    "osSrc.process.user",
    "src.process.lUserName",
    "src.process.lUserUid",
    "src.process.parent.lUserName",
    "src.process.parent.lUserUid",
    "src.process.parent.userSid",
    "tgt.process.eUserName",
    "tgt.process.eUserUid",
    "tgt.process.lUserName",
    "tgt.process.lUserUid",
    "tgt.process.rUserName",
    "tgt.process.rUserUid",
    "src.process.userSid",
    "tgt.file.owner.userSid",
    "tgt.process.userSid",
    "tgt.process.user",
)


def is_sentinel_one_record(document: Mapping[str, Any]) -> bool:
    """Whether a decoded JSON object is a raw Cloud Funnel record (dotted or nested keys): it has
    ``meta.event.name`` and either ``dataSource.name`` "SentinelOne" or an ``endpoint.*`` field."""
    try:
        name = _lookup(document, "meta.event.name")
        if not isinstance(name, str) or not name:
            return False
        if _lookup(document, "dataSource.name") == "SentinelOne":
            return True
        return any(_lookup(document, key) is not None for key in _ENDPOINT_KEYS)
    except Exception:  # recognition of attacker-written input never fails a hunt
        return False


def normalize_sentinel_one(document: Mapping[str, Any], context: SourceContext) -> Event:
    """The flat ECS event for one Cloud Funnel record (see the module docstring); never raises.

    Each record carries its creator and the creator's parent itself, so no memory of earlier records is needed and
    ``context`` is not used.
    """
    try:
        return _normalize(_flat(document))
    except Exception as exc:  # attacker-written input must not stop a hunt; _normalize is written not to get here
        return {
            "event.kind": "pipeline_error",
            "error.message": f"SentinelOne Cloud Funnel record could not be normalized ({type(exc).__name__})",
        }


def _normalize(flat: Mapping[str, Any]) -> Event:
    event: Event = {}
    timestamp = _date(flat.get("event.time"))
    if timestamp is not None:
        event["@timestamp"] = timestamp
    event["event.kind"] = "event"
    _set_text(event, "event.id", flat.get("event.id"))
    _map_host(event, flat)
    _set_text(event, "group.id", flat.get("group.id"))

    meta_name = _text(flat.get("meta.event.name"))
    vendor_type = _text(flat.get("event.type"))
    category = _text(flat.get("event.category"))
    lowered = category.lower() if category is not None else ""
    # default.yml routes to pipeline-process when the category contains "process" but not "cross". Deviation: a
    # PROCESSCREATION record is a process start even without its category, which names nothing else.
    creation = meta_name == "PROCESSCREATION"
    process_event = creation or ("process" in lowered and "cross" not in lowered)
    if process_event:
        event["event.category"] = ["process"]
        if creation:
            event["event.type"] = ["start"]
        elif vendor_type in _PROCESS_END_TYPES:
            event["event.type"] = ["end"]
    if "event.type" in event:
        # pipeline-process.yml copies event.type to event.action.
        event["event.action"] = list(event["event.type"])
    elif vendor_type is not None:
        # Deviation: where Elastic's process pipeline sets no action (and for the other categories, whose own
        # pipelines this module does not follow), the vendor's event type names the action.
        event["event.action"] = vendor_type

    # pipeline-process.yml moves the src process to process.parent and maps tgt to process for every process
    # event. Deviation: only when the record names a tgt process; otherwise the actor stays the process, as for
    # every other category, rather than leaving process.* empty.
    if process_event and any(flat.get(key) not in _EMPTY_VALUES for key in _TGT_PROCESS_KEYS):
        _map_process(event, flat, "tgt.process.", "process.")
        _map_process(event, flat, "src.process.", "process.parent.")
    else:
        _map_process(event, flat, "src.process.", "process.")
        _map_process(event, flat, "src.process.parent.", "process.parent.")

    _map_user(event, flat)
    for key in _RELATED_HASH_KEYS:
        value = _text(flat.get(key))
        if value is not None:
            append_unique(event, "related.hash", value)
    for key in _RELATED_USER_KEYS:
        value = _text(flat.get(key))
        if value is not None:
            append_unique(event, "related.user", value)

    # Elastic's last step drops null and empty values; everything else is kept as written.
    event.update({f"{VENDOR_PREFIX}{key}": value for key, value in flat.items() if value not in _EMPTY_VALUES})
    return event


def _map_host(event: Event, flat: Mapping[str, Any]) -> None:
    hostname = _text(flat.get("endpoint.name"))
    if hostname is not None:
        event["host.hostname"] = hostname
        # Deviation: Elastic sets only host.hostname. Rules, alert reasons and every other source use host.name.
        event["host.name"] = hostname
        # Deviation: default.yml also appends endpoint.os and endpoint.type ("windows", "server") to related.hosts,
        # which holds host names and addresses.
        event["related.hosts"] = [hostname]
    os_value = _text(flat.get("endpoint.os"))
    if os_value is not None:
        event["host.os.platform"] = os_value
        os_type = _OS_TYPES.get(os_value)
        if os_type is not None:
            event["host.os.type"] = os_type
    _set_text(event, "host.os.name", flat.get("os.name"))
    _set_text(event, "host.id", flat.get("agent.uuid"))
    _set_text(event, "host.type", flat.get("endpoint.type"))


def _map_process(event: Event, flat: Mapping[str, Any], source: str, target: str) -> None:
    """One Cloud Funnel process (``source``: ``tgt.process.``, ``src.process.`` or ``src.process.parent.``) into
    the ECS process at ``target`` (``process.`` or ``process.parent.``), with the same field table for each."""
    _set_text(event, target + "name", flat.get(source + "name"))
    _set_text(event, target + "executable", flat.get(source + "image.path"))
    _set_long(event, target + "pid", flat.get(source + "pid"))
    _set_long(event, target + "thread.id", flat.get(source + "tid"))
    _set_text(event, target + "entity_id", flat.get(source + "uid"))
    command_line = _text(flat.get(source + "cmdline"))
    if command_line is not None and source in _QUOTE_TRIMMED_SOURCES:
        command_line = _trim_enclosing_quotes(command_line)
    if command_line:
        event[target + "command_line"] = command_line
        # default.yml's commandLineToArgv script; its last step drops the empty arguments but not from the count.
        argv = command_line_to_argv(command_line)
        args = [arg for arg in argv if arg]
        if args:
            event[target + "args"] = args
        event[target + "args_count"] = len(argv)
    for algorithm in ("md5", "sha1", "sha256"):
        _set_text(event, f"{target}hash.{algorithm}", flat.get(f"{source}image.{algorithm}"))
    start = _date(flat.get(source + "startTime"))
    if start is not None:
        event[target + "start"] = start
    _set_text(event, target + "title", flat.get(source + "displayName"))
    # Deviation: the account in "user" first, eUserName when it is absent, for all three processes. default.yml
    # lets the creator's eUserName replace its user, and pipeline-process.yml reads only tgt's user.
    user_name = _text(flat.get(source + "user")) or _text(flat.get(source + "eUserName"))
    if user_name is not None:
        event[target + "user.name"] = user_name
    _set_text(event, target + "user.id", flat.get(source + "eUserUid"))
    _set_text(event, target + "real_user.id", flat.get(source + "rUserUid"))
    _set_text(event, target + "real_user.name", flat.get(source + "rUserName"))
    _map_code_signature(event, flat, source, target)


def _map_code_signature(event: Event, flat: Mapping[str, Any], source: str, target: str) -> None:
    # Deviation: pipeline-process.yml writes tgt's signature to process.code_signature.* *before* it renames process
    # to process.parent, so Elastic shows the new process's signature on the parent and none on the process. Here
    # each process gets its own. The rules: signedStatus "signed" -> exists, "unsigned" -> not (default.yml; the
    # process pipeline also says "not" when the status is missing, which is unknown rather than unsigned);
    # verifiedStatus "verified" -> trusted, else not trusted when signed (pipeline-process.yml; default.yml's
    # contains('verified') would also call "unverified" trusted).
    publisher = _text(flat.get(source + "publisher"))
    if publisher is not None:
        event[target + "code_signature.subject_name"] = publisher
    signed_status = _text(flat.get(source + "signedStatus"))
    exists: bool | None = None
    if signed_status == "signed":
        exists = True
    elif signed_status == "unsigned":
        exists = False
    if exists is not None:
        event[target + "code_signature.exists"] = exists
    if _text(flat.get(source + "verifiedStatus")) == "verified":
        event[target + "code_signature.trusted"] = True
    elif exists:
        event[target + "code_signature.trusted"] = False


def _map_user(event: Event, flat: Mapping[str, Any]) -> None:
    # default.yml: user.* is the actor's (src.process.user) account, dissected as %{user.domain}\%{user.name}.
    account = _text(flat.get("src.process.user"))
    if account is not None:
        domain, separator, name = account.partition("\\")
        if not separator:
            # Deviation: without a backslash Elastic copies the whole account to user.domain as well as user.name.
            event["user.name"] = account
        else:
            if domain:
                event["user.domain"] = domain
            if name:
                event["user.name"] = name
    # Deviation: the actor's SID, which Elastic keeps only in its vendor namespace, is the ECS user.id.
    _set_text(event, "user.id", flat.get("src.process.userSid"))


def _trim_enclosing_quotes(command_line: str) -> str:
    """default.yml's ``trimQuotes``: one leading and one trailing double quote go when both are there.

    A lone ``"`` starts and ends with a quote too; Painless's ``substring(1, 0)`` throws on it and the value stays
    as it was.
    """
    if len(command_line) >= 2 and command_line[0] == '"' and command_line[-1] == '"':
        return command_line[1:-1]
    return command_line


def _flat(document: Mapping[str, Any]) -> Mapping[str, Any]:
    # Cloud Funnel's own lines are flat already: read them as they are, which is most of the work saved.
    if all(type(value) in _SCALAR_TYPES for value in document.values()):
        return document
    try:
        return flatten(document)
    except RecursionError:
        # Nesting deeper than Python's stack: the top-level scalars are what a Cloud Funnel record holds anyway.
        return {key: value for key, value in document.items() if not isinstance(value, (Mapping, list))}


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, whether the keys are dotted, nested or both; ``None`` when absent."""
    value = document.get(path)
    if value is not None:
        return value
    return _lookup_parts(document, path.split("."))


def _lookup_parts(node: Mapping[str, Any], parts: list[str]) -> Any:
    # The path may be split at any of its dots: {"meta": {"event.name": ...}} or {"meta": {"event": {"name": ...}}}.
    for end in range(len(parts) - 1, 0, -1):
        child = node.get(".".join(parts[:end]))
        if isinstance(child, Mapping):
            rest = parts[end:]
            found = child.get(".".join(rest))
            if found is None and len(rest) > 1:
                found = _lookup_parts(child, rest)
            if found is not None:
                return found
    return None


def _text(value: Any) -> str | None:
    """A non-empty string as is, an integer as its decimal text (Elastic converts ids such as uids to strings);
    anything else (lists, objects, booleans, blanks) is not a usable value."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _set_text(event: Event, field: str, value: Any) -> None:
    text = _text(value)
    if text is not None:
        event[field] = text


def _set_long(event: Event, field: str, value: Any) -> None:
    # The pipelines' convert to long: JSON integers as they are, strings as Elasticsearch parses them.
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value if -(1 << 63) <= value < (1 << 63) else None
    elif isinstance(value, str):
        number = es_convert_long(value)
    if number is not None:
        event[field] = number


def _date(value: Any) -> str | None:
    """A Cloud Funnel time (``epoch_millis`` or ISO 8601, the date processors' formats) as ISO 8601 UTC."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return iso_utc(value)
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            # More digits than any epoch_millis date has would only cost int() time (or its digit limit).
            return iso_utc(int(value)) if len(value) <= 20 else None
        return iso_utc(value) if value else None
    return None
