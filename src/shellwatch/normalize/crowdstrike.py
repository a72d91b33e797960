"""CrowdStrike Falcon Data Replicator (FDR) events -> ECS, as Elastic's ``crowdstrike.fdr`` pipeline maps them.

FDR delivers one flat JSON object per line, every value a string: ``event_simpleName`` names the event
(``ProcessRollup2``, ``SyntheticProcessRollup2``, ``DnsRequest``...), ``aid``/``cid`` the sensor and customer,
``timestamp`` the cloud time in epoch milliseconds, ``event_platform`` the OS (``Win``/``Lin``/``Mac``). A process
rollup carries ``ImageFileName`` (a device path, ``\\Device\\HarddiskVolume3\\Windows\\System32\\cmd.exe``),
``CommandLine``, ``RawProcessId`` (the OS pid), ``TargetProcessId`` (Falcon's id of the process),
``ParentProcessId`` (Falcon's id of the parent, not its pid), ``ParentBaseFileName`` (not on every rollup),
``UserSid``, ``UserName``, ``*HashData`` and ``ProcessStartTime`` (epoch seconds with a fraction). With the
aidmaster/userinfo enrichment a ``metadata`` object is added.

Every mapping follows ``elastic/integrations`` ``packages/crowdstrike/data_stream/fdr/elasticsearch/
ingest_pipeline/default.yml`` @ 007bb7a3c62851fdca8f45fa758a3e67e7071519, step by step in its order (an
earlier step's result decides a later one, as there): the categorization table, ``event.id``/``event.action``,
the count/port conversion, the hash, observer, host, OS, process and user sections, ``Tags``, the cleanup and
the final removal of ``null``/``""``/``"-"``/``"none"`` values. What the pipeline does not rename stays under
``crowdstrike.*`` (``metadata`` as ``crowdstrike.info.*``), so nothing the sensor sent is lost.

Where this module differs from the pipeline, and why:

* ``@timestamp`` without any readable time field is left out: the pipeline falls back to the ingest time, which
  would make the output depend on when it was read.
* A conversion that would fail the whole document there (``ProcessStartTime``, ``ContextTimeStamp``,
  ``ProcessGroupId``, ``ExitCode``, ``ContextThreadId`` that are not numbers; a ``RawProcessId`` that is not an
  unsigned long) leaves that one field under ``crowdstrike.*`` instead: a forged value must not hide the rest of
  the event from the rules.
* ``process.uptime`` is not computed: the pipeline's script parses the times as 32-bit floats (128-second
  steps at today's epoch) and divides seconds by 1000, so it is 0 for almost every process.
* The network, DNS, SMB, URL, geo and ``file.*`` path sections are not ported (their fields stay under
  ``crowdstrike.*``; ``DomainName``, ``ConnectionDirection`` and ``TargetDirectoryName``, which the pipeline
  deletes once mapped, are kept for that reason). ``StartTime``/``EndTime``/``LogonTime``-style dates stay as sent.
* Newer pipeline versions also set ``host.id``, ``device.id``, ``message`` and keep ``event_simpleName``; the
  version named above, which the project's mapping notes were checked against, does not.

Parent resolution (not in the pipeline; Elastic leaves the parent's path, command line and pid empty): a process
rollup names its parent only by Falcon id, and older sensors leave out ``ParentBaseFileName``. Each
``ProcessRollup2``/``SyntheticProcessRollup2`` is remembered per input under (``aid``, ``TargetProcessId``), at
most :attr:`~shellwatch.normalize.context.SourceContext.process_memory` of them, the oldest forgotten first. A
later process-creation event of the same ``aid`` whose ``ParentProcessId`` is a remembered id gets
``process.parent.name``, ``.executable``, ``.command_line`` and ``.pid`` from that rollup, and
``shellwatch.parent_resolved_from`` set to the parent rollup's ``event.id`` (``id|aid|cid``). When the event has
its own ``ParentBaseFileName``, that name wins, as in the pipeline; the other parent fields are still taken from
memory, but only when the remembered process has that name (case-insensitive), so a stale or forged id never
pairs one process's name with another's path. Only earlier lines count: FDR files are not strictly in time order,
and a parent whose rollup comes later in the file stays unresolved. Paths and command lines longer than
:data:`REMEMBERED_TEXT_LIMIT` characters are not remembered (left out rather than cut), which bounds an entry.
Normalizing the same event twice in a row gives the same event (see :class:`ProcessMemory`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shellwatch.ecs import Event, flatten
from shellwatch.normalize.command_line import command_line_to_argv
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.conversions import es_convert_ip, es_convert_long
from shellwatch.normalize.pipeline_values import append_unique
from shellwatch.normalize.timestamps import iso_utc

FAMILY: Final = "crowdstrike_fdr"

REMEMBERED_TEXT_LIMIT: Final = 4096
"""The longest executable path or command line a remembered process keeps; longer ones are not remembered."""

PARENT_RESOLVED_FROM: Final = "shellwatch.parent_resolved_from"
"""Set on an event whose parent fields came from an earlier rollup: that rollup's ``event.id``."""

