"""Windows Security log events -> ECS, as Elastic's system/security pipeline maps them.

Follows ``x-pack/winlogbeat/module/security/ingest/security.yml`` (elastic/beats) and the system integration's
``security_standard`` pipeline that replaced it, which runs only for the providers
``Microsoft-Windows-Security-Auditing`` and ``Microsoft-Windows-Eventlog``. Where the two differ the current
integration wins: event data values ``""``, ``"-"`` and the null GUID are ignored (its
``remove_empty_values_from_event_data`` step) and the categorization table is the integration's, a superset of
the beats one. As in :mod:`shellwatch.normalize.sysmon`, ``winlog.event_data.*`` stays whole.

Mapped: the categorization of every listed event id, the subject/target/effective users, ``winlog.logon``,
the process fields of 4688/4689 and of the logon events, ``source.*`` of logons, ``service.*``.
Left out (lookup tables of message strings and SDDL): UAC flags, Kerberos ticket options and status codes,
audit policy categories, access masks, object permissions.
"""

from __future__ import annotations

from typing import Any, Final

from shellwatch.ecs import Event
from shellwatch.normalize.command_line import split_keeping_quotes
from shellwatch.normalize.conversions import java_long_decode
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.pipeline_values import EMPTY_VALUES, append_unique

_IAM = ("iam",)
_IAM_CONF = ("iam", "configuration")
_CONF = ("configuration",)
_AUTH = ("authentication",)
_NET_FILE = ("network", "file")

