"""Sysmon (Microsoft-Windows-Sysmon/Operational) events -> ECS, as Elastic's sysmon pipeline maps them.

The mapping follows ``x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml`` (elastic/beats) and its copy in the
``windows.sysmon_operational`` integration, processor by processor and in the same order (later renames win,
as they do there). Where the pipeline *moves* a field out of ``winlog.event_data`` this module copies it
instead: ``winlog.event_data.*`` stays whole so that Sigma rules, which name Sysmon fields, still find every
one.

Known gaps, each a lookup table or service the pipeline has and this module does not: ``sysmon.dns.status``
names (the DNS status code table), ``dns.question.registered_domain`` and friends (public suffix list), and
``network.community_id``.
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple, TypeVar

from shellwatch.ecs import Event
from shellwatch.normalize.command_line import command_line_to_argv
from shellwatch.normalize.conversions import es_convert_boolean, es_convert_ip, es_convert_long
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.pipeline_values import EMPTY_VALUES, append_unique
from shellwatch.normalize.timestamps import sysmon_utc_time

_EVENT_DATA = "winlog.event_data."

# The pipeline first deletes event_data entries holding one of these "empty" values.

# GUID-typed fields: Windows renders them with braces (the golden files show "{9F32B55F-...}"), the evtx
# package without. Braces are restored so that process.entity_id is the same whatever the container.
_GUID_FIELDS: Final = (
    "ProcessGuid",
    "ParentProcessGuid",
    "LogonGuid",
    "SourceProcessGuid",
    "SourceProcessGUID",
    "TargetProcessGuid",
    "TargetProcessGUID",
)

# event.code -> (category, type, action, outcome): the pipeline's "Add ECS categorization fields" table.
_CATEGORIZATION: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...], str, str | None]]] = {
    "1": (("process",), ("start",), "Process creation", None),
    "2": (("file",), ("change",), "A process changed a file creation time", None),
    "3": (("network",), ("start", "connection", "protocol"), "Network connection", None),
    "4": (("process",), ("change",), "Sysmon service state changed", None),
    "5": (("process",), ("end",), "Process terminated", None),
    "6": (("driver",), ("start",), "Driver loaded", None),
    "7": (("process",), ("change",), "Image loaded", None),
    "8": (("process",), ("change",), "CreateRemoteThread", None),
    "9": (("process",), ("access",), "RawAccessRead", None),
    "10": (("process",), ("access",), "ProcessAccess", None),
    "11": (("file",), ("creation",), "FileCreate", None),
    "12": (("configuration", "registry"), ("change",), "RegistryEvent (Object create and delete)", None),
    "13": (("configuration", "registry"), ("change",), "RegistryEvent (Value Set)", None),
    "14": (("configuration", "registry"), ("change",), "RegistryEvent (Key and Value Rename)", None),
    "15": (("file",), ("access",), "FileCreateStreamHash", None),
    "16": (("configuration",), ("change",), "ServiceConfigurationChange", None),
    "17": (("file",), ("creation",), "PipeEvent (Pipe Created)", None),
    "18": (("file",), ("access",), "PipeEvent (Pipe Connected)", None),
    "19": (("process",), ("info",), "WmiEvent (WmiEventFilter activity detected)", None),
    "20": (("process",), ("change",), "WmiEvent (WmiEventConsumer activity detected)", None),
    "21": (("process",), ("access",), "WmiEvent (WmiEventConsumerToFilter activity detected)", None),
    "22": (("network",), ("connection", "protocol", "info"), "DNSEvent (DNS query)", None),
    "23": (("file",), ("deletion",), "FileDelete (File Delete archived)", None),
    "24": ((), ("change",), "ClipboardChange (New content in the clipboard)", None),
    "25": (("process",), ("change",), "ProcessTampering (Process image change)", None),
    "26": (("file",), ("deletion",), "FileDeleteDetected (File Delete logged)", None),
    "27": (("file",), ("creation",), "FileBlockExecutable", "failure"),
    "28": (("file",), ("deletion",), "FileBlockShredding", None),
    "29": (("file",), ("creation",), "FileExecutableDetected", None),
    "255": (("process",), (), "Error", "failure"),
}

_PROCESS_HASH_CODES: Final = frozenset(("1", "23", "24", "25", "26"))
_FILE_HASH_CODES: Final = frozenset(("6", "7", "15", "29"))

# (event_data field, ECS field, is a long): the pipeline's process renames, in pipeline order.
_PROCESS_FIELDS: Final = (
    ("ProcessGuid", "process.entity_id", False),
    ("ProcessId", "process.pid", True),
    ("Image", "process.executable", False),
    ("SourceProcessGuid", "process.entity_id", False),
    ("SourceProcessGUID", "process.entity_id", False),
    ("SourceProcessId", "process.pid", True),
    ("SourceThreadId", "process.thread.id", True),
    ("SourceImage", "process.executable", False),
    ("Destination", "process.executable", False),
    ("CommandLine", "process.command_line", False),
    ("CurrentDirectory", "process.working_directory", False),
    ("ParentProcessGuid", "process.parent.entity_id", False),
    ("ParentProcessId", "process.parent.pid", True),
    ("ParentImage", "process.parent.executable", False),
    ("ParentCommandLine", "process.parent.command_line", False),
)

# PE metadata describes the process, except in event 7 (image load) where it describes the loaded file.
_PE_FIELDS: Final = (
    ("OriginalFileName", "original_file_name"),
    ("Company", "company"),
    ("Description", "description"),
    ("FileVersion", "file_version"),
    ("Product", "product"),
)

_FILE_PATH_FIELDS: Final = ("TargetFilename", "Device")
# The event data fields the file and network steps read.
_FILE_SOURCES: Final = frozenset((*_FILE_PATH_FIELDS, "PipeName", "ImageLoaded", "Signature", "SignatureStatus"))
_NETWORK_SOURCES: Final = frozenset(
    (
        "Protocol",
        "DestinationPortName",
        "SourcePortName",
        "SourceIp",
        "DestinationIp",
        "SourceHostname",
        "DestinationHostname",
        "SourcePort",
        "DestinationPort",
        "QueryName",
        "Initiated",
        "SourceIsIpv6",
        "QueryResults",
    )
)

_REGISTRY_CODES: Final = frozenset(("12", "13", "14"))
_REGISTRY_HIVES: Final = {
    "HKEY_CLASSES_ROOT": "HKCR",
    "HKCR": "HKCR",
    "HKEY_CURRENT_CONFIG": "HKCC",
    "HKCC": "HKCC",
    "HKEY_CURRENT_USER": "HKCU",
    "HKCU": "HKCU",
    "HKEY_DYN_DATA": "HKDD",
    "HKDD": "HKDD",
    "HKEY_LOCAL_MACHINE": "HKLM",
    "HKLM": "HKLM",
    "HKEY_PERFORMANCE_DATA": "HKPD",
    "HKPD": "HKPD",
    "HKEY_USERS": "HKU",
    "HKU": "HKU",
}
_QWORD = re.compile(r"(?i)QWORD \(((0x[0-9A-F]{8})-(0x[0-9A-F]{8}))\)")
_DWORD = re.compile(r"(?i)DWORD \((0x[0-9A-F]{8})\)")
# The pipeline's gsub on resolved addresses: an IPv4-mapped IPv6 address becomes the IPv4 address.
_V4_MAPPED = re.compile(r"\[?::ffff:([0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)(?:\](?::[0-9]+)?)?")

# DNS record type numbers, as the pipeline's QueryResults script names them.
_DNS_TYPES: Final = {
    "1": "A", "2": "NS", "3": "MD", "4": "MF", "5": "CNAME", "6": "SOA", "7": "MB", "8": "MG", "9": "MR",
    "10": "NULL", "11": "WKS", "12": "PTR", "13": "HINFO", "14": "MINFO", "15": "MX", "16": "TXT", "17": "RP",
    "18": "AFSDB", "19": "X25", "20": "ISDN", "21": "RT", "22": "NSAP", "23": "NSAPPTR", "24": "SIG",
    "25": "KEY", "26": "PX", "27": "GPOS", "28": "AAAA", "29": "LOC", "30": "NXT", "31": "EID",
    "32": "NIMLOC", "33": "SRV", "34": "ATMA", "35": "NAPTR", "36": "KX", "37": "CERT", "38": "A6",
    "39": "DNAME", "40": "SINK", "41": "OPT", "43": "DS", "46": "RRSIG", "47": "NSEC", "48": "DNSKEY",
    "49": "DHCID", "100": "UINFO", "101": "UID", "102": "GID", "103": "UNSPEC", "248": "ADDRS", "249": "TKEY",
    "250": "TSIG", "251": "IXFR", "252": "AXFR", "253": "MAILB", "254": "MAILA", "255": "ANY",
    "65281": "WINS", "65282": "WINSR",
}  # fmt: skip


def process_name(path: str) -> str | None:
    """The sysmon pipeline's name: the part after the last backslash, or nothing when there is none or it is
    empty (a path ending in ``\\``)."""
    index = path.rfind("\\")
    if index < 0:
        return None
    return path[index + 1 :] or None


def _restore_guid_braces(event: Event, data: dict[str, str]) -> None:
    for key in _GUID_FIELDS:
        value = data.get(key)
        if value is not None and len(value) == 36 and value[8] == "-":
            value = "{" + value + "}"
            data[key] = value
            event[_EVENT_DATA + key] = value


def _categorize(event: Event, code: str) -> None:
    categorization = _CATEGORIZATION.get(code)
    if categorization is not None:
        category, kind, action, outcome = categorization
        if category:
            event["event.category"] = list(category)
        if kind:
            event["event.type"] = list(kind)
        event["event.action"] = action
        if outcome is not None:
            event["event.outcome"] = outcome


def class_fields(code: str) -> dict[str, Any]:
    """The fields :func:`map_sysmon` sets from the event id alone, the same in every Sysmon event with that id,
    with ``None`` for those it never sets for it. Nothing else in the mapping writes them."""
    fields: Event = {"event.module": "sysmon", "event.category": None, "event.type": None, "event.action": None}
    _categorize(fields, code)
    return fields


class _Steps(NamedTuple):
    """Which optional steps of :func:`map_sysmon` run (see :mod:`shellwatch.normalize.demand`)."""

    timestamp: bool
    hashes: bool
    process: bool
    process_pe: bool
    process_args: bool
    file: bool
    network: bool
    user: bool
    booleans: bool
    registry: bool


_ALL_STEPS = _Steps(*(True,) * len(_Steps._fields))

# What each optional step can write: exact fields, or prefixes ending in ".". A step whose outputs no demanded
# field is in is left out; the steps after it read nothing it writes, except the related.* lists, whose step is
# named among the outputs of the step they read (user.name, source.ip/destination.ip).
_TIMESTAMP_OUTPUTS: Final = ("@timestamp", "event.created")
_HASH_OUTPUTS: Final = ("related.hash", "process.hash.", "process.pe.imphash", "file.hash.", "file.pe.imphash")
_PROCESS_OUTPUTS: Final = ("process.",)
_PE_OUTPUTS: Final = ("process.pe.",)
_ARGS_OUTPUTS: Final = ("process.args", "process.args_count", "process.parent.args", "process.parent.args_count")
_FILE_OUTPUTS: Final = ("file.",)
_NETWORK_OUTPUTS: Final = ("network.", "source.", "destination.", "dns.", "related.hosts", "related.ip")
_USER_OUTPUTS: Final = ("user.", "related.user")
_BOOLEAN_OUTPUTS: Final = ("sysmon.file.",)
_REGISTRY_OUTPUTS: Final = ("registry.",)


def _plan(demand: FieldDemand) -> _Steps:
    wants = demand.wants
    return _Steps(
        timestamp=wants(_TIMESTAMP_OUTPUTS),
        hashes=wants(_HASH_OUTPUTS),
        process=wants(_PROCESS_OUTPUTS),
        process_pe=wants(_PE_OUTPUTS),
        process_args=wants(_ARGS_OUTPUTS),
        file=wants(_FILE_OUTPUTS),
        network=wants(_NETWORK_OUTPUTS),
        user=wants(_USER_OUTPUTS),
        booleans=wants(_BOOLEAN_OUTPUTS),
        registry=wants(_REGISTRY_OUTPUTS),
    )


def map_sysmon(event: Event, data: dict[str, str], code: str, demand: FieldDemand | None = None) -> None:
    """Add the ECS fields of a Sysmon event to ``event`` (which holds the System part and
    ``winlog.event_data.*``); ``data`` is the event data by field name, ``code`` the event id. With ``demand``,
    steps writing no demanded field are left out."""
    steps = _ALL_STEPS if demand is None else demand.plan("sysmon", _plan)
    _restore_guid_braces(event, data)
    present = {key: value for key, value in data.items() if value not in EMPTY_VALUES}

    event["event.module"] = "sysmon"
    event["event.kind"] = "event"
    utc_time = present.get("UtcTime")
    if utc_time is not None and steps.timestamp:
        moment = sysmon_utc_time(utc_time)
        if moment is not None:
            created = event.get("@timestamp")
            if created is not None:
                event["event.created"] = created
            event["@timestamp"] = moment
    _categorize(event, code)

    if code == "255" and "ID" in present:
        event["error.code"] = present["ID"]
    rule_name = present.get("RuleName")
    if rule_name is not None:
        event["rule.name"] = rule_name
    if code == "25" and "Type" in present:
        event["message"] = present["Type"]

    if steps.hashes:
        hashes = present.get("Hashes", present.get("Hash"))
        if hashes is not None:
            _map_hashes(event, hashes, code)
    if steps.process:
        _map_process(event, present, code, pe=steps.process_pe, args=steps.process_args)
    # The file and network steps write nothing for an event without any of their fields.
    if steps.file and (code == "7" or not _FILE_SOURCES.isdisjoint(present)):
        _map_file(event, present, code)
    if steps.network and (code == "22" or not _NETWORK_SOURCES.isdisjoint(present)):
        _map_network(event, present, code)
    if steps.user:
        _map_user(event, present)
    if steps.booleans:
        if "Archived" in present:
            _set_boolean(event, "sysmon.file.archived", present["Archived"])
        if "IsExecutable" in present:
            _set_boolean(event, "sysmon.file.is_executable", present["IsExecutable"])
    user_name = event.get("user.name")
    if user_name:
        append_unique(event, "related.user", user_name)
    for field in ("source.ip", "destination.ip"):
        address = event.get(field)
        if address:
            append_unique(event, "related.ip", address)
    if steps.registry and code in _REGISTRY_CODES and "TargetObject" in present:
        _map_registry(event, present["TargetObject"], present.get("Details"))


def _set_boolean(event: Event, field: str, text: str) -> None:
    value = es_convert_boolean(text)
    if value is not None:
        event[field] = value


def _map_hashes(event: Event, hashes: str, code: str) -> None:
    target = "process" if code in _PROCESS_HASH_CODES else "file" if code in _FILE_HASH_CODES else ""
    key = (hashes, target)
    mapped = _HASHES.get(key)
    if mapped is None:
        mapped = _hash_fields(hashes, target)
        _remember(_HASHES, key, mapped, len(hashes))
    related, fields = mapped
    if related:
        event["related.hash"] = list(related)
        event.update(fields)


def _hash_fields(hashes: str, target: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """``related.hash`` and the ``{target}.hash.*`` / ``{target}.pe.imphash`` fields of a Hashes value."""
    # kv processor (field_split ",", value_split "="), keys and values lower-cased, empty/all-zero dropped.
    found: dict[str, str] = {}
    for pair in hashes.split(","):
        key, separator, value = pair.partition("=")
        if not separator or not key:
            continue
        value = str.lower(value)
        if not value.strip("0"):
            continue
        found[str.lower(key)] = value
    fields: list[tuple[str, str]] = []
    if target:
        for key, value in found.items():
            fields.append((f"{target}.pe.imphash" if key == "imphash" else f"{target}.hash.{key}", value))
    return tuple(found.values()), tuple(fields)


def _argv(command_line: str) -> list[str]:
    args = _ARGV.get(command_line)
    if args is None:
        args = tuple(command_line_to_argv(command_line))
        _remember(_ARGV, command_line, args, len(command_line))
    return list(args)


# Pure functions of values that repeat across events (the same programs start again and again, with the same
# parent command lines and hashes): computed once per distinct value. Bounded in count and in text length,
# since the values come from the logs.
_MEMO_LIMIT = 4096
_MEMO_TEXT_LIMIT = 2048
_HASHES: dict[tuple[str, str], tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {}
_ARGV: dict[str, tuple[str, ...]] = {}
_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


def _remember(memo: dict[_Key, _Value], key: _Key, value: _Value, text_length: int) -> None:
    if text_length > _MEMO_TEXT_LIMIT:
        return
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value


def _map_process(event: Event, present: dict[str, str], code: str, *, pe: bool = True, args: bool = True) -> None:
    for source, target, is_long in _PROCESS_FIELDS:
        value = present.get(source)
        if value is None:
            continue
        if is_long:
            number = es_convert_long(value)
            if number is not None:
                event[target] = number
        else:
            event[target] = value
    if code != "7" and pe:
        for source, target in _PE_FIELDS:
            value = present.get(source)
            if value is not None:
                event["process.pe." + target] = value

    command_line = event.get("process.command_line")
    if command_line and args:
        process_args = _argv(command_line)
        event["process.args"] = process_args
        event["process.args_count"] = len(process_args)
    parent_command_line = event.get("process.parent.command_line")
    if parent_command_line and args:
        parent_args = _argv(parent_command_line)
        event["process.parent.args"] = parent_args
        event["process.parent.args_count"] = len(parent_args)

    executable = event.get("process.executable")
    if executable and "process.name" not in event:
        name = process_name(executable)
        if name is not None:
            event["process.name"] = name
    parent_executable = event.get("process.parent.executable")
    if parent_executable and "process.parent.name" not in event:
        name = process_name(parent_executable)
        if name is not None:
            event["process.parent.name"] = name


def _map_file(event: Event, present: dict[str, str], code: str) -> None:
    for source in _FILE_PATH_FIELDS:
        value = present.get(source)
        if value is not None:
            event["file.path"] = value
    pipe_name = present.get("PipeName")
    if pipe_name is not None:
        event["file.name"] = pipe_name
    image_loaded = present.get("ImageLoaded")
    if image_loaded is not None:
        event["file.path"] = image_loaded
    signature = present.get("Signature")
    if signature is not None:
        event["file.code_signature.subject_name"] = signature
    status = present.get("SignatureStatus")
    if status is not None:
        event["file.code_signature.status"] = status
    if code == "7":
        for source, target in _PE_FIELDS:
            value = present.get(source)
            if value is not None:
                event["file.pe." + target] = value
    # "Signed" is compared with the boolean true while winlogbeat sends the string "true", so the pipeline
    # never sets file.code_signature.signed; it is left unset here as well.
    if status == "Valid":
        event["file.code_signature.valid"] = True
    path = event.get("file.path")
    if path and len(path) > 1:
        index = path.rfind("\\")
        if index > -1:
            event["file.name"] = path[index + 1 :]
            event["file.directory"] = path[:index]
            dot = path.rfind(".")
            if dot > -1:
                event["file.extension"] = path[dot + 1 :]


def _map_network(event: Event, present: dict[str, str], code: str) -> None:
    protocol = present.get("Protocol")
    if protocol is not None:
        event["network.transport"] = protocol
    if code == "22":
        event["network.protocol"] = "dns"
    else:
        for source in ("DestinationPortName", "SourcePortName"):
            value = present.get(source)
            if value is not None:
                event["network.protocol"] = value
    for side in ("source", "destination"):
        prefix = "Source" if side == "source" else "Destination"
        address = present.get(prefix + "Ip")
        if address is not None:
            valid = es_convert_ip(address)
            if valid is not None:
                event[side + ".ip"] = valid
        host_name = present.get(prefix + "Hostname")
        if host_name is not None:
            event[side + ".domain"] = host_name
        port = present.get(prefix + "Port")
        if port is not None:
            number = es_convert_long(port)
            if number is not None:
                event[side + ".port"] = number
    query_name = present.get("QueryName")
    if query_name is not None:
        event["dns.question.name"] = query_name
    initiated = present.get("Initiated")
    if initiated == "true":
        event["network.direction"] = "egress"
    elif initiated == "false":
        event["network.direction"] = "ingress"
    source_is_ipv6 = present.get("SourceIsIpv6")
    if source_is_ipv6 == "false":
        event["network.type"] = "ipv4"
    elif source_is_ipv6 == "true":
        event["network.type"] = "ipv6"
    results = present.get("QueryResults")
    if results is not None:
        _map_dns_results(event, results)
    if query_name is not None:
        append_unique(event, "related.hosts", query_name)
    for address in event.get("dns.resolved_ip", ()):
        append_unique(event, "related.ip", address)


def _strip_v4_mapped(address: str) -> str:
    match = _V4_MAPPED.fullmatch(address)
    return match.group(1) if match is not None else address


def _map_dns_results(event: Event, results: str) -> None:
    answer_types: list[str] = []
    answer_data: list[str] = []
    resolved: list[str] = []
    for answer in results.split(";"):
        if not answer:
            continue
        if answer.startswith("type:"):
            parts = answer.split()
            if len(parts) < 2:
                # The pipeline's script throws here and processing stops; no DNS answers are kept.
                return
            record_type = _DNS_TYPES.get(parts[1])
            if record_type is not None:
                answer_types.append(record_type)
            if len(parts) == 3:
                answer_data.append(parts[2])
                append_unique(event, "related.hosts", parts[2])
        else:
            address = es_convert_ip(_strip_v4_mapped(answer))
            if address is not None:
                resolved.append(address)
    for address in resolved:
        # The pipeline synthesizes an A/AAAA answer for every resolved address.
        answer_types.append("AAAA" if ":" in address else "A")
        answer_data.append(address)
    # dns.answers is an array of objects: flattened, as Elasticsearch indexes it, into one list per leaf.
    if answer_types:
        event["dns.answers.type"] = answer_types
    if answer_data:
        event["dns.answers.data"] = answer_data
    if resolved:
        event["dns.resolved_ip"] = resolved


def _map_user(event: Event, present: dict[str, str]) -> None:
    # user.id is the System/Security UserID: the account Sysmon logs as (S-1-5-18), not the process owner.
    identifier = event.get("winlog.user.identifier")
    if identifier:
        event["user.id"] = identifier
    user = present.get("User")
    if user is None:
        return
    # The split processor (Java String.split) drops trailing empty parts; exactly two parts are required.
    parts = user.split("\\")
    while parts and not parts[-1]:
        parts.pop()
    if len(parts) == 2:
        if parts[0]:
            event["user.domain"] = parts[0]
        if parts[1]:
            event["user.name"] = parts[1]


def _map_registry(event: Event, path: str, details: str | None) -> None:
    event["registry.path"] = path
    tokens = path.split("\\")
    while len(tokens) > 1 and not tokens[-1]:
        tokens.pop()
    hive = _REGISTRY_HIVES.get(tokens[0])
    if hive is not None:
        event["registry.hive"] = hive
        if len(tokens) > 1:
            event["registry.key"] = "\\".join(tokens[1:])
    event["registry.value"] = tokens[-1]
    if not details:
        return
    qword = _QWORD.fullmatch(details)
    if qword is not None:
        # The pipeline shifts the high dword by 8 bits (not 32); kept as it computes it.
        value = (int(qword.group(2)[2:], 16) << 8) + int(qword.group(3)[2:], 16)
        event["registry.data.strings"] = [str(value)]
        event["registry.data.type"] = "SZ_QWORD"
        return
    dword = _DWORD.fullmatch(details)
    if dword is not None:
        event["registry.data.strings"] = [str(int(dword.group(1)[2:], 16))]
        event["registry.data.type"] = "SZ_DWORD"
        return
    event["registry.data.strings"] = [details]
    event["registry.data.type"] = "REG_BINARY" if details == "Binary Data" else "REG_SZ"
