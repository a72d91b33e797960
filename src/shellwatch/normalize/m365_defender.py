"""Microsoft 365 Defender (Defender XDR / Defender for Endpoint) Advanced Hunting records -> ECS, as Elastic's
m365_defender integration writes them to ``logs-m365_defender.event-*``.

Three shapes of the same Advanced Hunting rows are read:

* the streaming API record (Event Hub or storage account), one row under ``properties`` and its table in
  ``category``: ``{"time", "tenantId", "operationName": "Publish", "category":
  "AdvancedHunting-DeviceProcessEvents", "properties": {"Timestamp", "DeviceName", "FileName", ...}}``;
* an Advanced Hunting (or Sentinel) export as JSON: one object per row, the table's columns at the top level
  (``Timestamp``, ``DeviceId``, ``DeviceName``, ``ActionType``, ``FileName``, ``FolderPath``,
  ``ProcessCommandLine``, ``InitiatingProcess*``...);
* the same export as CSV (:mod:`shellwatch.sources.csv_records`): every cell a string, so the columns
  Microsoft's schema types as ``long`` or ``boolean`` are parsed here (``ProcessId``, ``InitiatingProcessId``,
  ``FileSize``, ...).

Column names and types: Microsoft's advanced hunting schema reference,
https://learn.microsoft.com/en-us/defender-xdr/advanced-hunting-deviceprocessevents-table and
https://learn.microsoft.com/en-us/defender-xdr/advanced-hunting-deviceinfo-table (MicrosoftDocs/defender-docs
``defender-xdr/advanced-hunting-device{processevents,info}-table.md``).

An export row does not name its table. It is taken from a Sentinel ``Type`` column when there is one, else from
the row: ``ActionType`` "ProcessCreated" is DeviceProcessEvents; a row without ``ActionType`` holding DeviceInfo's
own columns (``OSPlatform``, ``ClientVersion``, ``OnboardingStatus``, ...) is DeviceInfo. A row of any other
table still gets the fields every device table gets (``@timestamp``, ``host.*``, ``user.*``, ``event.action``,
the vendor namespace), without an ``event.category``: so a process row exported without its ``ActionType``
column is never taken for a process start.

Mapping: Elastic's ingest pipelines ``default.yml`` @02ea365f7af9fa2b0875ff81a5adec1e05afa83f and
``pipeline_device.yml`` @021d77a8c45b98e1aa36100754b24feda9c7e7fa (elastic/integrations,
``packages/m365_defender/data_stream/event/elasticsearch/ingest_pipeline/``), checked against its expected
output ``_dev/test/pipeline/test-device.log-expected.json`` @021d77a8. For DeviceProcessEvents and DeviceEvents
the row's file is the process (``FolderPath`` -> ``process.executable``, ``FileName`` -> ``process.name``) and the
initiating process its parent (``InitiatingProcess*`` -> ``process.parent.*``); for the other device tables the
initiating process is ``process.*``. ``process.args`` splits the command line on single spaces, as the pipeline
does (quotes kept). Every column is kept under ``m365_defender.event.*`` with the pipeline's names
(``InitiatingProcessFileName`` -> ``m365_defender.event.initiating_process.file_name``), as its
``preserve_duplicate_custom_fields`` tag keeps them; a column the pipeline does not know, which it drops, is kept
under its snake_case name (``CreatedProcessSessionId`` -> ``m365_defender.event.created_process_session_id``).
Only process, host, user, event and related fields are mapped to ECS: the network, file, registry, DLL and URL
fields of the other tables stay in the vendor namespace. Tables outside the device family (alerts, e-mail,
identity, cloud apps) get the basic fields only.

Operating system. Process rows carry none, and Elastic sets ``host.os.type`` only from ``OSPlatform``, which
only DeviceInfo has, so its process events are normally without one (and Windows rules never match them). Here
``host.os.type`` comes, in this order, from:

1. the record's own ``OSPlatform`` (a DeviceInfo record, or an export row joined with DeviceInfo);
2. the ``OSPlatform`` of a DeviceInfo record seen earlier in the same input for the same ``DeviceId`` (or, when
   the ids cannot tell, the same ``DeviceName``), remembered in the input's
   :class:`~shellwatch.normalize.context.SourceContext` (at most ``process_memory`` entries, oldest forgotten
   first);
3. the shape of ``FolderPath``, else ``InitiatingProcessFolderPath``: a drive letter or backslashes -> windows;
   ``/Applications/``, ``/System/``, ``/Library/`` or ``/Users/`` -> macos; any other ``/`` path -> linux.

``OSPlatform`` maps as Elastic maps it (contains "macos" -> macos, else "linux" -> linux, else "windows" ->
windows), and further to linux for distribution names (Ubuntu, RedHat, ...) and to ECS's ios and android. The
field ``shellwatch.host_os_source`` says which was done: ``"device_info"`` (1 or 2) or ``"path_shape"`` (3);
without a source, ``host.os.type`` is left unset.

Where this deviates from the pipeline, and why:

* dates keep the source's precision (``2023-07-19T14:02:19.4882081Z``); Elastic's date processor truncates them
  to milliseconds. ``@timestamp`` falls back to the streaming record's ``time`` (or an export's
  ``TimeGenerated``) when ``Timestamp`` is missing, where Elastic would stamp the time of ingestion;
* ``host.os.type`` on events without ``OSPlatform`` (above), so Windows rules can run on Defender data;
* DeviceInfo records are ``event.kind`` "event", ``event.category`` ["host"], ``event.type`` ["info"], as the
  pipeline sets them (ECS's "state" would also fit a periodic device report; rules written for this index
  expect the pipeline's values).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final, Literal

import orjson

from shellwatch.ecs import Event, flatten
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.conversions import es_convert_ip, whole_number
from shellwatch.normalize.pipeline_values import append_unique
from shellwatch.normalize.timestamps import iso_utc

FAMILY: Final = "m365_defender"

HOST_OS_SOURCE: Final = "shellwatch.host_os_source"
"""Which evidence set ``host.os.type``: ``"device_info"`` or ``"path_shape"`` (see the module docstring)."""

_VENDOR: Final = "m365_defender.event."
_CATEGORY_PREFIX: Final = "AdvancedHunting-"
_PROPERTIES_PREFIX: Final = "properties."

# Columns only the DeviceInfo table has (Microsoft's DeviceInfo schema): a row holding one of them and no
# ActionType is a DeviceInfo row.
_DEVICE_INFO_COLUMNS: Final = (
    "OSPlatform", "OSArchitecture", "OSBuild", "OSVersion", "OSDistribution", "ClientVersion", "OnboardingStatus",
    "IsAzureADJoined", "JoinType", "LoggedOnUsers", "SensorHealthState", "ExposureLevel", "DeviceCategory",
)  # fmt: skip

# Columns that make a flat row an Advanced Hunting row, besides DeviceName and DeviceId/Timestamp.
_ROW_MARKERS: Final = (
    "ActionType", "ReportId", "OSPlatform", "FolderPath", "ProcessCommandLine", "InitiatingProcessFileName",
    "InitiatingProcessCommandLine", "InitiatingProcessFolderPath", "MachineGroup", "ClientVersion",
)  # fmt: skip

_Conversion = Literal[
    "keep", "number", "long", "text", "date", "ip", "truthy", "bool", "json", "users", "adapter", "mac", "fields"
]
"""How a column's value is read, after the pipeline's processor for it:

