"""Sigma field names and log sources -> ECS: where a Sigma rule's fields live in an ECS event, and which
events a rule's ``logsource`` selects.

The mapping follows pySigma's Elasticsearch pipeline for Windows, ``ecs_windows`` (package
pysigma-backend-elasticsearch, ``sigma/pipelines/elasticsearch/windows.py``): a fixed table for the fields
Winlogbeat and Elastic Agent move to ECS, a few mappings that depend on the log source category or service,
and ``winlog.event_data.<Field>`` for every other field (names that already look like a dotted path stay as
they are). The pipeline's ``.caseless`` suffix names a lower-cased multi-field of the same keyword; every
Sigma string test here is case-insensitive already, so the plain field is used.

Deviations from ``ecs_windows``, each because shellwatch evaluates one event at a time, whatever source
produced it (Sysmon, Security 4688, Elastic Defend...), instead of querying one index whose shipper is known:

* ``User``: the pipeline maps it to ``user.name``, but Sysmon writes ``DOMAIN\\user`` and Elastic's Sysmon
  pipeline splits that into ``user.domain`` and ``user.name`` while keeping ``winlog.event_data.User``.
  SigmaHQ rules test the whole string (``User|contains: 'AUTHORI'`` for "NT AUTHORITY"), so the raw field is
  read first and ``user.name`` second (sources that only carry the ECS field).
* ``Hashes`` / ``Hash``: Sysmon's ``SHA1=..,MD5=..,SHA256=..,IMPHASH=..`` string. Elastic keeps it in
  ``winlog.event_data.Hashes`` and also parses it into ``process.hash.*`` / ``file.hash.*`` and
  ``*.pe.imphash`` (lower-cased, all-zero hashes dropped; elastic/beats
  ``x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml``). A rule's ``ALGO=hex`` value is tested on the raw
  string and on the parsed ECS field (see :class:`HashTarget`).
* ``IntegrityLevel``: Sysmon's ``winlog.event_data.IntegrityLevel``, but also Security 4688's
  ``MandatoryLabel`` (SigmaHQ rules list both ``'System'`` and ``'S-1-16-16384'`` for that reason) and Elastic
  Defend's ``process.Ext.token.integrity_level_name``.
* ``ParentProcessName`` (4688): the pipeline maps it to ``process.parent.name``, but 4688 writes a full path
  there and Elastic's Security pipeline puts it in ``process.parent.executable``.
* ``Signature`` in ``image_load`` and ``driver_load``: the pipeline keys it on the categories ``image_loaded`` and
  ``driver_loaded``, which no Sigma rule uses; the intended categories are honoured.
* Fields Elastic's pipelines *copy* to ECS rather than move (``Company``, ``Description``, ``FileVersion``,
  ``Product``, ``Signature``, ``SignatureStatus``, ``Initiated``) are read from the ECS field and from the raw
  ``winlog.event_data`` field.
* ``Initiated`` (network_connection): the pipeline rewrites ``true``/``false`` to ``network.direction``
  ``egress``/``ingress``; the rewrite is a value map on that target.

Linux and macOS rules use the same Sysmon-derived names (SigmaHQ's taxonomy); the process, file and network
fields map to the ECS fields Elastic Defend and Auditbeat write, and any other field is read under its own
name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sigma.pipelines.common import windows_logsource_mapping
from sigma.rule import SigmaLogSource

from shellwatch.query.ir import And, Case, Equals, Exists, Node, Or


@dataclass(frozen=True, slots=True)
class FieldTarget:
    """An ECS field a Sigma field is read from.

    ``value_map``, when set, translates the rule's plain value (lower-cased) into the value the field holds
    there; a value the map does not know cannot be tested on this target.
    """

    path: str
    value_map: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class HashTarget:
    """The parsed ECS hash fields of ``subject`` (``process`` or ``file``) for a Sysmon ``Hashes`` value.

    A rule value ``ALGO=hex`` (usually under ``contains``) becomes a test of ``<subject>.hash.<algo>``, or of
    ``<subject>.pe.imphash`` for ``IMPHASH``.
    """

    subject: str

    def path(self, algorithm: str) -> str:
        """The ECS field that holds ``algorithm`` (lower-case: md5, sha1, sha256, imphash...)."""
        if algorithm == "imphash":
            return f"{self.subject}.pe.imphash"
        return f"{self.subject}.hash.{algorithm}"

    @property
    def paths(self) -> tuple[str, ...]:
        """Every field this target may hold a hash in."""
        return tuple(self.path(algorithm) for algorithm in HASH_LENGTHS)


Target = FieldTarget | HashTarget

HASH_LENGTHS: Mapping[str, int] = {
    "md5": 32,
    "sha1": 40,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
    "imphash": 32,
}
"""Hash algorithms Sysmon (and Elastic's parser of its ``Hashes``) can write, with their length in hex
digits."""

WINDOWS_FIELDS: Mapping[str, str] = {
    "EventID": "event.code",
    "Channel": "winlog.channel",
    "Provider_Name": "winlog.provider_name",
    "ComputerName": "winlog.computer_name",
    "FileName": "file.path",
    "ProcessGuid": "process.entity_id",
    "ProcessId": "process.pid",
    "Image": "process.executable",
    "CurrentDirectory": "process.working_directory",
    "ParentProcessGuid": "process.parent.entity_id",
    "ParentProcessId": "process.parent.pid",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "TargetFilename": "file.path",
    "SourceIp": "source.ip",
    "SourceHostname": "source.domain",
    "SourcePort": "source.port",
    "DestinationIp": "destination.ip",
    "DestinationHostname": "destination.domain",
    "DestinationPort": "destination.port",
    "DestinationPortName": "network.protocol",
    "ImageLoaded": "file.path",
    "Signed": "file.code_signature.signed",
    "SignatureStatus": "file.code_signature.status",
    "Imphash": "file.pe.imphash",
    "SourceProcessGuid": "process.entity_id",
    "SourceProcessId": "process.pid",
    "SourceImage": "process.executable",
    "Device": "file.path",
    "SourceThreadId": "process.thread.id",
    "TargetObject": "registry.path",
    "PipeName": "file.name",
    "Destination": "process.executable",
    "QueryName": "dns.question.name",
    "QueryStatus": "sysmon.dns.status",
    "IsExecutable": "sysmon.file.is_executable",
    "Archived": "sysmon.file.archived",
    "CommandName": "powershell.command.name",
    "CommandPath": "powershell.command.path",
    "CommandType": "powershell.command.type",
    "HostApplication": "process.command_line",
    "HostId": "process.entity_id",
    "HostName": "process.title",
    "NewEngineState": "powershell.engine.new_state",
    "PipelineId": "powershell.pipeline_id",
    "PreviousEngineState": "powershell.engine.previous_state",
    "RunspaceId": "powershell.runspace_id",
    "ScriptName": "file.path",
    "SequenceNumber": "event.sequence",
    "NewProviderState": "powershell.provider.new_state",
    "ProviderName": "powershell.provider.name",
    "MessageNumber": "powershell.sequence",
    "MessageTotal": "powershell.total",
    "ScriptBlockText": "powershell.file.script_block_text",
    "ScriptBlockId": "powershell.file.script_block_id",
    "AccountDomain": "user.domain",
    "AccountName": "user.name",
    "Application": "process.executable",
    "ClientAddress": "source.ip",
    "ClientName": "source.domain",
    "DestAddress": "destination.ip",
    "DestPort": "destination.port",
    "IpAddress": "source.ip",
    "IpPort": "source.port",
    "NewProcessId": "process.pid",
    "NewProcessName": "process.executable",
    "ParentProcessName": "process.parent.executable",
    "ProcessName": "process.executable",
    "SourceAddress": "source.ip",
    "TargetDomainName": "user.domain",
    "User": "user.name",
    "WorkstationName": "source.domain",
    "Payload": "powershell.file.script_block_text",
}
"""``ecs_windows``'s fixed field table (item ``ecs_windows_field_mapping``), ``.caseless`` dropped and
``ParentProcessName`` corrected (see the module docstring)."""

WINDOWS_FIELDS_BY_LOGSOURCE: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    "FileVersion": (
        ("category", "process_creation", "process.pe.file_version"),
        ("category", "image_load", "file.pe.file_version"),
    ),
    "Description": (
        ("category", "process_creation", "process.pe.description"),
        ("category", "image_load", "file.pe.description"),
        ("category", "sysmon_error", "winlog.event_data.Description"),
    ),
    "Product": (
        ("category", "process_creation", "process.pe.product"),
        ("category", "image_load", "file.pe.product"),
    ),
    "Company": (
        ("category", "process_creation", "process.pe.company"),
        ("category", "image_load", "file.pe.company"),
    ),
    "OriginalFileName": (
        ("category", "process_creation", "process.pe.original_file_name"),
        ("category", "image_load", "file.pe.original_file_name"),
    ),
    "CommandLine": (
        ("category", "process_creation", "process.command_line"),
        ("service", "security", "process.command_line"),
        ("service", "powershell-classic", "powershell.command.value"),
    ),
    "Protocol": (("category", "network_connection", "network.transport"),),
    "Initiated": (("category", "network_connection", "network.direction"),),
    "Signature": (
        ("category", "driver_load", "file.code_signature.subject_name"),
        ("category", "image_load", "file.code_signature.subject_name"),
    ),
    "EngineVersion": (("service", "powershell-classic", "powershell.engine.version"),),
    "HostVersion": (("service", "powershell-classic", "powershell.process.executable_version"),),
    "SubjectLogonId": (("service", "security", "winlog.logon.id"),),
    "ServiceName": (("service", "security", "service.name"),),
    "SubjectDomainName": (("service", "security", "user.domain"),),
    "SubjectUserName": (("service", "security", "user.name"),),
    "SubjectUserSid": (("service", "security", "user.id"),),
    "TargetLogonId": (("service", "security", "winlog.logon.id"),),
}
"""``ecs_windows_variable_mappings``: mappings that apply only under a log source category or service (they
win over :data:`WINDOWS_FIELDS`, as the pipeline applies them first). ``image_loaded`` and ``driver_loaded``
corrected to ``image_load`` and ``driver_load``."""

_RAW_PREFIX = "winlog.event_data."

_COPIED_TO_ECS = frozenset(
    {"Company", "Description", "FileVersion", "Product", "Signature", "SignatureStatus", "Initiated"}
)
"""Fields Elastic's Sysmon pipeline copies (``set: copy_from``) or derives from, leaving the raw field in
place."""

_INITIATED_DIRECTION: Mapping[str, str] = {"true": "egress", "false": "ingress"}

_ALREADY_A_PATH = re.compile(r"\w+\.")
"""``ecs_windows`` leaves a field alone when it starts like a dotted path (its ``IncludeFieldCondition``
regex)."""

_POSIX_FIELDS: Mapping[str, str] = {
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "CurrentDirectory": "process.working_directory",
    "ProcessId": "process.pid",
    "ProcessGuid": "process.entity_id",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "ParentProcessId": "process.parent.pid",
    "ParentProcessGuid": "process.parent.entity_id",
    "User": "user.name",
    "TargetFilename": "file.path",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "DestinationHostname": "destination.domain",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "SourceHostname": "source.domain",
    "Protocol": "network.transport",
}
"""Linux / macOS (Sysmon for Linux names in SigmaHQ rules) -> the ECS fields Elastic Defend and Auditbeat
write."""

_HASH_SUBJECTS: Mapping[str, tuple[str, ...]] = {
    "process_creation": ("process",),
    "image_load": ("file",),
    "driver_load": ("file",),
    "create_stream_hash": ("file",),
    "file_executable_detected": ("file",),
}
"""Where Elastic's Sysmon pipeline puts the parsed hashes, by the Sysmon events behind each category (event
codes 1, 23-26 -> ``process.hash``; 6, 7, 15, 26, 29 -> ``file.hash``). Other categories: both."""


def _logsource_value(logsource: SigmaLogSource, attribute: str) -> str | None:
    value = getattr(logsource, attribute)
    return value.lower() if isinstance(value, str) else None


def _windows_targets(field: str, logsource: SigmaLogSource) -> tuple[Target, ...]:
    category = _logsource_value(logsource, "category")
    raw = FieldTarget(_RAW_PREFIX + field)
    if field in ("Hashes", "Hash"):
        subjects = _HASH_SUBJECTS.get(category or "", ("process", "file"))
        # Elastic renames Sysmon 15's ``Hash`` to ``Hashes``; a raw event keeps its own name.
        raws: tuple[Target, ...] = (raw,) if field == "Hashes" else (raw, FieldTarget(_RAW_PREFIX + "Hashes"))
        return raws + tuple(HashTarget(subject) for subject in subjects)
    if field == "User":
        return (raw, FieldTarget("user.name"))
    if field == "IntegrityLevel":
        return (
            raw,
            FieldTarget(_RAW_PREFIX + "MandatoryLabel"),
            FieldTarget("process.Ext.token.integrity_level_name"),
        )
    mapped: str | None = None
    for kind, name, path in WINDOWS_FIELDS_BY_LOGSOURCE.get(field, ()):
        if _logsource_value(logsource, kind) == name:
            mapped = path
            break
    if mapped is None:
        mapped = WINDOWS_FIELDS.get(field)
    if mapped is None:
        if _ALREADY_A_PATH.match(field):
            return (FieldTarget(field),)
        return (raw,)
    value_map = _INITIATED_DIRECTION if field == "Initiated" else None
    target = FieldTarget(mapped, value_map)
    if field in _COPIED_TO_ECS:
        return (target, raw)
    return (target,)


def field_targets(field: str, logsource: SigmaLogSource) -> tuple[Target, ...]:
    """The ECS fields a Sigma field is read from under ``logsource``; a test holds when it holds on any of
    them."""
    product = _logsource_value(logsource, "product")
    if product == "windows":
        return _windows_targets(field, logsource)
    if product in ("linux", "macos") and field in _POSIX_FIELDS:
        return (FieldTarget(_POSIX_FIELDS[field]),)
    return (FieldTarget(field),)


# ------------------------------------------------------------------------------------------------------------
# Log sources -> ECS conditions.


def _is(field: str, *values: str | int) -> Node:
    return Equals(field, values, Case.INSENSITIVE)


def _category(category: str, *types: str) -> Node:
    """Elastic's categorization: ``event.category`` holds ``category`` and ``event.type`` one of ``types``."""
    if not types:
        return _is("event.category", category)
    return And((_is("event.category", category), _is("event.type", *types)))


_SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"


def _sysmon(*codes: int) -> Node:
    """A Sysmon event with one of ``codes`` (``event.code`` is a string in ECS; a raw reader may keep the
    int)."""
    values: list[str | int] = [str(code) for code in codes]
    values.extend(codes)
    return And(
        (
            _is("event.code", *values),
            Or((_is("winlog.channel", _SYSMON_CHANNEL), _is("event.provider", "Microsoft-Windows-Sysmon"))),
        )
    )


def _channel_event(channels: tuple[str, ...], *codes: int) -> Node:
    values: list[str | int] = [str(code) for code in codes]
    values.extend(codes)
    return And((_is("winlog.channel", *channels), _is("event.code", *values)))


_POWERSHELL_CHANNELS = ("Microsoft-Windows-PowerShell/Operational", "PowerShellCore/Operational")
_POWERSHELL_CLASSIC = ("Windows PowerShell",)
_SYSMON_EVENT_TYPE = "winlog.event_data.EventType"

_COMMON_CATEGORIES: Mapping[str, Node] = {
    "process_creation": _category("process", "start"),
    "process_termination": _category("process", "end"),
    "network_connection": _category("network", "start"),
    "dns_query": And((_is("event.category", "network"), Exists("dns.question.name"))),
    "file_event": _category("file", "creation"),
    "file_change": _category("file", "change"),
    "file_rename": _category("file", "change"),
    "file_delete": _category("file", "deletion"),
    "file_access": _category("file", "access"),
}
"""Categories every OS shares, by the ``event.category`` / ``event.type`` values Elastic's pipelines and
Elastic Defend write (Sysmon: 1 process/start, 3 network/start+connection, 11 file/creation, 2 file/change, 23
and 26 file/deletion, 22 network/connection+protocol; elastic/beats
``x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml``). ``network_connection`` asks for ``start`` so that DNS
events (network, no start) stay out."""