# event.code -> (category, type, action): the integration's "Set ECS categorization fields" table.
_CATEGORIZATION: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]] = {
    "1100": (("process",), ("end",), "logging-service-shutdown"),
    "1102": (_IAM, ("admin", "change"), "audit-log-cleared"),
    "1104": (_IAM, ("admin",), "logging-full"),
    "1105": (_IAM, ("admin",), "auditlog-archieved"),
    "1108": (_IAM, ("admin",), "logging-processing-error"),
    "4610": (_CONF, ("access",), "authentication-package-loaded"),
    "4611": (_CONF, ("change",), "trusted-logon-process-registered"),
    "4614": (_CONF, ("access",), "notification-package-loaded"),
    "4616": (_CONF, ("change",), "system-time-changed"),
    "4622": (_CONF, ("access",), "security-package-loaded"),
    "4624": (_AUTH, ("start",), "logged-in"),
    "4625": (_AUTH, ("start",), "logon-failed"),
    "4634": (_AUTH, ("end",), "logged-out"),
    "4647": (_AUTH, ("end",), "logged-out"),
    "4648": (_AUTH, ("start",), "logged-in-explicit"),
    "4657": (("registry", "configuration"), ("change",), "registry-value-modified"),
    "4662": (_IAM_CONF, ("admin", "change"), "object-operation-performed"),
    "4670": (_IAM_CONF, ("admin", "change"), "permissions-changed"),
    "4672": (_IAM, ("admin",), "logged-in-special"),
    "4673": (_IAM, ("admin",), "privileged-service-called"),
    "4674": (_IAM, ("admin",), "privileged-operation"),
    "4688": (("process",), ("start",), "created-process"),
    "4689": (("process",), ("end",), "exited-process"),
    "4697": (_IAM_CONF, ("admin", "change"), "service-installed"),
    "4698": (_IAM_CONF, ("creation", "admin"), "scheduled-task-created"),
    "4699": (_IAM_CONF, ("deletion", "admin"), "scheduled-task-deleted"),
    "4700": (_IAM_CONF, ("change", "admin"), "scheduled-task-enabled"),
    "4701": (_IAM_CONF, ("change", "admin"), "scheduled-task-disabled"),
    "4702": (_IAM_CONF, ("change", "admin"), "scheduled-task-updated"),
    "4706": (_CONF, ("creation",), "domain-trust-added"),
    "4707": (_CONF, ("deletion",), "domain-trust-removed"),
    "4713": (_CONF, ("change",), "kerberos-policy-changed"),
    "4714": (_CONF, ("change",), "encrypted-data-recovery-policy-changed"),
    "4715": (_CONF, ("change",), "object-audit-policy-changed"),
    "4716": (_CONF, ("change",), "trusted-domain-information-changed"),
    "4717": (_IAM_CONF, ("admin", "change"), "system-security-access-granted"),
    "4718": (_IAM_CONF, ("admin", "deletion"), "system-security-access-removed"),
    "4719": (_IAM_CONF, ("admin", "change"), "changed-audit-config"),
    "4720": (_IAM, ("user", "creation"), "added-user-account"),
    "4722": (_IAM, ("user", "change"), "enabled-user-account"),
    "4723": (_IAM, ("user", "change"), "changed-password"),
    "4724": (_IAM, ("user", "change"), "reset-password"),
    "4725": (_IAM, ("user", "deletion"), "disabled-user-account"),
    "4726": (_IAM, ("user", "deletion"), "deleted-user-account"),
    "4727": (_IAM, ("group", "creation"), "added-group-account"),
    "4728": (_IAM, ("group", "change"), "added-member-to-group"),
    "4729": (_IAM, ("group", "change"), "removed-member-from-group"),
    "4730": (_IAM, ("group", "deletion"), "deleted-group-account"),
    "4731": (_IAM, ("group", "creation"), "added-group-account"),
    "4732": (_IAM, ("group", "change"), "added-member-to-group"),
    "4733": (_IAM, ("group", "change"), "removed-member-from-group"),
    "4734": (_IAM, ("group", "deletion"), "deleted-group-account"),
    "4735": (_IAM, ("group", "change"), "modified-group-account"),
    "4737": (_IAM, ("group", "change"), "modified-group-account"),
    "4738": (_IAM, ("user", "change"), "modified-user-account"),
    "4739": (_CONF, ("change",), "domain-policy-changed"),
    "4740": (_IAM, ("user", "change"), "locked-out-user-account"),
    "4741": (_IAM, ("creation", "admin"), "added-computer-account"),
    "4742": (_IAM, ("change", "admin"), "changed-computer-account"),
    "4743": (_IAM, ("deletion", "admin"), "deleted-computer-account"),
    "4744": (_IAM, ("group", "creation"), "added-distribution-group-account"),
    "4745": (_IAM, ("group", "change"), "changed-distribution-group-account"),
    "4746": (_IAM, ("group", "change"), "added-member-to-distribution-group"),
    "4747": (_IAM, ("group", "change"), "removed-member-from-distribution-group"),
    "4748": (_IAM, ("group", "deletion"), "deleted-distribution-group-account"),
    "4749": (_IAM, ("group", "creation"), "added-distribution-group-account"),
    "4750": (_IAM, ("group", "change"), "changed-distribution-group-account"),
    "4751": (_IAM, ("group", "change"), "added-member-to-distribution-group"),
    "4752": (_IAM, ("group", "change"), "removed-member-from-distribution-group"),
    "4753": (_IAM, ("group", "deletion"), "deleted-distribution-group-account"),
    "4754": (_IAM, ("group", "creation"), "added-group-account"),
    "4755": (_IAM, ("group", "change"), "modified-group-account"),
    "4756": (_IAM, ("group", "change"), "added-member-to-group"),
    "4757": (_IAM, ("group", "change"), "removed-member-from-group"),
    "4758": (_IAM, ("group", "deletion"), "deleted-group-account"),
    "4759": (_IAM, ("group", "creation"), "added-distribution-group-account"),
    "4760": (_IAM, ("group", "change"), "changed-distribution-group-account"),
    "4761": (_IAM, ("group", "change"), "added-member-to-distribution-group"),
    "4762": (_IAM, ("group", "change"), "removed-member-from-distribution-group"),
    "4763": (_IAM, ("group", "deletion"), "deleted-distribution-group-account"),
    "4764": (_IAM, ("group", "change"), "type-changed-group-account"),
    "4767": (_IAM, ("user", "change"), "unlocked-user-account"),
    "4768": (_AUTH, ("start",), "kerberos-authentication-ticket-requested"),
    "4769": (_AUTH, ("start",), "kerberos-service-ticket-requested"),
    "4770": (_AUTH, ("start",), "kerberos-service-ticket-renewed"),
    "4771": (_AUTH, ("start",), "kerberos-preauth-failed"),
    "4776": (_AUTH, ("start",), "credential-validated"),
    "4778": (("authentication", "session"), ("start",), "session-reconnected"),
    "4779": (("authentication", "session"), ("end",), "session-disconnected"),
    "4781": (_IAM, ("user", "change"), "renamed-user-account"),
    "4797": (_IAM, ("user", "info"), "query-existence-of-blank-password"),
    "4798": (_IAM, ("user", "info"), "group-membership-enumerated"),
    "4799": (_IAM, ("group", "info"), "user-member-enumerated"),
    "4817": (_IAM_CONF, ("admin", "change"), "object-audit-changed"),
    "4902": (_IAM_CONF, ("admin", "creation"), "user-audit-policy-created"),
    "4904": (_IAM_CONF, ("admin", "change"), "security-event-source-added"),
    "4905": (_IAM_CONF, ("admin", "deletion"), "security-event-source-removed"),
    "4906": (_IAM_CONF, ("admin", "change"), "crash-on-audit-changed"),
    "4907": (_IAM_CONF, ("admin", "change"), "audit-setting-changed"),
    "4908": (_IAM_CONF, ("admin", "change"), "special-group-table-changed"),
    "4912": (_IAM_CONF, ("admin", "change"), "per-user-audit-policy-changed"),
    "4950": (_CONF, ("change",), "windows-firewall-setting-changed"),
    "4954": (_CONF, ("change",), "windows-firewall-group-policy-changed"),
    "4964": (_IAM, ("admin", "group"), "logged-in-special"),
    "5024": (("process",), ("start",), "windows-firewall-service-started"),
    "5025": (("process",), ("end",), "windows-firewall-service-stopped"),
    "5033": (("driver",), ("start",), "windows-firewall-driver-started"),
    "5034": (("driver",), ("end",), "windows-firewall-driver-stopped"),
    "5037": (("driver",), ("end",), "windows-firewall-driver-error"),
    "5136": (_IAM_CONF, ("admin", "change"), "directory-service-object-modified"),
    "5137": (_IAM_CONF, ("admin", "creation"), "directory-service-object-created"),
    "5140": (_NET_FILE, ("info", "access"), "network-share-object-accessed"),
    "5141": (_IAM_CONF, ("admin", "deletion"), "directory-service-object-deleted"),
    "5145": (_NET_FILE, ("info", "access"), "network-share-object-access-checked"),
    "5152": (("network",), ("connection", "info", "denied"), "windows-firewall-packet-drop"),
    "5156": (("network",), ("connection", "info", "allowed"), "windows-firewall-connection"),
    "5157": (("network",), ("connection", "info", "denied"), "windows-firewall-packet-block"),
    "5158": (("network",), ("info",), "windows-firewall-bind-local-port"),
    "5379": (_IAM, ("user", "info"), "credential-manager-credentials-were-read"),
    "5380": (_IAM, ("user", "info"), "vault-credential-find"),
    "5381": (_IAM, ("user", "info"), "vault-credentials-were-read"),
    "5382": (_IAM, ("user", "info"), "vault-credentials-were-read"),
}