# The pipeline's categorization script (tag script-categorize-events), one event_simpleName a line:
# name, event.category, event.type (comma-separated lists), event.kind, event.outcome.
_CATEGORIZATION_TABLE: Final = """
AcUninstallConfirmation package deletion state success
AcUnloadConfirmation package deletion state success
AgentConnect network,session connection,info event success
AgentOnline configuration,package,host change,installation,start state success
AmsiRegistrationStatus host info state success
AsepFileChange file creation,change event success
AsepKeyUpdate registry change event success
AsepValueUpdate registry change event success
AssociateIndicator malware info alert unknown
AssociateTreeIdWithRoot malware info alert success
BITSJobCreated network,file connection,creation event success
BZip2FileWritten file creation event success
BehaviorWhitelisted configuration change event success
BrowserInjectedThread process access,change event success
CloudAssociateTreeIdWithRoot malware deletion alert success
CommandHistory process end,info event success
ConfigStateUpdate configuration change event success
CrashNotification host info event failure
CreateProcessArgs process start state success
CreateService host change event success
CreateThreadNoStartImage process start event success
CreateThreadReflectiveDll process change event success
CriticalEnvironmentVariableChanged configuration,host change event success
CriticalFileAccessed file access alert success
CriticalFileModified file change alert success
CurrentSystemTags host info state success
CustomIOABasicProcessDetectionInfoEvent malware info alert unknown
DCSyncAttempted configuration,iam access event unknown
DcOffline iam info event success
DcOnline iam info event success
DcStatus iam info state success
DetectAnalysis malware info alert success
DetectionExcluded configuration,malware change,info alert success
DirectoryCreate file creation event success
DllInjection process change event success
DmpFileWritten file creation event success
DnsRequest network protocol event success
DocumentProgramInjectedThread process access,change event success
DriverLoad driver start event success
DwgFileWritten file creation event success
EarlyExploitPivotDetect malware info event unknown
EndOfProcess process end event success
ErrorEvent package info alert failure
EtwErrorEvent package,host info event failure
ExecutableDeleted file deletion event success
FalconHostRegTamperingInfo registry change alert unknown
FalconServiceStatus package info state unknown
FileCreateInfo file creation event success
FileDeleteInfo file deletion event success
FileDetectInfo file info alert unknown
FileInfo file info event unknown
FileOpenInfo file access event success
FileRenameInfo file change event success
FileSystemOperationBlocked file change,deletion event failure
FileSystemOperationDetectInfo file change,deletion alert unknown
FileTimestampsModified file change event success
FirewallChangeOption configuration,host change event success
FirewallDeleteRule configuration change event success
FirewallDeleteRuleIP4 configuration change event success
FirewallDeleteRuleIP6 configuration change event success
FirewallDisabled configuration,host change event success
FirewallEnabled configuration,host change event success
FirewallSetRule configuration change event success
FirewallSetRuleIP4 configuration change event success
FirewallSetRuleIP6 configuration change event success
FirmwareAnalysisErrorEvent host info state failure
FirmwareAnalysisHardwareData host info state success
FirmwareAnalysisStatus host info state success
FlashThreadCreateProcess process start event success
FsPostOpenSnapshotFile file access event success
FsVolumeMounted host change event success
FsVolumeUnmounted host change event success
HostInfo host info event success
HostedServiceStarted process start event success
HostedServiceStopped process end event success
HostnameChanged host change event success
HttpRequestDetect network,session connection,start event success
HttpVisibilityStatus session info state unknown
IOServiceRegister package change event success
ImageHash process change event success
InjectedThread process change event success
InjectedThreadFromUnsignedModule process change alert success
InstallBundleDownloadComplete file creation event success
InstallServiceDownloadComplete file creation event success
InstalledApplication package installation event success
InstalledUpdates host,package change,installation event success
InstanceMetadata host info state unknown
IoSessionConnected session start event success
IoSessionLoggedOn session end event success
JarFileWritten file creation event success
JavaClassFileWritten file creation event success
JavaInjectedThread process change event success
KernelModeLoadImage driver start event success
KextLoad driver start event success
KextUnload driver end event success
LFODownloadConfirmation file creation event success
LfoUploadDataComplete file change event success
LfoUploadDataFailed file change event failure
LfoUploadDataUnneeded file change event failure
LocalIpAddressIP4 configuration,host change state success
LocalIpAddressIP6 configuration,host change state success
LocalIpAddressRemovedIP4 configuration,host change state success
LocalIpAddressRemovedIP6 configuration,host change state success
LsassHandleFromUnsignedModule process change alert unknown
MachOFileWritten file change event success
ManifestDownloadComplete configuration,file change,creation event success
ModifyServiceBinary file change alert unknown
ModuleBlockedEvent process,malware info,denied alert success
ModuleBlockedEventWithPatternId process,malware info event unknown
ModuleDetectInfo process,malware info event unknown
NeighborListIP4 host,network info state unknown
NeighborListIP6 host,network info state unknown
NetShareAdd host change event success
NetShareDelete host change event success
NetShareSecurityModify configuration change event success
NetworkCloseIP4 network end,connection event unknown
NetworkCloseIP6 network end,connection event unknown
NetworkConnectIP4 network start,connection event unknown
NetworkConnectIP6 network start,connection event unknown
NetworkListenIP4 network start event success
NetworkListenIP6 network start event success
NetworkReceiveAcceptIP4 network allowed,access,connection event unknown
NetworkReceiveAcceptIP6 network allowed,access,connection event unknown
NewExecutableRenamed file change event success
NewExecutableWritten file creation event success
NewScriptWritten file creation event success
OciContainerTelemetry host info state unknown
OleFileWritten file creation event success
OoxmlFileWritten file creation event success
OsVersionInfo host info event success
PackedExecutableWritten file creation event success
PdfFileWritten file creation event success
PeFileWritten file creation event success
PeVersionInfo file info event success
PrivilegedProcessHandleFromUnsignedModule process access alert success
ProcessBlocked process access alert failure
ProcessExecOnPackedExecutable process,file access alert success
ProcessExecOnSMBFile process,file,network access alert success
ProcessHandleOpDetectInfo process,malware info alert success
ProcessInjection process change event success
ProcessRollup2 process start event success
ProcessRollup2Stats process info state unknown
ProcessSelfDeleted process end event success
PromiscuousBindIP4 host change state success
PtyCreated file creation event success
QuarantineActionResult file info alert unknown
QuarantinedFile file change alert unknown
QuarantinedFileState file info alert unknown
QueueApcEtw file creation alert success
RansomwareCreateFile file creation alert success
RansomwareFileAccessPattern file access alert success
RansomwareOpenFile file access alert success
RarFileWritten file creation event success
RawBindIP4 network start,connection event success
RawBindIP6 network start,connection event success
ReflectiveDllOpenProcess process access alert success
RegGenericValueUpdate registry change event success
RegSystemConfigValueUpdate registry,host,configuration change event success
RegisterRawInputDevicesEtw host,configuration change event success
RegistryOperationDetectInfo malware,registry info alert success
RemoteBruteForceDetectInfo malware,authentication info alert success
RemovableDiskModuleLoadAttempt configuration,host change event success
RemovableMediaVolumeMounted configuration,host change event success
RtfFileWritten file creation event success
SAMHashDumpFromUnsignedModule registry,file access,creation alert success
ScheduledTaskDeleted configuration deletion event success
ScheduledTaskModified configuration change event success
ScheduledTaskRegistered configuration creation event success
ScreenshotTakenEtw process access event success
ScriptControlBlocked malware,file info alert success
ScriptControlDetectInfo malware,file info alert success
ScriptControlErrorEvent malware,file info alert failure
ScriptControlScanInfo malware,file info state success
ScriptControlScanTelemetry malware,file info state success
SensitiveWmiQuery malware,process info alert success
SensorHeartbeat package info event success
ServiceStarted process start event success
SetWinEventHookEtw host,configuration change event success
SevenZipFileWritten file creation event success
SignInfoError file info state failure
SignInfoWithCertAndContext file info state unknown
SignInfoWithContext file info state unknown
SmbClientNamedPipeConnectEtw network connection event success
SmbClientShareClosedEtw network connection,end event success
SmbClientShareOpenedEtw network connection,start event success
SmbServerShareOpenedEtw network connection,start event success
SmbServerV1AuditEtw network connection state unknown
SnapshotVolumeMounted host,configuration change event success
SuspiciousCreateSymbolicLink malware,file creation,info alert success
SuspiciousDnsRequest network start,protocol alert success
SuspiciousEseFileWritten malware,file creation,info alert success
SuspiciousRegAsepUpdate malware,registry,configuration change,info alert success
SuspiciousUserRemoteAPCAttempt malware,process info alert success
SyntheticProcessRollup2 process start event success
SystemCapacity host info state success
TarFileWritten file creation event success
TelemetryCounters2 host info state success
TelemetryNetworkConnections network connection state success
TelemetryStats host info state success
TerminateProcess process end event success
TokenImpersonated process,authentication info,change event success
UACCOMElevation process,authentication info,change event success
UACExeElevation process,authentication info,change event success
UACMSIElevation process,authentication info,change event success
UmppaErrorEvent package info event failure
UnsignedModuleLoad process change alert success
UpdateManifestDownloadComplete file creation event success
UserAccountAddedToGroup configuration,iam change,group event success
UserAccountCreated configuration,iam creation event success
UserAccountDeleted configuration,iam deletion event success
UserExceptionDEP process,malware info alert success
UserFontLoad configuration change event success
UserIdentity authentication,iam info,user event success
UserLogoff authentication end event success
UserLogon authentication start event success
UserLogonFailed authentication start event failure
UserLogonFailed2 authentication start event failure
VolumeSnapshotCreated file creation event success
VolumeSnapshotDeleted file deletion event success
WfpFilterTamperingFilterAdded configuration change event success
WfpFilterTamperingFilterDeleted configuration change event success
WmiCreateProcess process start event success
WmiFilterConsumerBindingEtw configuration change event success
WmiProviderRegistrationEtw configuration change event success
WroteExeAndGeneratedServiceEvent process access alert success
XarFileWritten file creation event success
ZipFileWritten file creation event success
"""