_WINDOWS_CATEGORIES: Mapping[str, Node] = {
    **_COMMON_CATEGORIES,
    "image_load": Or((_is("event.category", "library"), _sysmon(7))),
    "driver_load": _category("driver", "start"),
    "registry_event": _is("event.category", "registry"),
    "registry_add": And(
        (
            _is("event.category", "registry"),
            Or((_is(_SYSMON_EVENT_TYPE, "CreateKey"), _is("event.type", "creation"))),
        )
    ),
    "registry_delete": And(
        (
            _is("event.category", "registry"),
            Or((_is(_SYSMON_EVENT_TYPE, "DeleteKey", "DeleteValue"), _is("event.type", "deletion"))),
        )
    ),
    "registry_set": And(
        (
            _is("event.category", "registry"),
            Or((_is(_SYSMON_EVENT_TYPE, "SetValue"), _is("event.action", "modification"))),
        )
    ),
    "registry_rename": And((_is("event.category", "registry"), _is(_SYSMON_EVENT_TYPE, "RenameKey"))),
    "create_remote_thread": _sysmon(8),
    "raw_access_thread": _sysmon(9),
    "process_access": _sysmon(10),
    "create_stream_hash": _sysmon(15),
    "pipe_created": _sysmon(17, 18),
    "wmi_event": _sysmon(19, 20, 21),
    "clipboard_change": _sysmon(24),
    "process_tampering": _sysmon(25),
    "file_block_executable": _sysmon(27),
    "file_block_shredding": _sysmon(28),
    "file_executable_detected": _sysmon(29),
    "sysmon_status": _sysmon(4, 16),
    "sysmon_error": _sysmon(255),
    "ps_module": _channel_event(_POWERSHELL_CHANNELS, 4103),
    "ps_script": _channel_event(_POWERSHELL_CHANNELS, 4104),
    "ps_classic_start": _channel_event(_POWERSHELL_CLASSIC, 400),
    "ps_classic_provider_start": _channel_event(_POWERSHELL_CLASSIC, 600),
    "ps_classic_script": _channel_event(_POWERSHELL_CLASSIC, 800),
}
"""Windows categories (SigmaHQ's taxonomy, each backed by the Sysmon or PowerShell events SigmaHQ's logsource
guide names). Categories Elastic categorizes without ambiguity use ``event.category``/``event.type``; the rest
name the Sysmon event code, since Elastic files several of them under the same process/change or
process/access."""