``keep`` renamed as is; ``number`` renamed, a numeric string read as the ``long`` its mapping makes it, anything
else left out;
``long`` / ``text`` / ``ip`` the ``convert`` processor; ``date`` the ``date`` processor (ISO 8601);
``truthy`` the pipeline's ``isTruthy`` script; ``bool`` renamed, a "true"/"false" string read as the boolean its
mapping makes it; ``json`` a JSON text decoded (kept as text when it is not JSON); ``fields`` the same, its
``direction`` moved out to ``network_direction``; ``users`` LoggedOnUsers' names as ``active_users``;
``adapter`` a braced interface GUID unbraced; ``mac`` a MAC address with "-" separators, upper-cased."""

# Column -> (name under m365_defender.event., conversion): every rename of pipeline_device.yml and default.yml.
_COLUMNS: Final[dict[str, tuple[str, _Conversion]]] = {
    "Timestamp": ("timestamp", "date"),
    "CertificateExpirationTime": ("certificate.expiration_time", "date"),
    "InitiatingProcessCreationTime": ("initiating_process.creation_time", "date"),
    "InitiatingProcessParentCreationTime": ("initiating_process.parent_creation_time", "date"),
    "ProcessCreationTime": ("process.creation_time", "date"),
    "CertificateCountersignatureTime": ("certificate.countersignature_time", "date"),
    "CertificateCreationTime": ("certificate.creation_time", "date"),
    "InitiatingProcessFileSize": ("initiating_process.file_size", "long"),
    "ProcessId": ("process.id", "long"),
    "InitiatingProcessLogonId": ("initiating_process.logon_id", "text"),
    "LogonId": ("logon.id", "text"),
    "ReportId": ("report_id", "text"),
    "IPv4Dhcp": ("ipv4_dhcp", "ip"),
    "IPv6Dhcp": ("ipv6_dhcp", "ip"),
    "FileOriginIP": ("file.origin_ip", "ip"),
    "RemoteIP": ("remote.ip", "ip"),
    "LocalIP": ("local.ip", "ip"),
    "RequestSourceIP": ("request.source_ip", "ip"),
    "PublicIP": ("public_ip.value", "ip"),
    "IsRootSignerMicrosoft": ("is_root_signer_microsoft", "truthy"),
    "IsSigned": ("is_signed", "truthy"),
    "IsTrusted": ("is_trusted", "truthy"),
    "IsAzureInfoProtectionApplied": ("is_azure_info_protection_applied", "truthy"),
    "IsAzureADJoined": ("is_azure_ad_joined", "truthy"),
    "IsLocalAdmin": ("is_local_admin", "truthy"),
    "IsExcluded": ("is_excluded", "bool"),
    "IsInternetFacing": ("is_internet_facing", "bool"),
    "AdditionalFields": ("additional_fields", "fields"),
    "LoggedOnUsers": ("active_users", "users"),
    "NetworkAdapterName": ("network.adapter_name", "adapter"),
    "CrlDistributionPointUrls": ("crl_distribution_point_urls", "json"),
    "ConnectedNetworks": ("connected_networks", "json"),
    "DefaultGateways": ("default_gateways", "json"),
    "DnsAddresses": ("dns_addresses", "json"),
    "IPAddresses": ("ip_addresses", "json"),
    "FileSize": ("file.size", "number"),
    "InitiatingProcessId": ("initiating_process.id", "number"),
    "InitiatingProcessParentId": ("initiating_process.parent_id", "number"),
    "OSBuild": ("os.build", "number"),
    "RemotePort": ("remote.port", "number"),
    "LocalPort": ("local.port", "number"),
    "RequestSourcePort": ("request.source_port", "number"),
    "FolderPath": ("folder_path", "keep"),
    "MD5": ("md5", "keep"),
    "SHA1": ("sha1", "keep"),
    "SHA256": ("sha256", "keep"),
    "FileName": ("file.name", "keep"),
    "DeviceName": ("device.name", "keep"),
    "DeviceId": ("device.id", "keep"),
    "InitiatingProcessCommandLine": ("initiating_process.command_line", "keep"),
    "InitiatingProcessMD5": ("initiating_process.md5", "keep"),
    "InitiatingProcessSHA1": ("initiating_process.sha1", "keep"),
    "InitiatingProcessSHA256": ("initiating_process.sha256", "keep"),
    "RegistryKey": ("registry.key", "keep"),
    "RegistryValueName": ("registry.value_name", "keep"),
    "CertificateSerialNumber": ("certificate.serial_number", "keep"),
    "AccountName": ("account.name", "keep"),
    "RequestProtocol": ("request.protocol", "keep"),
    "ActionType": ("action.type", "keep"),
    "RequestAccountDomain": ("request.account_domain", "keep"),
    "RequestAccountName": ("request.account_name", "keep"),
    "OSArchitecture": ("os.architecture", "keep"),
    "OSPlatform": ("os.platform", "keep"),
    "OSDistribution": ("os.distribution", "keep"),
    "OSVersion": ("os.version", "keep"),
    "DeviceType": ("device.type", "keep"),
    "AccountDomain": ("account.domain", "keep"),
    "ClientVersion": ("client_version", "keep"),
    "DeviceCategory": ("device.category", "keep"),
    "MacAddress": ("mac_address", "mac"),
    "AccountSid": ("account.sid", "keep"),
    "RequestAccountSid": ("request.account_sid", "keep"),
    "AppGuardContainerId": ("app_guard_container_id", "keep"),
    "FileOriginUrl": ("file.origin_url", "keep"),
    "InitiatingProcessAccountDomain": ("initiating_process.account_domain", "keep"),
    "InitiatingProcessAccountName": ("initiating_process.account_name", "keep"),
    "AccountObjectId": ("account.object_id", "keep"),
    "InitiatingProcessAccountObjectId": ("initiating_process.account_object_id", "keep"),
    "InitiatingProcessAccountSid": ("initiating_process.account_sid", "keep"),
    "AccountUpn": ("account.upn", "keep"),
    "InitiatingProcessAccountUpn": ("initiating_process.account_upn", "keep"),
    "InitiatingProcessFileName": ("initiating_process.file_name", "keep"),
    "InitiatingProcessFolderPath": ("initiating_process.folder_path", "keep"),
    "InitiatingProcessParentFileName": ("initiating_process.parent_file_name", "keep"),
    "InitiatingProcessVersionInfoCompanyName": ("initiating_process.version_info_company_name", "keep"),
    "InitiatingProcessVersionInfoFileDescription": ("initiating_process.version_info_file_description", "keep"),
    "InitiatingProcessVersionInfoInternalFileName": ("initiating_process.version_info_internal_file_name", "keep"),
    "InitiatingProcessVersionInfoOriginalFileName": ("initiating_process.version_info_original_file_name", "keep"),
    "InitiatingProcessVersionInfoProductName": ("initiating_process.version_info_product_name", "keep"),
    "InitiatingProcessVersionInfoProductVersion": ("initiating_process.version_info_product_version", "keep"),
    "ProcessCommandLine": ("process.command_line", "keep"),
    "ProcessTokenElevation": ("process.token_elevation", "keep"),
    "ProcessVersionInfoCompanyName": ("process.version_info_company_name", "keep"),
    "ProcessVersionInfoFileDescription": ("process.version_info_file_description", "keep"),
    "ProcessVersionInfoInternalFileName": ("process.version_info_internal_file_name", "keep"),
    "ProcessVersionInfoOriginalFileName": ("process.version_info_original_file_name", "keep"),
    "ProcessVersionInfoProductName": ("process.version_info_product_name", "keep"),
    "ProcessVersionInfoProductVersion": ("process.version_info_product_version", "keep"),
    "RegistryValueData": ("registry.value_data", "keep"),
    "RemoteDeviceName": ("remote.device_name", "keep"),
    "RemoteUrl": ("remote.url", "keep"),
    "Issuer": ("issuer", "keep"),
    "IssuerHash": ("issuer_hash", "keep"),
    "SignatureType": ("signature_type", "keep"),
    "Signer": ("signer", "keep"),
    "SignerHash": ("signer_hash", "keep"),
    "FileOriginReferrerUrl": ("file.origin_referrer_url", "keep"),
    "InitiatingProcessIntegrityLevel": ("initiating_process.integrity_level", "keep"),
    "InitiatingProcessTokenElevation": ("initiating_process.token_elevation", "keep"),
    "PreviousFileName": ("previous.file_name", "keep"),
    "PreviousFolderPath": ("previous.folder_path", "keep"),
    "SensitivityLabel": ("sensitivity.label", "keep"),
    "SensitivitySubLabel": ("sensitivity.sub_label", "keep"),
    "ShareName": ("share_name", "keep"),
    "FailureReason": ("failure_reason", "keep"),
    "AadDeviceId": ("aad_device_id", "keep"),
    # The pipeline renames "DeviceSubType"; Microsoft's schema and its own test data spell it "DeviceSubtype".
    "DeviceSubType": ("device.sub_type", "keep"),
    "DeviceSubtype": ("device.sub_type", "keep"),
    "JoinType": ("join_type", "keep"),
    "MachineGroup": ("machine_group", "keep"),
    "MergedDeviceIds": ("merged_device_ids", "keep"),
    "MergedToDeviceId": ("merged_to_device_id", "keep"),
    "SensorHealthState": ("sensor_health_state", "keep"),
    "ExclusionReason": ("exclusion_reason", "keep"),
    "AssetValue": ("asset_value", "keep"),
    "ExposureLevel": ("exposure_level", "keep"),
    "DeviceManualTags": ("device_manual_tags", "keep"),
    "DeviceDynamicTags": ("device_dynamic_tags", "keep"),
    "Model": ("model", "keep"),
    "OnboardingStatus": ("onboarding_status", "keep"),
    "OSVersionInfo": ("os.version_info", "keep"),
    "RegistryDeviceTag": ("registry.device_tag", "keep"),
    "Vendor": ("vendor", "keep"),
    "LogonType": ("logon.type", "keep"),
    "Protocol": ("protocol", "keep"),
    "RemoteIPType": ("remote.ip_type", "keep"),
    "RegistryValueType": ("registry.value_type", "keep"),
    "LocalIPType": ("local.ip_type", "keep"),
    "NetworkAdapterStatus": ("network.adapter_status", "keep"),
    "NetworkAdapterType": ("network.adapter_type", "keep"),
    "NetworkAdapterVendor": ("network.adapter_vendor", "keep"),
    "TunnelType": ("tunnel_type", "keep"),
    "InitiatingProcessSignatureStatus": ("initiating_process.signature_status", "keep"),
    "InitiatingProcessSignerType": ("initiating_process.signer_type", "keep"),
    "ProcessIntegrityLevel": ("process.integrity_level", "keep"),
    "PreviousRegistryKey": ("previous.registry_key", "keep"),
    "PreviousRegistryValueData": ("previous.registry_value_data", "keep"),
    "PreviousRegistryValueName": ("previous.registry_value_name", "keep"),
}

# The streaming record's own fields (default.yml).
_ENVELOPE: Final[dict[str, tuple[str, _Conversion]]] = {
    "category": ("category", "keep"),
    "operationName": ("operation_name", "keep"),
    "Tenant": ("tenant.name", "keep"),
    "tenantId": ("tenant.id", "keep"),
    "time": ("time", "date"),
}

_PLAIN_TYPES: Final = frozenset((str, int, float, bool))

_NESTING_LIMIT: Final = 32
"""Decoded JSON values (AdditionalFields...) nested deeper than this are left out: flattening is recursive."""

# macOS's own top-level folders; a Linux system has none of them.
_MACOS_ROOTS: Final = ("/Applications/", "/System/", "/Library/", "/Users/")
_LINUX_DISTRIBUTIONS: Final = (
    "ubuntu", "debian", "redhat", "red hat", "rhel", "centos", "fedora", "suse", "sles", "oracle", "amazon",
    "almalinux", "rocky", "mint", "kali", "alpine",
)  # fmt: skip

# java.lang.String.trim removes every character up to and including the space.
_JAVA_TRIMMED: Final = "".join(map(chr, range(0x21)))
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_BRACED = re.compile(r"\{(.*)\}", re.DOTALL)


class _DeviceOs:
    """What DeviceInfo records of this input said about each device's OS: (kind, key) -> (os type, device id),
    by ``DeviceId`` and by lower-cased ``DeviceName``, oldest entry forgotten first."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()

    def remember(self, device_id: str | None, device_name: str | None, os_type: str) -> None:
        if device_id is not None:
            self._put(("id", device_id), (os_type, device_id))
        if device_name is not None:
            self._put(("name", device_name), (os_type, device_id))

    def _put(self, key: tuple[str, str], value: tuple[str, str | None]) -> None:
        if self._limit <= 0:
            return
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self._limit:
            entries.popitem(last=False)

    def recall(self, device_id: str | None, device_name: str | None) -> str | None:
        if device_id is not None:
            found = self._entries.get(("id", device_id))
            if found is not None:
                return found[0]
        if device_name is not None:
            found = self._entries.get(("name", device_name))
            # A name seen with another id is another device that had the same name: not evidence.
            if found is not None and (found[1] is None or device_id is None or found[1] == device_id):
                return found[0]
        return None