@dataclass(frozen=True, slots=True)
class Categorization:
    """The ``event.*`` fields the pipeline's table gives one ``event_simpleName``."""

    category: tuple[str, ...]
    type: tuple[str, ...]
    kind: str
    outcome: str


def _parse_categorization(table: str) -> dict[str, Categorization]:
    rows: dict[str, Categorization] = {}
    for line in table.strip().splitlines():
        name, category, kinds_of, kind, outcome = line.split()
        rows[name] = Categorization(tuple(category.split(",")), tuple(kinds_of.split(",")), kind, outcome)
    return rows


CATEGORIZATION: Final = _parse_categorization(_CATEGORIZATION_TABLE)
"""event_simpleName -> its categorization, as the pipeline's table gives it."""

PROCESS_CREATIONS: Final = frozenset(("ProcessRollup2", "SyntheticProcessRollup2", "WmiCreateProcess"))
"""The events that create a process: their parent is resolved from memory when the event does not name it."""

_REMEMBERED_ROLLUPS: Final = frozenset(("ProcessRollup2", "SyntheticProcessRollup2"))
"""The events that describe a process fully (path, command line, pid) under its Falcon id."""

# The remove-empty-hashes script's params, in its order (related.hash keeps that order).
_HASH_FIELDS: Final = (("MD5HashData", "md5"), ("SHA1HashData", "sha1"), ("SHA256HashData", "sha256"))
_OS_TYPES: Final = {"Win": "windows", "Lin": "linux", "Mac": "macos"}
# The remove-nulls script drops these values wherever they are; nothing else is treated as empty.
_REMOVED_VALUES: Final = frozenset(("", "-", "none"))
# Windows FILETIMEs above this are converted to epoch seconds (the pipeline's 0x0100000000000000 constant).
_FILETIME_FLOOR: Final = 0x0100000000000000
_FILETIME_EPOCH_OFFSET: Final = 11644473600
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DECIMAL: Final = re.compile(r"(-?)([0-9]{1,19})(?:\.([0-9]*))?")
_JAVA_LONG: Final = re.compile(r"[+-]?[0-9]+")
_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_TAG_SEPARATOR: Final = re.compile(r",\s?")
_WHITESPACE: Final = re.compile(r"\s+")
_AT: Final = re.compile("@")
# Cleanup step: time fields the pipeline deletes once parsed, and UserIsAdmin once mapped to user.roles.
_DELETED_AT_CLEANUP: Final = ("timestamp", "_time", "Time", "CreationTimeStamp", "UserIsAdmin", "UTCTimestamp")