_LOGON_TYPES: Final = {
    "2": "Interactive",
    "3": "Network",
    "4": "Batch",
    "5": "Service",
    "7": "Unlock",
    "8": "NetworkCleartext",
    "9": "NewCredentials",
    "10": "RemoteInteractive",
    "11": "CachedInteractive",
}

_SERVICE_TYPES: Final = {
    "0x1": "Kernel Driver",
    "0x2": "File System Driver",
    "0x8": "Recognizer Driver",
    "0x10": "Win32 Own Process",
    "0x20": "Win32 Share Process",
    "0x110": "Interactive Own Process",
    "0x120": "Interactive Share Process",
}

# Event ids whose Subject* fields become user.* ("Copy Subject User from Event Data").
_SUBJECT_USER_CODES: Final = frozenset(
    [
        "4657",
        "4670",
        "4672",
        "4673",
        "4674",
        "4688",
        "4689",
        "4697",
        "4698",
        "4699",
        "4700",
        "4701",
        "4702",
        "4706",
        "4707",
        "4713",
        "4716",
        "4717",
        "4718",
        "4719",
        "4720",
        "4722",
        "4723",
        "4724",
        "4725",
        "4726",
        "4727",
        "4728",
        "4729",
        "4730",
        "4731",
        "4732",
        "4733",
        "4734",
        "4735",
        "4737",
        "4738",
        "4739",
        "4740",
        "4741",
        "4742",
        "4743",
        "4744",
        "4745",
        "4746",
        "4747",
        "4748",
        "4749",
        "4750",
        "4751",
        "4752",
        "4753",
        "4754",
        "4755",
        "4756",
        "4757",
        "4758",
        "4759",
        "4760",
        "4761",
        "4762",
        "4763",
        "4764",
        "4767",
        "4781",
        "4798",
        "4799",
        "4817",
        "4904",
        "4905",
        "4907",
        "4912",
        "4648",
    ]
)
# Event ids whose Target* fields become user.target.* ("Copy Target User to Target").
_TARGET_USER_CODES: Final = frozenset(
    ["4670", "4720", "4722", "4723", "4724", "4725", "4726", "4738", "4740", "4767", "4798", "4817", "4907"]
)
# Event ids whose Target* fields become user.effective.*: the account the new process or logon runs as.
_EFFECTIVE_USER_CODES: Final = frozenset(("4648", "4688"))
# Event ids whose ProcessId/ProcessName/IpAddress/... become process.* and source.* ("Rename Common Auth
# Fields").
_COMMON_AUTH_CODES: Final = frozenset(
    [
        "1100",
        "1102",
        "1104",
        "1105",
        "1108",
        "4624",
        "4648",
        "4625",
        "4670",
        "4673",
        "4674",
        "4689",
        "4697",
        "4719",
        "4720",
        "4722",
        "4723",
        "4724",
        "4725",
        "4726",
        "4727",
        "4728",
        "4729",
        "4730",
        "4731",
        "4732",
        "4733",
        "4734",
        "4735",
        "4737",
        "4738",
        "4740",
        "4741",
        "4742",
        "4743",
        "4744",
        "4745",
        "4746",
        "4747",
        "4748",
        "4749",
        "4750",
        "4751",
        "4752",
        "4753",
        "4754",
        "4755",
        "4756",
        "4757",
        "4758",
        "4759",
        "4760",
        "4761",
        "4762",
        "4763",
        "4764",
        "4767",
        "4768",
        "4769",
        "4770",
        "4771",
        "4798",
        "4799",
        "4817",
        "4904",
        "4905",
        "4907",
        "4912",
    ]
)
_TARGET_LOGON_ID_CODES: Final = frozenset(("4634", "4647", "4964"))
_RELATED_TARGET_USER_CODES: Final = frozenset(
    ["4688", "4720", "4722", "4723", "4724", "4725", "4726", "4738", "4740", "4767", "4798"]
)