def is_m365_defender_record(document: Mapping[str, Any]) -> bool:
    """Whether a decoded JSON object (or CSV row) is an Advanced Hunting row: a streaming API record (``category``
    ``AdvancedHunting-*`` with ``properties``), or an export row (``DeviceName`` with ``DeviceId`` or
    ``Timestamp``, and one of the tables' own columns)."""
    try:
        category = document.get("category")
        if isinstance(category, str) and category.startswith(_CATEGORY_PREFIX):
            return isinstance(document.get("properties"), Mapping) or any(
                isinstance(key, str) and key.startswith(_PROPERTIES_PREFIX) for key in document
            )
        return (
            "DeviceName" in document
            and ("DeviceId" in document or "Timestamp" in document)
            and any(column in document for column in _ROW_MARKERS)
        )
    except Exception:  # an odd Mapping: not ours
        return False


def normalize_m365_defender(document: Mapping[str, Any], context: SourceContext) -> Event:
    """The flat ECS event for one Advanced Hunting record (see the module docstring); never raises."""
    devices = context.state(FAMILY, lambda: _DeviceOs(context.process_memory))
    properties, envelope = _split(document)
    vendor: Event = {}
    for name, value in envelope.items():
        _keep(vendor, name, value, _ENVELOPE)
    for name, value in properties.items():
        _keep(vendor, name, value, _COLUMNS)
    category = envelope.get("category")
    table = category[len(_CATEGORY_PREFIX) :] if isinstance(category, str) else _row_table(properties)

    event: Event = {}
    timestamp = vendor.get("timestamp") or vendor.get("time") or _date(properties.get("TimeGenerated"))
    if isinstance(timestamp, str):
        event["@timestamp"] = timestamp
    event["event.kind"] = "event"
    lowered_table = table.lower() if table is not None else None
    if lowered_table is None or "device" in lowered_table:
        _map_device(event, vendor, lowered_table or "")
    else:
        _map_host(event, vendor)
        _map_action(event, vendor)
    _resolve_os(event, vendor, devices)
    for name, value in vendor.items():
        event[_VENDOR + name] = value
    return event