def is_crowdstrike_record(document: Mapping[str, Any]) -> bool:
    """Whether a decoded JSON object (or CSV row) is a raw FDR event.

    ``event_simpleName`` at the top level is FDR's own name for the event type and no other family uses it; an
    ECS document made by Elastic's integration keeps it only nested (``crowdstrike.event_simpleName``). The
    sensor or customer id (or the platform) must come with it.
    """
    name = document.get("event_simpleName")
    if not isinstance(name, str) or not name:
        return False
    return "aid" in document or "cid" in document or "event_platform" in document


@dataclass(frozen=True, slots=True)
class RememberedProcess:
    """What a later child needs of a process rollup: its ECS process fields and where they came from."""

    name: str | None
    executable: str | None
    command_line: str | None
    pid: int | None
    event_id: str


class ProcessMemory:
    """Process rollups of one input by (aid, TargetProcessId): at most ``bound`` of them, oldest forgotten first.

    ``last`` is the latest parent lookup, by (aid, event.id, parent id), and its answer: the same event normalized
    again right away (the hunt does so for a matched record, to show the whole event) gets the same parent even
    if remembering that event has just pushed its parent out of a full memory.
    """

    __slots__ = ("bound", "last", "processes")

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.processes: OrderedDict[tuple[str, str], RememberedProcess] = OrderedDict()
        self.last: tuple[tuple[str, str, str], RememberedProcess | None] | None = None

    def remember(self, key: tuple[str, str], process: RememberedProcess) -> None:
        """Keep ``process`` as the newest entry, forgetting the oldest beyond the bound."""
        if self.bound <= 0:
            return
        self.processes[key] = process
        self.processes.move_to_end(key)
        while len(self.processes) > self.bound:
            self.processes.popitem(last=False)

    def recall(self, key: tuple[str, str]) -> RememberedProcess | None:
        """The remembered process under ``key``, if it is still remembered."""
        return self.processes.get(key)


def process_memory(context: SourceContext) -> ProcessMemory:
    """This normalizer's memory for the input ``context`` belongs to."""
    return context.state(FAMILY, lambda: ProcessMemory(context.process_memory))