def process_name(path: str) -> str | None:
    """The security pipeline's name: ``path.splitOnToken("\\\\")[-1]``, the part after the last backslash
    (the whole string when there is none); an empty result is dropped as the integration drops blank
    strings."""
    return path.rpartition("\\")[2] or None


def _categorize(event: Event, code: str) -> None:
    categorization = _CATEGORIZATION.get(code)
    if categorization is not None:
        category, kind, action = categorization
        event["event.category"] = list(category)
        event["event.type"] = list(kind)
        event["event.action"] = action


def class_fields(code: str) -> dict[str, Any]:
    """The fields :func:`map_security` sets from the event id alone, the same in every Security event with that
    id, with ``None`` for those it never sets for it. Nothing else in the mapping writes them."""
    fields: Event = {"event.module": "security", "event.category": None, "event.type": None, "event.action": None}
    _categorize(fields, code)
    return fields


def map_security(event: Event, data: dict[str, str], code: str, demand: FieldDemand | None = None) -> None:
    """Add the ECS fields of a Security log event to ``event``; ``data`` is its event data (or, for
    1102 and the other UserData events, its user data) by field name, ``code`` the event id. Every step runs
    whatever the ``demand``."""
    present = {key: value for key, value in data.items() if value not in EMPTY_VALUES}
    event["event.module"] = "security"
    _categorize(event, code)

    logon_type = _LOGON_TYPES.get(present.get("LogonType", ""))
    if logon_type is not None:
        event["winlog.logon.type"] = logon_type
    service_name = present.get("ServiceName")
    if service_name is not None:
        event["service.name"] = service_name
    service_type = _SERVICE_TYPES.get(present.get("ServiceType", ""))
    if service_type is not None:
        event["service.type"] = service_type

    if code in _TARGET_LOGON_ID_CODES and "TargetLogonId" in present:
        event["winlog.logon.id"] = present["TargetLogonId"]
    if code in _SUBJECT_USER_CODES or code == "1102":
        _copy_subject_user(event, present)
    if code in _TARGET_USER_CODES:
        _copy_target_user(event, present, "user.target", present.get("TargetSid"))
    if code in _EFFECTIVE_USER_CODES:
        _copy_target_user(event, present, "user.effective", present.get("TargetUserSid"))
    if "SubjectLogonId" in present:
        event["winlog.logon.id"] = present["SubjectLogonId"]

    if code in _COMMON_AUTH_CODES:
        _rename_common_auth_fields(event, present)
    if code == "4688":
        _map_process_creation(event, present)

    if code in ("4624", "4648") and "SubjectUserName" in present:
        append_unique(event, "related.user", present["SubjectUserName"])
    if code in _RELATED_TARGET_USER_CODES and "TargetUserName" in present:
        append_unique(event, "related.user", present["TargetUserName"])
    source_ip = event.get("source.ip")
    if source_ip:
        append_unique(event, "related.ip", source_ip)