def _split(document: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """(the row's columns, the streaming record's own fields); an export row has no envelope."""
    category = document.get("category")
    if not (isinstance(category, str) and category.startswith(_CATEGORY_PREFIX)):
        return document, {}
    properties = document.get("properties")
    if not isinstance(properties, Mapping):
        # The record as dotted keys ("properties.Timestamp"), as some forwarders flatten it.
        properties = {
            key[len(_PROPERTIES_PREFIX) :]: value
            for key, value in document.items()
            if isinstance(key, str) and key.startswith(_PROPERTIES_PREFIX)
        }
    envelope = {
        key: value
        for key, value in document.items()
        if isinstance(key, str) and key != "properties" and not key.startswith(_PROPERTIES_PREFIX)
    }
    return properties, envelope


def _row_table(row: Mapping[str, Any]) -> str | None:
    """The table of an export row (see the module docstring), or None when the row does not tell."""
    kind = row.get("Type")  # Sentinel / Log Analytics exports name the table
    if isinstance(kind, str) and kind:
        return kind
    action = row.get("ActionType")
    if action is not None:
        return "DeviceProcessEvents" if isinstance(action, str) and "processcreated" in action.lower() else None
    if any(column in row for column in _DEVICE_INFO_COLUMNS):
        return "DeviceInfo"
    return None


# --- the vendor namespace -------------------------------------------------------------------------------------


def _keep(vendor: Event, column: Any, value: Any, known: Mapping[str, tuple[str, _Conversion]]) -> None:
    if value is None or value == "":
        return
    spec = known.get(column)
    if spec is None:
        if isinstance(column, str):
            name = _snake_case(column)
            if name not in vendor:  # a known column's name wins over a lookalike unknown one
                _put_value(vendor, name, value)
        return
    name, conversion = spec
    if conversion == "keep" and type(value) in _PLAIN_TYPES:
        vendor[name] = value  # the common case, first
        return
    if conversion == "users":
        _keep_logged_on_users(vendor, value)
        return
    converted = _convert(value, conversion)
    if converted is None:
        return
    if conversion == "fields" and isinstance(converted, dict) and "direction" in converted:
        # Moved out for the network mapping (pipeline_device.yml, rename_additional_fields_direction).
        converted = dict(converted)
        direction = converted.pop("direction")
        if direction is not None and direction != "":
            _put_value(vendor, "network_direction", direction)
    _put_value(vendor, name, converted)


def _keep_logged_on_users(vendor: Event, value: Any) -> None:
    # A JSON text of [{"UserName": ...}, ...]; the pipeline keeps only the names (m365_defender.event.active_users).
    users = _convert(value, "json")
    if not isinstance(users, list):
        return
    names = [name for user in users if isinstance(user, Mapping) and (name := _text(user.get("UserName"))) is not None]
    if names:
        vendor["active_users"] = names


def _convert(value: Any, conversion: _Conversion) -> Any:
    """The value the pipeline stores for a column, or None when its processor would fail or drop it."""
    if conversion == "keep":
        return value
    if conversion in ("number", "long"):
        # A value its long mapping cannot hold would have the document rejected: left out.
        return whole_number(value)
    if conversion == "text":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | str):
            return str(value)
        return None
    if conversion == "date":
        return _date(value)
    if conversion == "ip":
        return es_convert_ip(value) if isinstance(value, str) else None
    if conversion == "truthy":
        return _truthy(value)
    if conversion == "bool":
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}.get(value) if isinstance(value, str) else None
    if conversion == "adapter":
        text = _text(value)
        braced = _BRACED.fullmatch(text) if text is not None and text.startswith("{") else None
        return braced.group(1) if braced is not None else text
    if conversion == "mac":
        return value.replace(":", "-").replace(".", "-").upper() if isinstance(value, str) else value
    # json, fields, users
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value  # the pipeline reports the failure and keeps the text