_SERVICE_PROVIDERS: Mapping[str, str] = {
    "security": "Microsoft-Windows-Security-Auditing",
    "sysmon": "Microsoft-Windows-Sysmon",
    "powershell": "Microsoft-Windows-PowerShell",
}
"""Services whose provider identifies them when a source carries no ``winlog.channel``."""

PRODUCT_OS: Mapping[str, str] = {"windows": "windows", "linux": "linux", "macos": "macos"}
"""Sigma products that are operating systems -> ECS ``host.os.type``."""

_CLOUD_PRODUCTS: Mapping[str, str] = {"aws": "aws", "azure": "azure", "gcp": "gcp"}
"""Sigma products that are cloud platforms -> ECS ``cloud.provider``."""


def _windows_service(service: str) -> Node | None:
    channels = windows_logsource_mapping.get(service)
    if channels is None:
        return None
    names = (channels,) if isinstance(channels, str) else tuple(channels)
    channel = _is("winlog.channel", *names)
    provider = _SERVICE_PROVIDERS.get(service)
    if provider is None:
        return channel
    return Or((channel, _is("event.provider", provider)))


_GENERIC_CATEGORIES: Mapping[str, Node] = {
    "webserver": _is("event.category", "web"),
    "proxy": _is("event.category", "web"),
    "firewall": _is("event.category", "network"),
    "dns": And((_is("event.category", "network"), Exists("dns.question.name"))),
    "antivirus": _is("event.category", "malware"),
}
"""Product-less categories -> ECS categorization (ECS: ``web`` covers web server and proxy access, ``malware``
antivirus detections). Their rules use the log's own field names (``cs-uri-query``...), which are not
mapped."""