def _copy_subject_user(event: Event, present: dict[str, str]) -> None:
    sid = present.get("SubjectUserSid")
    if sid is not None:
        event["user.id"] = sid
    name = present.get("SubjectUserName")
    if name is not None:
        event["user.name"] = name
        append_unique(event, "related.user", name)
    domain = present.get("SubjectDomainName")
    if domain is not None:
        event["user.domain"] = domain


def _copy_target_user(event: Event, present: dict[str, str], prefix: str, sid: str | None) -> None:
    if sid is not None:
        event[prefix + ".id"] = sid
    name = present.get("TargetUserName")
    if name is not None:
        # user@domain names keep only the user part; a blank result is dropped like every blank string.
        name = name.split("@", 1)[0] if "@" in name else name
        if name:
            event[prefix + ".name"] = name
            append_unique(event, "related.user", name)
    domain = present.get("TargetDomainName")
    if domain is not None:
        event[prefix + ".domain"] = domain


def _rename_common_auth_fields(event: Event, present: dict[str, str]) -> None:
    pid = present.get("ProcessId")
    if pid is not None:
        number = java_long_decode(pid)
        if number is not None:
            event["process.pid"] = number
    executable = present.get("ProcessName")
    if executable is not None:
        event["process.executable"] = executable
    address = present.get("IpAddress")
    if address is not None:
        # The pipeline's gsub removes every "::ffff:" (IPv4-mapped addresses become IPv4).
        event["source.ip"] = address.replace("::ffff:", "")
    port = present.get("IpPort")
    if port is not None:
        number = java_long_decode(port)
        if number is not None:
            event["source.port"] = number
    workstation = present.get("WorkstationName")
    if workstation is not None:
        event["source.domain"] = workstation
    if executable is not None and "process.name" not in event:
        name = process_name(executable)
        if name is not None:
            event["process.name"] = name


def _map_process_creation(event: Event, present: dict[str, str]) -> None:
    # The pipeline's "Process Event 4688" script.
    new_pid = present.get("NewProcessId")
    if new_pid is not None:
        number = java_long_decode(new_pid)
        if number is not None:
            event["process.pid"] = number
    executable = present.get("NewProcessName")
    if executable is not None:
        event["process.executable"] = executable
        name = process_name(executable)
        if name is not None:
            event["process.name"] = name
    parent_executable = present.get("ParentProcessName")
    if parent_executable is not None:
        event["process.parent.executable"] = parent_executable
        parent_name = process_name(parent_executable)
        if parent_name is not None:
            event["process.parent.name"] = parent_name
    # 4688's ProcessId is the creator, i.e. the parent of the new process.
    parent_pid = present.get("ProcessId")
    if parent_pid is not None:
        number = java_long_decode(parent_pid)
        if number is not None:
            event["process.parent.pid"] = number
    command_line = present.get("CommandLine")
    if command_line is not None:
        args = split_keeping_quotes(command_line)
        if args:
            event["process.args"] = args
        event["process.command_line"] = command_line