def _truthy(value: Any) -> bool | None:
    """pipeline_device.yml's ``isTruthy``: booleans, the integers 1/0, the strings "1"/"true"/"0"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {1: True, 0: False}.get(value)
    if isinstance(value, str):
        return {"1": True, "true": True, "0": False, "false": False}.get(value)
    return None


def _put_value(vendor: Event, name: str, value: Any) -> None:
    if type(value) in _PLAIN_TYPES:
        vendor[name] = value
        return
    if isinstance(value, Mapping | list):
        if _depth(value) > _NESTING_LIMIT:
            return
        for path, leaf in flatten({name: value}).items():
            cleaned = _without_empty(leaf)
            if cleaned is not None:
                vendor[path] = cleaned
        return
    vendor[name] = value


def _without_empty(value: Any) -> Any:
    """The value with null and empty strings dropped, as the pipeline's final ``dropEmptyFields`` does; nested
    lists are made one, as Elasticsearch indexes them."""
    if isinstance(value, list):
        kept: list[Any] = []
        _collect_scalars(value, kept)
        return kept or None
    return None if value == "" else value


def _collect_scalars(values: list[Any], into: list[Any]) -> None:
    for item in values:
        if isinstance(item, list):
            _collect_scalars(item, into)  # depth bounded by _NESTING_LIMIT
        elif item is not None and item != "" and not isinstance(item, Mapping):
            into.append(item)


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > _NESTING_LIMIT:
            break
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _snake_case(column: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", column).lower()


# --- ECS ------------------------------------------------------------------------------------------------------


def _map_device(event: Event, vendor: Event, table: str) -> None:
    """pipeline_device.yml, for a row of ``table`` (lower-cased; empty when an export row does not tell)."""
    action = _text(vendor.get("action.type"))
    lowered_action = action.lower() if action is not None else None
    categories = _categories(table)
    if categories:
        event["event.category"] = categories
        types = _types(categories, table, lowered_action)
        if types:
            event["event.type"] = types
    if lowered_action is not None and "imageloaded" in lowered_action:
        vendor["action.type"] = "load"
    process_rows = "deviceprocessevents" in table or "deviceevents" in table
    if categories and process_rows:
        if "deviceimageloadevents" not in table:
            _copy(event, vendor, _CHILD_FROM_FILE)
        _copy(event, vendor, _PARENT_FROM_INITIATING)
        _set_signature(event, vendor, "process.parent.code_signature.")
    elif categories:
        _copy(event, vendor, _PROCESS_FROM_INITIATING)
    _copy(event, vendor, _PROCESS_FROM_OWN)
    _map_host(event, vendor)
    _map_user(event, vendor)
    _map_action(event, vendor)
    if "devicelogonevents" in table:
        event["event.outcome"] = "failure" if _text(vendor.get("failure_reason")) else "success"
    _split_command_line(event, "process.")
    _split_command_line(event, "process.parent.")
    _add_related(event, vendor)


def _categories(table: str) -> list[str]:
    categories: list[str] = []
    if "devicelogonevents" in table:
        categories.append("authentication")
    if "deviceevents" in table or "deviceinfo" in table:
        categories.append("host")
    if "devicefileevents" in table or "devicefilecertificateinfo" in table:
        categories.append("file")
    if "deviceprocessevents" in table:
        categories.append("process")
    if "deviceimageloadevents" in table:
        categories.append("library")
    if "devicenetworkevents" in table or "devicenetworkinfo" in table:
        categories.append("network")
    if "deviceregistryevents" in table:
        categories.append("registry")
    return categories


def _types(categories: list[str], table: str, action: str | None) -> list[str]:
    types: list[str] = []
    acted = action or ""
    if any(c in categories for c in ("authentication", "host", "file")) or any(
        a in acted for a in ("openprocess", "connectionfound", "networksignatureinspected", "devicenetworkinfo")
    ):
        types.append("info")
    if action is None:
        return types
    if "connectionsuccess" in action:
        types.append("end")
    if "connectionfailed" in action:
        types.append("denied")
    if (
        any(a in action for a in ("connectionrequest", "listeningconnectioncreated", "processcreated"))
        or "deviceimageloadevents" in table
    ):
        types.append("start")
    if "inboundconnectionaccepted" in action:
        types.append("allowed")
    if "registrykeycreated" in action:
        types.append("creation")
    if "registrykeydeleted" in action or "registryvaluedeleted" in action:
        types.append("deletion")
    if "registrykeyrenamed" in action or "registryvalueset" in action:
        types.append("change")
    return types


# (ECS field, m365_defender.event field) copies, in the pipeline's order; a later copy to the same field wins.
_CHILD_FROM_FILE: Final = (
    ("process.executable", "folder_path"),
    ("process.hash.md5", "md5"),
    ("process.hash.sha1", "sha1"),
    ("process.hash.sha256", "sha256"),
    ("process.name", "file.name"),
    ("process.pe.sections.physical_size", "file.size"),
)
_PARENT_FROM_INITIATING: Final = (
    ("process.parent.command_line", "initiating_process.command_line"),
    ("process.parent.hash.md5", "initiating_process.md5"),
    ("process.parent.hash.sha1", "initiating_process.sha1"),
    ("process.parent.hash.sha256", "initiating_process.sha256"),
    ("process.parent.group_leader.pid", "initiating_process.parent_id"),
    ("process.parent.pid", "initiating_process.id"),
    ("process.parent.start", "initiating_process.creation_time"),
    ("process.parent.name", "initiating_process.file_name"),
    ("process.parent.pe.sections.physical_size", "initiating_process.file_size"),
    ("process.parent.executable", "initiating_process.folder_path"),
    ("process.parent.group_leader.start", "initiating_process.parent_creation_time"),
    ("process.parent.group_leader.name", "initiating_process.parent_file_name"),
    ("process.parent.pe.company", "initiating_process.version_info_company_name"),
    ("process.parent.pe.description", "initiating_process.version_info_file_description"),
    ("process.parent.pe.original_file_name", "initiating_process.version_info_original_file_name"),
    ("process.parent.pe.product", "initiating_process.version_info_product_name"),
    ("process.parent.pe.file_version", "initiating_process.version_info_product_version"),
)
_PROCESS_FROM_INITIATING: Final = (
    ("process.command_line", "initiating_process.command_line"),
    ("process.hash.md5", "initiating_process.md5"),
    ("process.hash.sha1", "initiating_process.sha1"),
    ("process.hash.sha256", "initiating_process.sha256"),
    ("process.parent.pid", "initiating_process.parent_id"),
    ("process.pid", "initiating_process.id"),
    ("process.start", "initiating_process.creation_time"),
    ("process.name", "initiating_process.file_name"),
    ("process.pe.sections.physical_size", "initiating_process.file_size"),
    ("process.executable", "initiating_process.folder_path"),
    ("process.parent.start", "initiating_process.parent_creation_time"),
    ("process.parent.name", "initiating_process.parent_file_name"),
    ("process.pe.company", "initiating_process.version_info_company_name"),
    ("process.pe.description", "initiating_process.version_info_file_description"),
    ("process.pe.original_file_name", "initiating_process.version_info_original_file_name"),
    ("process.pe.product", "initiating_process.version_info_product_name"),
    ("process.pe.file_version", "initiating_process.version_info_product_version"),
    ("process.code_signature.status", "initiating_process.signature_status"),
)
_PROCESS_FROM_OWN: Final = (
    ("process.command_line", "process.command_line"),
    ("process.start", "process.creation_time"),
    ("process.pid", "process.id"),
    ("process.pe.company", "process.version_info_company_name"),
    ("process.pe.description", "process.version_info_file_description"),
    ("process.pe.original_file_name", "process.version_info_original_file_name"),
    ("process.pe.product", "process.version_info_product_name"),
    ("process.pe.file_version", "process.version_info_product_version"),
)
_HOST_FIELDS: Final = (
    ("host.id", "device.id"),
    ("host.ip", "public_ip.value"),
    ("host.architecture", "os.architecture"),
    ("host.os.full", "os.platform"),
    ("host.os.platform", "os.distribution"),
    ("host.os.version", "os.version"),
    ("host.type", "device.type"),
    ("host.mac", "mac_address"),
)
# user.name from AccountName, then RequestAccountName; user.domain from RequestAccountDomain, then AccountDomain.
_USER_FIELDS: Final = (
    ("user.name", "account.name"),
    ("user.domain", "request.account_domain"),
    ("user.name", "request.account_name"),
    ("user.domain", "account.domain"),
    ("user.id", "account.sid"),
)


def _copy(event: Event, vendor: Event, copies: tuple[tuple[str, str], ...]) -> None:
    # set with copy_from and ignore_empty_value; a list or object is not copied (no ECS field here holds one).
    for field, source in copies:
        value = _scalar(vendor.get(source))
        if value is not None:
            event[field] = value


def _set_signature(event: Event, vendor: Event, prefix: str) -> None:
    status = _scalar(vendor.get("initiating_process.signature_status"))
    if status is None:
        return
    event[prefix + "status"] = status
    if status == "Valid":
        event[prefix + "exists"] = True
        event[prefix + "status"] = "trusted"
        event[prefix + "trusted"] = True
    elif status == "Unsigned":
        event[prefix + "exists"] = False
        event[prefix + "trusted"] = False


def _map_host(event: Event, vendor: Event) -> None:
    name = _scalar(vendor.get("device.name"))
    if name is not None:
        event["host.name"] = str(name).lower()
    _copy(event, vendor, _HOST_FIELDS)


def _map_user(event: Event, vendor: Event) -> None:
    _copy(event, vendor, _USER_FIELDS)


def _map_action(event: Event, vendor: Event) -> None:
    action = _scalar(vendor.get("action.type"))
    if action is not None:
        event["event.action"] = str(action).lower().replace(" ", "-")


def _split_command_line(event: Event, prefix: str) -> None:
    """The pipeline's script_split_command_line: trim, split on single spaces, drop empty parts."""
    command_line = event.get(prefix + "command_line")
    if not isinstance(command_line, str):
        return
    trimmed = command_line.strip(_JAVA_TRIMMED)
    if not trimmed:
        return
    event[prefix + "command_line"] = trimmed
    args = [arg for arg in trimmed.split(" ") if arg]
    event[prefix + "args"] = args
    event[prefix + "args_count"] = len(args)