@dataclass(frozen=True, slots=True)
class LogsourceCondition:
    """The IR condition a rule's log source adds, and why it is partial (``None`` when it is complete)."""

    node: Node
    unsupported: str | None


def logsource_condition(logsource: SigmaLogSource) -> LogsourceCondition:
    """The condition an event must meet to be the log a rule's ``logsource`` names.

    An unknown category or service keeps only the product condition and says so. A product that is not an
    operating system or cloud platform, or a log source with nothing recognised at all, falls back to
    ``event.module`` naming it (Elastic's integrations set it so: ``okta``, ``zeek``, ``apache``...), so that
    such a rule never fires on unrelated events, keyword rules in particular.
    """
    product = _logsource_value(logsource, "product")
    category = _logsource_value(logsource, "category")
    service = _logsource_value(logsource, "service")
    if product is not None and product not in PRODUCT_OS:
        return _other_product(product)
    where = f" on {product}" if product is not None else ""
    parts: list[Node] = []
    problems: list[str] = []
    if product is not None:
        parts.append(_is("host.os.type", PRODUCT_OS[product]))

    if category is not None:
        if product == "windows":
            node = _WINDOWS_CATEGORIES.get(category)
        elif product is not None:
            node = _COMMON_CATEGORIES.get(category)
        else:
            node = _GENERIC_CATEGORIES.get(category)
            if node is not None:
                problems.append(f"the fields of category '{category}' are not mapped to ECS")
        if node is None:
            problems.append(f"category '{category}'{where} has no ECS mapping")
        else:
            parts.append(node)

    if service is not None:
        service_node = _windows_service(service) if product == "windows" else None
        if service_node is None:
            problems.append(f"service '{service}'{where} has no ECS mapping")
        else:
            parts.append(service_node)

    if not parts:
        parts.append(_is("event.module", service or category or ""))
    condition: Node = parts[0] if len(parts) == 1 else And(tuple(parts))
    return LogsourceCondition(condition, "; ".join(problems) or None)


def _other_product(product: str) -> LogsourceCondition:
    """A product that is not an operating system: its cloud provider, else the Elastic module named after it."""
    if product in _CLOUD_PRODUCTS:
        return LogsourceCondition(
            _is("cloud.provider", _CLOUD_PRODUCTS[product]), f"the fields of product '{product}' are not mapped to ECS"
        )
    return LogsourceCondition(_is("event.module", product), f"product '{product}' has no ECS mapping")