def normalize_crowdstrike(document: Mapping[str, Any], context: SourceContext) -> Event:
    """The flat ECS event of one FDR event (see the module docstring); never raises on a JSON object."""
    fields: dict[str, Any] = dict(document)
    event: Event = {}
    _take_metadata(fields)
    _set_timestamps(fields, event)
    _convert_context_timestamp(fields)
    message = fields.pop("message", None)
    if message is not None:
        event["message"] = message
    action = _categorize(fields, event)
    _count_fields_to_long(fields)
    hashes = _take_hashes(fields, event)
    _set_observer(fields, event)
    _set_host(fields, event)
    _set_os(fields, event)
    _set_process(fields, event, action, hashes)
    _set_user(fields, event)
    if action is not None and hashes and any(word in action for word in ("File", "Directory", "Executable")):
        for name, value in hashes.items():
            event[f"file.hash.{name}"] = value
    _set_vendor_extras(fields, event)
    if event.get("host.os.type") is not None:
        fields.pop("event_platform", None)
    for name in _DELETED_AT_CLEANUP:
        fields.pop(name, None)
    if action in PROCESS_CREATIONS:
        target = _text(document.get("TargetProcessId"))
        remembered_as = target if action in _REMEMBERED_ROLLUPS else None
        _resolve_parent(event, process_memory(context), remembered_as)
    _put_vendor_namespace(fields, event)
    return _without_removed_values(event)


def _text(value: Any) -> str | None:
    """A scalar as the pipeline's string processors see it (numbers as their decimal text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _take_metadata(fields: dict[str, Any]) -> None:
    # remove-metadata-aid, remove-metadata-usersid, then rename metadata -> crowdstrike.info (a rename onto an
    # existing field fails, and metadata then stays where it is). The host and user sections are copied: later
    # steps take fields out of them, and the caller's document is never changed.
    metadata = fields.get("metadata")
    if isinstance(metadata, Mapping):
        fields["metadata"] = _with_own_sections(metadata, {"host": "aid", "user": "UserSid_readable"})
    if "metadata" in fields and "info" not in fields:
        fields["info"] = fields.pop("metadata")
    info = fields.get("info")
    if isinstance(info, Mapping):
        fields["info"] = _with_own_sections(info, {})


def _with_own_sections(mapping: Mapping[str, Any], dropped: Mapping[str, str]) -> dict[str, Any]:
    owned = dict(mapping)
    for section in ("host", "user"):
        part = owned.get(section)
        if isinstance(part, Mapping):
            drop = dropped.get(section)
            owned[section] = {key: value for key, value in part.items() if key != drop}
    return owned


def _info_section(fields: Mapping[str, Any], section: str) -> dict[str, Any] | None:
    """``crowdstrike.info.<section>``, a dict :func:`_take_metadata` made for this event, if there is one."""
    info = fields.get("info")
    part = info.get(section) if isinstance(info, dict) else None
    return part if isinstance(part, dict) else None


# --- times -------------------------------------------------------------------------------------------------


def _iso_from_millis(millis: int) -> str | None:
    try:
        moment = _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_text(value: Any) -> str | None:
    if isinstance(value, float):
        return repr(value)
    return _text(value)


def epoch_to_iso(value: Any, *, seconds: bool) -> str | None:
    """Elasticsearch's ``UNIX`` (``seconds``) or ``UNIX_MS`` date format, rendered as the date processor does
    (milliseconds, ``Z``); exact decimal arithmetic, never float rounding. ``None`` when it is not such a number."""
    text = _epoch_text(value)
    if text is None:
        return None
    match = _DECIMAL.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction = match.groups()
    millis = int(whole) * 1000 + int(((fraction or "") + "000")[:3]) if seconds else int(whole)
    return _iso_from_millis(-millis if sign else millis)


def _date(value: Any, formats: tuple[str, ...]) -> str | None:
    # The date processor tries its formats in order.
    for name in formats:
        if name == "ISO8601":
            parsed = iso_utc(value) if isinstance(value, str) else None
        else:
            parsed = epoch_to_iso(value, seconds=name == "UNIX")
        if parsed is not None:
            return parsed
    return None


def _set_timestamps(fields: Mapping[str, Any], event: Event) -> None:
    for name, formats in (
        ("UTCTimestamp", ("UNIX_MS", "ISO8601")),
        ("timestamp", ("UNIX_MS", "ISO8601")),
        ("CreationTimeStamp", ("UNIX", "ISO8601")),
        ("Time", ("ISO8601", "UNIX")),
        ("_time", ("ISO8601", "UNIX")),
    ):
        created = _date(fields.get(name), formats)
        if created is not None:
            event["event.created"] = created
            event["@timestamp"] = created
            return


def _convert_context_timestamp(fields: dict[str, Any]) -> None:
    # date-context-timestamp-from-nt, then the date processor of the crowdstrike section (formats: UNIX).
    value = fields.get("ContextTimeStamp")
    if value is None or value == "":
        return
    if isinstance(value, str) and "." not in value:
        number = _java_long(value)
        if number is not None and number > _FILETIME_FLOOR:
            value = number // 10_000_000 - _FILETIME_EPOCH_OFFSET
    parsed = epoch_to_iso(value, seconds=True)
    if parsed is not None:
        fields["ContextTimeStamp"] = parsed


# --- numbers -----------------------------------------------------------------------------------------------


def _java_long(text: str) -> int | None:
    """Java's ``Long.parseLong``: an optional sign and decimal digits, within the long range."""
    if len(text) > 20 or _JAVA_LONG.fullmatch(text) is None:
        return None
    value = int(text)
    return value if _LONG_MIN <= value <= _LONG_MAX else None