def _add_related(event: Event, vendor: Event) -> None:
    for field, values in (
        ("related.hosts", (event.get("host.id"), event.get("host.name"), event.get("user.domain"),
                           vendor.get("initiating_process.account_domain"))),
        ("related.user", (*_listed(vendor.get("active_users")), event.get("user.name"),
                          vendor.get("initiating_process.account_name"))),
        ("related.ip", (vendor.get("file.origin_ip"), event.get("host.ip"), vendor.get("ipv4_dhcp"),
                        vendor.get("ipv6_dhcp"))),
    ):  # fmt: skip
        for value in values:
            text = _text(value)
            if text is not None:
                append_unique(event, field, text)
    hashes: list[Any] = [event.get(f"process.hash.{kind}") for kind in ("md5", "sha1", "sha256")]
    # The pipeline appends each parent hash when the child's hash of the same kind is present.
    hashes += [
        event.get(f"process.parent.hash.{kind}") if event.get(f"process.hash.{kind}") is not None else None
        for kind in ("md5", "sha1", "sha256")
    ]
    hashes += [vendor.get("issuer_hash"), vendor.get("signer_hash")]
    for value in hashes:
        text = _text(value)
        if text is not None:
            append_unique(event, "related.hash", text)


# --- operating system -----------------------------------------------------------------------------------------


def _resolve_os(event: Event, vendor: Event, devices: _DeviceOs) -> None:
    device_id = _text(vendor.get("device.id"))
    host_name = event.get("host.name")
    device_name = host_name if isinstance(host_name, str) else None
    platform = _text(vendor.get("os.platform"))
    os_type = _os_from_platform(platform) if platform is not None else None
    if os_type is not None:
        devices.remember(device_id, device_name, os_type)
        source = "device_info"
    else:
        os_type = devices.recall(device_id, device_name)
        source = "device_info"
        if os_type is None:
            os_type = _os_from_path(vendor.get("folder_path")) or _os_from_path(
                vendor.get("initiating_process.folder_path")
            )
            source = "path_shape"
    if os_type is not None:
        event["host.os.type"] = os_type
        event[HOST_OS_SOURCE] = source


def _os_from_platform(platform: str) -> str | None:
    lowered = platform.lower()
    # The pipeline's three tests run in this order and the last match wins: macos, then linux, then windows.
    if "macos" in lowered:
        return "macos"
    if "linux" in lowered:
        return "linux"
    if "windows" in lowered:
        return "windows"
    if any(name in lowered for name in _LINUX_DISTRIBUTIONS):
        return "linux"
    if lowered.startswith("ios"):
        return "ios"
    if "android" in lowered:
        return "android"
    return None


def _os_from_path(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    if len(path) >= 3 and path[1] == ":" and path[2] in "\\/" and path[0].isascii() and path[0].isalpha():
        return "windows"
    if path.startswith("/"):
        return "macos" if path.startswith(_MACOS_ROOTS) else "linux"
    if "\\" in path:
        return "windows"
    return None


# --- values ---------------------------------------------------------------------------------------------------


def _scalar(value: Any) -> str | int | float | bool | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):  # bool included
        return value
    return None


def _text(value: Any) -> str | None:
    """A value as the text a mustache template or keyword field makes of it; None for nothing or containers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _date(value: Any) -> str | None:
    return iso_utc(value) if isinstance(value, str) else None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