def _unsigned_long(value: Any) -> int | None:
    """The parse-raw-pids script: ``Long.parseUnsignedLong``, so values past 2^63 wrap to negative longs."""
    text = _text(value)
    if text is None:
        return None
    body = text[1:] if text[:1] == "+" else text
    if not body or len(body) > 20 or not body.isascii() or not body.isdigit():
        return None
    number = int(body)
    if number >= 1 << 64:
        return None
    return number - (1 << 64) if number > _LONG_MAX else number


def _long(value: Any) -> int | None:
    """The ``convert`` processor with ``type: long`` on a string or a whole number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _LONG_MIN <= value <= _LONG_MAX else None
    if isinstance(value, str):
        return es_convert_long(value)
    return None


def _count_fields_to_long(fields: dict[str, Any]) -> None:
    # convert-count-fields-to-long: every field whose name holds "Count" or "Port", when it parses.
    for key, value in fields.items():
        if ("Count" in key or "Port" in key) and isinstance(value, str):
            number = _java_long(value)
            if number is not None:
                fields[key] = number


# --- sections ----------------------------------------------------------------------------------------------


def _categorize(fields: dict[str, Any], event: Event) -> str | None:
    name = fields.pop("event_simpleName", None)
    row = CATEGORIZATION.get(name) if isinstance(name, str) else None
    if row is not None:
        event["event.category"] = list(row.category)
        event["event.type"] = list(row.type)
        event["event.kind"] = row.kind
        event["event.outcome"] = row.outcome
    # set_event_id: the mustache template renders a missing part as nothing.
    event["event.id"] = "|".join(_text(fields.get(key)) or "" for key in ("id", "aid", "cid"))
    if not isinstance(name, str):
        if name is not None:
            fields["event_simpleName"] = name  # not a name: kept as sent
        return None
    event["event.action"] = name
    return name


def _take_hashes(fields: dict[str, Any], event: Event) -> dict[str, str]:
    # remove-empty-hashes: the three fields always leave crowdstrike.*; the non-zero ones are kept for later.
    hashes: dict[str, str] = {}
    for source, name in _HASH_FIELDS:
        value = fields.get(source)
        if not isinstance(value, str):
            continue  # not a string: the script would fail; the value stays under crowdstrike.*
        del fields[source]
        if value.strip("0"):
            hashes[name] = value
            append_unique(event, "related.hash", value)
    return hashes


def _set_observer(fields: dict[str, Any], event: Event) -> None:
    aid = fields.pop("aid", None)
    if aid is not None:
        event["observer.serial_number"] = aid
    aip = fields.get("aip")
    if isinstance(aip, str):
        del fields["aip"]
        addresses = _java_split(aip, _WHITESPACE)
        # convert_crowdstrike-aip_ip's on_failure removes the field when any address is not one.
        if addresses and all(es_convert_ip(address) is not None for address in addresses):
            event["observer.ip"] = addresses
            event["observer.address"] = list(addresses)
            for address in addresses:
                append_unique(event, "related.ip", address)
    for source in ("AgentVersion", "ConfigBuild"):
        # A rename onto an existing field fails (ignore_failure): the second one then stays under crowdstrike.*.
        if source in fields and "observer.version" not in event:
            event["observer.version"] = fields.pop(source)


def _set_host(fields: dict[str, Any], event: Event) -> None:
    for source in ("ComputerName", "hostname"):
        if source in fields and "host.hostname" not in event:
            event["host.hostname"] = fields.pop(source)
    hostname = event.get("host.hostname")
    if hostname is not None and hostname != "":
        event["host.name"] = hostname
    info_host = _info_section(fields, "host")
    if info_host is not None:
        enriched_name = info_host.get("ComputerName")
        if isinstance(enriched_name, str):
            append_unique(event, "related.hosts", enriched_name)
        if "ComputerName" in info_host and event.get("host.name") is None:
            event["host.name"] = info_host.pop("ComputerName")
    host_name = event.get("host.name")
    if isinstance(host_name, str):
        append_unique(event, "related.hosts", host_name)
    for source, target in (
        ("City", "host.geo.city_name"),
        ("Continent", "host.geo.continent_name"),
        ("Country", "host.geo.country_name"),
        ("Timezone", "host.geo.timezone"),
        ("MachineDomain", "host.domain"),
    ):
        if source in fields:
            event[target] = fields.pop(source)
    if info_host is not None:
        enriched_ip = info_host.get("aip")
        if isinstance(enriched_ip, str) and enriched_ip and es_convert_ip(enriched_ip) is not None:
            del info_host["aip"]
            append_unique(event, "host.ip", enriched_ip)
            append_unique(event, "related.ip", enriched_ip)


def _set_os(fields: dict[str, Any], event: Event) -> None:
    platform = fields.get("event_platform")
    os_type = _OS_TYPES.get(platform) if isinstance(platform, str) else None
    if os_type is not None:
        event["host.os.type"] = os_type
    for source in ("OSVersionString", "Version"):
        if source in fields and "host.os.version" not in event:
            event["host.os.version"] = fields.pop(source)


def process_name(executable: str) -> str:
    """The pipeline's process-name script: the last segment when the path starts with ``\\`` or ``/``, else the
    whole string (so a DOS path ``C:\\...\\cmd.exe`` keeps its directory, as there)."""
    if executable.startswith("\\"):
        return executable.rsplit("\\", 1)[-1]
    if executable.startswith("/"):
        return executable.rsplit("/", 1)[-1]
    return executable


def _set_process(fields: dict[str, Any], event: Event, action: str | None, hashes: dict[str, str]) -> None:
    if "CommandLine" in fields:
        event["process.command_line"] = command_line = fields.pop("CommandLine")
        if isinstance(command_line, str) and command_line and event.get("host.os.type") is not None:
            args = command_line_to_argv(command_line)
            event["process.args"] = args
            event["process.args_count"] = len(args)
    if "ImageFileName" in fields:
        event["process.executable"] = executable = fields.pop("ImageFileName")
        if isinstance(executable, str) and executable:
            event["process.name"] = process_name(executable)
    exit_code = _long(fields.get("ExitCode"))
    if exit_code is not None:
        del fields["ExitCode"]
        event["process.exit_code"] = exit_code
    for source, target in (("ProcessStartTime", "process.start"), ("ProcessEndTime", "process.end")):
        value = fields.get(source)
        if value == "":
            continue
        moment = epoch_to_iso(value, seconds=True)
        if moment is not None:
            del fields[source]
            event[target] = moment
    pid = _unsigned_long(fields.get("RawProcessId"))
    if pid is not None:
        del fields["RawProcessId"]
        event["process.pid"] = pid
    for source, target in (("TargetProcessId", "process.entity_id"), ("ParentProcessId", "process.parent.entity_id")):
        identifier = _text(fields.get(source))
        if identifier is not None:
            del fields[source]
            event[target] = identifier
    if "ParentBaseFileName" in fields:
        event["process.parent.name"] = fields.pop("ParentBaseFileName")
    group = _long(fields.get("ProcessGroupId"))
    if group is not None:
        del fields["ProcessGroupId"]
        event["process.pgid"] = group
    if event.get("process.entity_id") is None and "ContextProcessId" in fields:
        event["process.entity_id"] = fields.pop("ContextProcessId")
    context_thread = _long(fields.get("ContextThreadId"))
    if context_thread is not None:
        del fields["ContextThreadId"]
        event["process.thread.id"] = context_thread
    if event.get("process.pid") is None:
        etw_pid = _unsigned_long(fields.get("EtwRawProcessId"))
        if etw_pid is not None:
            del fields["EtwRawProcessId"]
            event["process.pid"] = etw_pid
    etw_thread = _long(fields.get("EtwRawThreadId"))
    if etw_thread is not None:
        # Converted whether or not it is then renamed (only when no thread id is set yet).
        fields["EtwRawThreadId"] = etw_thread
        if event.get("process.thread.id") is None:
            event["process.thread.id"] = fields.pop("EtwRawThreadId")
    if "ServiceDisplayName" in fields:
        event["process.title"] = fields.pop("ServiceDisplayName")
    if action is not None and hashes and ("Process" in action or "Service" in action):
        for name, value in hashes.items():
            event[f"process.hash.{name}"] = value
        hashes.clear()  # the pipeline renames _temp.hashes away: file.hash then finds nothing


def _set_user(fields: dict[str, Any], event: Event) -> None:
    if "UID" in fields:
        event["user.id"] = fields.pop("UID")
    info_user = _info_section(fields, "user")
    if info_user is not None:
        for source in ("UserName", "User"):
            if info_user.get(source) is not None and event.get("user.name") is None:
                event["user.name"] = info_user.pop(source)
    if "GID" in fields:
        event["user.group.id"] = fields.pop("GID")
    user_id = event.get("user.id")
    if "UserSid" in fields and (user_id is None or user_id == ""):
        event["user.id"] = fields.pop("UserSid")
    if fields.get("UserIsAdmin") == "1":
        append_unique(event, "user.roles", "admin")
    if fields.get("UserName") is not None and event.get("user.name") is None:
        event["user.name"] = fields.pop("UserName")
    principal = fields.get("UserPrincipal")
    if principal is not None:
        del fields["UserPrincipal"]
        event["user.email"] = principal
        parts = _java_split(principal, _AT) if isinstance(principal, str) else []
        if len(parts) == 2:
            if parts[1]:
                event["user.domain"] = parts[1]
            if parts[0]:
                event["user.full_name"] = parts[0]
    for value in (
        event.get("user.name"),
        info_user.get("User") if info_user is not None else None,
        event.get("user.full_name"),
    ):
        if isinstance(value, str):
            append_unique(event, "related.user", value)


def _java_split(text: str, separator: re.Pattern[str]) -> list[str]:
    """``String.split`` as the split processor runs it (a regex separator, trailing empty strings dropped)."""
    parts = separator.split(text)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _set_vendor_extras(fields: dict[str, Any], event: Event) -> None:
    # The crowdstrike-fields section, for the fields this module maps (see the module docstring).
    for source in ("FalconGroupingTags", "SensorGroupingTags", "Tags"):
        value = fields.get(source)
        if isinstance(value, str):
            fields[source] = _java_split(value, _TAG_SEPARATOR)
    config_hash = fields.get("ConfigStateHash")
    if isinstance(config_hash, str) and config_hash:
        append_unique(event, "related.hash", config_hash)
    info_user = _info_section(fields, "user")
    for value in (
        fields.get("LogonServer"),
        fields.get("ClientComputerName"),
        info_user.get("LastLoggedOnHost") if info_user is not None else None,
    ):
        if isinstance(value, str):
            append_unique(event, "related.hosts", value)


# --- parent resolution -------------------------------------------------------------------------------------


def _remembered_text(value: Any) -> str | None:
    if isinstance(value, str) and value not in _REMOVED_VALUES and len(value) <= REMEMBERED_TEXT_LIMIT:
        return value
    return None


def _resolve_parent(event: Event, memory: ProcessMemory, remembered_as: str | None) -> None:
    """Fill the parent from memory, then remember this process under ``remembered_as`` (its TargetProcessId)."""
    aid = event.get("observer.serial_number")
    if not isinstance(aid, str) or not aid:
        return
    parent_id = event.get("process.parent.entity_id")
    # A process is never its own parent: a record saying so would otherwise resolve from itself when normalized
    # again (the hunt normalizes a matched record a second time for the alert).
    if isinstance(parent_id, str) and parent_id and parent_id != remembered_as:
        lookup = (aid, str(event["event.id"]), parent_id)
        if memory.last is not None and memory.last[0] == lookup:
            parent = memory.last[1]
        else:
            parent = memory.recall((aid, parent_id))
            memory.last = (lookup, parent)
        if parent is not None:
            _fill_parent(event, parent)
    if remembered_as and event.get("process.entity_id") == remembered_as:
        pid = event.get("process.pid")
        memory.remember(
            (aid, remembered_as),
            RememberedProcess(
                name=_remembered_text(event.get("process.name")),
                executable=_remembered_text(event.get("process.executable")),
                command_line=_remembered_text(event.get("process.command_line")),
                pid=pid if isinstance(pid, int) else None,
                event_id=str(event["event.id"]),
            ),
        )


def _fill_parent(event: Event, parent: RememberedProcess) -> None:
    named = event.get("process.parent.name")
    filled = False
    if isinstance(named, str) and named not in _REMOVED_VALUES:
        # The event's own ParentBaseFileName wins; the rest is taken only from a process of that name.
        if parent.name is None or parent.name.lower() != named.lower():
            return
    elif parent.name is not None:
        event["process.parent.name"] = parent.name
        filled = True
    for target, value in (
        ("process.parent.executable", parent.executable),
        ("process.parent.command_line", parent.command_line),
        ("process.parent.pid", parent.pid),
    ):
        if value is not None and event.get(target) is None:
            event[target] = value
            filled = True
    if filled:
        event[PARENT_RESOLVED_FROM] = parent.event_id


# --- output ------------------------------------------------------------------------------------------------


def _put_vendor_namespace(fields: Mapping[str, Any], event: Event) -> None:
    for key, value in fields.items():
        event[f"crowdstrike.{key}"] = value


def _is_removed(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value in _REMOVED_VALUES)


def _without_removed_values(event: Event) -> Event:
    # remove-nulls: null, "", "-", "none" go wherever they are, and a list left empty goes with them. An object
    # value (nested metadata, or an object where the source should have a string) is flattened under its path.
    cleaned: Event = {}
    for path, value in event.items():
        kind = type(value)
        # Concrete types first: nearly every value is a str, an int or a list of str, and ABC checks are slow.
        if kind is str:
            if value not in _REMOVED_VALUES:
                cleaned[path] = value
        elif kind is int or kind is float or kind is bool:
            cleaned[path] = value
        elif value is None:
            continue
        elif kind is list:
            kept = _kept_items(value)
            if kept is None:
                _keep_flattened(cleaned, path, value)
            elif kept:
                cleaned[path] = kept
        elif isinstance(value, Mapping):
            _keep_flattened(cleaned, path, value)
        else:
            cleaned[path] = value
    return cleaned


def _kept_items(values: list[Any]) -> list[Any] | None:
    """The items of a list that remove-nulls keeps; ``None`` when an item is an object (flattened instead)."""
    kept: list[Any] = []
    for item in values:
        if type(item) is str:
            if item not in _REMOVED_VALUES:
                kept.append(item)
        elif item is None:
            continue
        elif isinstance(item, Mapping):
            return None
        else:
            kept.append(item)
    return kept


def _keep_flattened(cleaned: Event, path: str, value: Any) -> None:
    try:
        nested = flatten({path: value})
    except RecursionError:
        return  # nested deeper than Python can walk: left out, as a field that cannot be read
    for nested_path, leaf in nested.items():
        if isinstance(leaf, list):
            kept = [item for item in leaf if not _is_removed(item)]
            if kept:
                cleaned[nested_path] = kept
        elif not _is_removed(leaf):
            cleaned[nested_path] = leaf
