"""Microsoft 365 Defender Advanced Hunting records -> ECS (shellwatch.normalize.m365_defender): the three input
shapes, the operating system's provenance, field-by-field agreement with Elastic's pipeline, and the seed rule.

References:
- [raw] ../shared/reference/sources/m365_defender/test-device.DeviceProcessEvents-ProcessCreated.log: the
  ProcessCreated line of elastic/integrations packages/m365_defender/data_stream/event/_dev/test/pipeline/
  test-device.log @ 07bb9dae (verbatim).
- [expected] the same package's test-device.log-expected.json @ 021d77a8c45b98e1aa36100754b24feda9c7e7fa, the
  document for that line: which ECS field each column lands in (not in ../shared; the field list below was read
  from it, the values are derived from [raw]).
- [default.yml] .../elasticsearch/ingest_pipeline/default.yml @ 02ea365f: category, operationName, Tenant,
  tenantId and time renamed under m365_defender.event; @timestamp from properties.Timestamp (ISO8601); null and
  empty values dropped.
- [device.yml] .../ingest_pipeline/pipeline_device.yml @ 021d77a8: the event.category/event.type tables, the
  column renames and conversions, process.* from the file and process.parent.* from InitiatingProcess* for
  DeviceProcessEvents/DeviceEvents (process.* from InitiatingProcess* for the other device tables), host.name
  lower-cased, host.os.type only from OSPlatform, user.* precedence, event.action lower-cased with spaces as
  "-", the single-space command line split, related.*.
- [mde-process] https://learn.microsoft.com/en-us/defender-xdr/advanced-hunting-deviceprocessevents-table
  (MicrosoftDocs/defender-docs defender-xdr/advanced-hunting-deviceprocessevents-table.md): the columns and
  their types (ProcessId, InitiatingProcessId, InitiatingProcessParentId, FileSize, LogonId, ReportId: long).
- [mde-info] https://learn.microsoft.com/en-us/defender-xdr/advanced-hunting-deviceinfo-table: OSPlatform
  ("Windows 11, Windows 10 and Windows 7", ...), OSDistribution ("Ubuntu or RedHat for Linux platforms"), OSBuild
  long, IsAzureADJoined boolean, LoggedOnUsers a JSON array.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from shellwatch.ecs import Event, flatten
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.m365_defender import (
    FAMILY,
    HOST_OS_SOURCE,
    is_m365_defender_record,
    normalize_m365_defender,
)
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule
from shellwatch.sources.csv_records import read_csv
from shellwatch.sources.record import ReadProblem

FIXTURES = Path(__file__).parent / "fixtures" / "sources" / FAMILY
POSITIVE = FIXTURES / f"{FAMILY}-positive.ndjson"
BENIGN = FIXTURES / f"{FAMILY}-benign.ndjson"
SEED_EQL_RULE_ID = "2917d495-59bd-4250-b395-c29409b76086"
VENDOR = "m365_defender.event."


def normalize(record: Mapping[str, Any], context: SourceContext | None = None) -> Event:
    return normalize_m365_defender(record, context if context is not None else SourceContext())


def fixture_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def streaming(table: str, **properties: Any) -> dict[str, Any]:
    return {
        "time": "2024-05-14T09:27:03.8842190Z",
        "tenantId": "8c1f4b2e-5d3a-4e7b-9f60-2a4c6e8b0d13",
        "operationName": "Publish",
        "category": f"AdvancedHunting-{table}",
        "properties": properties,
    }


def process_created(**properties: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Timestamp": "2024-05-14T09:26:17.3390418Z",
        "DeviceId": "7d3e1f0a9b2c4d5e6f708192a3b4c5d6e7f80912",
        "DeviceName": "WEB-IIS01.contoso-lab.example",
        "ActionType": "ProcessCreated",
        "FileName": "cmd.exe",
        "FolderPath": "C:\\Windows\\System32\\cmd.exe",
        "ProcessId": 7344,
        "ProcessCommandLine": 'cmd.exe /c "whoami /all"',
        "InitiatingProcessFileName": "w3wp.exe",
        "InitiatingProcessFolderPath": "c:\\windows\\system32\\inetsrv\\w3wp.exe",
        "InitiatingProcessId": 6120,
    }
    base.update(properties)
    return streaming("DeviceProcessEvents", **{k: v for k, v in base.items() if v is not None})


def device_info(platform: str | None, **properties: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Timestamp": "2024-05-14T08:58:02.6611935Z",
        "DeviceId": "7d3e1f0a9b2c4d5e6f708192a3b4c5d6e7f80912",
        "DeviceName": "web-iis01.contoso-lab.example",
        "OSPlatform": platform,
    }
    base.update(properties)
    return streaming("DeviceInfo", **{k: v for k, v in base.items() if v is not None})


def export_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The Advanced Hunting export row of a streaming record: its columns, without nulls."""
    return {k: v for k, v in record["properties"].items() if v is not None}


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as the portal's CSV export writes them: one header of every column, every value as text (JSON text
    for the dynamic columns), empty cells for the columns a row lacks."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def csv_records(text: str) -> list[dict[str, Any]]:
    problems: list[ReadProblem] = []
    records = [r.data for r in read_csv(io.BytesIO(text.encode("utf-8")), "export.csv", problems.append)]
    assert problems == []
    return records


# --- recognition ----------------------------------------------------------------------------------------------


def test_recognizes_streaming_records_and_export_rows() -> None:
    assert is_m365_defender_record(process_created())
    assert is_m365_defender_record(device_info("Windows10"))
    assert is_m365_defender_record(streaming("EmailEvents", Timestamp="2024-05-14T09:00:00Z"))
    assert is_m365_defender_record({"category": "AdvancedHunting-DeviceInfo", "properties.DeviceName": "a"})
    assert is_m365_defender_record(export_row(process_created()))
    assert is_m365_defender_record(export_row(device_info("Linux")))
    assert is_m365_defender_record({"Timestamp": "t", "DeviceName": "h", "ProcessCommandLine": "cmd"})


@pytest.mark.parametrize(
    "document",
    [
        {"Event": {"System": {"EventID": 1, "Computer": "web01"}, "EventData": {"Image": "C:\\cmd.exe"}}},
        {"@timestamp": "2024-05-14T09:26:17Z", "event": {"category": ["process"]}, "host": {"name": "web01"}},
        {"winlog": {"event_id": 1, "computer_name": "web01"}, "event_data": {"Image": "C:\\cmd.exe"}},
        {"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "Hostname": "web01", "Image": "C:\\cmd.exe"},
        {"event_simpleName": "ProcessRollup2", "aid": "a1", "ComputerName": "WEB01", "ImageFileName": "\\cmd.exe"},
        {"event.type": "Process Creation", "endpoint.name": "web01", "tgt.process.name": "cmd.exe"},
        {"event_type": "process", "process_name": "cmd.exe", "unique_pid": 7, "hostname": "web01"},
        {"category": "Administrative", "properties": {"DeviceName": "x"}},  # an Azure activity log record
        {"DeviceName": "web01", "Timestamp": "2024-05-14T09:26:17Z"},  # no column of the device tables
        {"category": "AdvancedHunting-DeviceInfo"},  # no row
    ],
)
def test_other_families_records_are_not_taken(document: dict[str, Any]) -> None:
    assert not is_m365_defender_record(document)


def test_no_other_json_of_the_shared_corpus_is_taken() -> None:
    """Every JSON record in ../shared (Elastic Defend and Endgame documents, evtx_dump renderings, the
    SentinelOne raw record) other than the Defender one."""
    from shellwatch.sources.reader import read_paths

    roots = [shared_path("corpus", name) for name in ("elastic-endpoint-package", "endgame-eql", "sigma")]
    roots.append(shared_path("reference", "sources", "sentinel_one_cloud_funnel"))
    records = list(read_paths([str(root) for root in roots], on_problem=lambda problem: None))
    assert len(records) > 200
    assert [r.origin for r in records if is_m365_defender_record(r.data)] == []
    defender = shared_path("reference", "sources", "m365_defender")
    assert all(is_m365_defender_record(r.data) for r in read_paths([str(defender)], on_problem=print))


def test_no_record_of_the_other_families_fixtures_is_taken() -> None:
    """Every record of the other source families' fixtures beside this one (CrowdStrike, Endgame, SentinelOne,
    Elastic Defend, Sysmon, Security, Winlogbeat: whichever are there)."""
    from shellwatch.sources.reader import read_paths

    folders = [d for d in FIXTURES.parent.iterdir() if d.is_dir() and d != FIXTURES]
    records = list(read_paths([str(d) for d in folders], on_problem=lambda problem: None))
    assert [r.origin for r in records if is_m365_defender_record(r.data)] == []


# --- field-by-field agreement with Elastic's pipeline ---------------------------------------------------------


def reference_record() -> dict[str, Any]:
    path = shared_path("reference", "sources", "m365_defender", "test-device.DeviceProcessEvents-ProcessCreated.log")
    record: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return record


def _es_millis(value: str) -> str:
    """Elastic's date processor output for an ISO 8601 UTC text: milliseconds."""
    return value[:23] + "Z"


def elastic_expected(record: Mapping[str, Any]) -> dict[str, Any]:
    """Elastic's document for [raw], flat, from [expected]'s field list; values derived from the raw record."""
    p = record["properties"]
    command_line, parent_line = p["ProcessCommandLine"], p["InitiatingProcessCommandLine"]
    expected: dict[str, Any] = {
        "@timestamp": _es_millis(p["Timestamp"]),
        "ecs.version": "8.11.0",
        "event.action": "processcreated",
        "event.category": ["process"],
        "event.kind": "event",
        "event.type": ["start"],
        "host.id": p["DeviceId"],
        "host.name": p["DeviceName"].lower(),
        "process.args": command_line.split(" "),
        "process.args_count": len(command_line.split(" ")),
        "process.command_line": command_line,
        "process.executable": p["FolderPath"],
        "process.hash.md5": p["MD5"],
        "process.hash.sha1": p["SHA1"],
        "process.hash.sha256": p["SHA256"],
        "process.name": p["FileName"],
        "process.parent.args": parent_line.split(" "),
        "process.parent.args_count": len(parent_line.split(" ")),
        "process.parent.command_line": parent_line,
        "process.parent.hash.md5": p["InitiatingProcessMD5"],
        "process.parent.hash.sha1": p["InitiatingProcessSHA1"],
        "process.parent.hash.sha256": p["InitiatingProcessSHA256"],
        "process.parent.name": p["InitiatingProcessFileName"],
        "process.parent.pe.company": p["InitiatingProcessVersionInfoCompanyName"],
        "process.parent.pe.description": p["InitiatingProcessVersionInfoFileDescription"],
        "process.parent.pe.file_version": p["InitiatingProcessVersionInfoProductVersion"],
        "process.parent.pe.original_file_name": p["InitiatingProcessVersionInfoOriginalFileName"],
        "process.parent.pe.product": p["InitiatingProcessVersionInfoProductName"],
        "process.parent.pe.sections.physical_size": p["InitiatingProcessFileSize"],
        "process.parent.pid": p["InitiatingProcessId"],
        "process.pe.company": p["ProcessVersionInfoCompanyName"],
        "process.pe.description": p["ProcessVersionInfoFileDescription"],
        "process.pe.file_version": p["ProcessVersionInfoProductVersion"],
        "process.pe.original_file_name": p["ProcessVersionInfoOriginalFileName"],
        "process.pe.product": p["ProcessVersionInfoProductName"],
        "process.pe.sections.physical_size": p["FileSize"],
        "process.pid": p["ProcessId"],
        "process.start": _es_millis(p["ProcessCreationTime"]),
        # Appended without repeats: the parent's hashes equal the child's in [raw].
        "related.hash": [p["MD5"], p["SHA1"], p["SHA256"]],
        "related.hosts": [p["DeviceId"], p["DeviceName"].lower(), p["AccountDomain"]],
        "related.user": [p["AccountName"]],
        "user.domain": p["AccountDomain"],
        "user.id": p["AccountSid"],
        "user.name": p["AccountName"],
    }
    return expected


# Fields of Elastic's document this normalizer does not produce the same, each with its reason.
KNOWN_DIFFERENCES = {
    "ecs.version": "pipeline constant (default.yml sets 8.11.0), not derived from the record",
    "@timestamp": "source precision kept (100 ns); Elastic's date processor keeps milliseconds",
    "process.start": "source precision kept (100 ns); Elastic's date processor keeps milliseconds",
}
# Fields the normalizer adds, each with its reason.
EXPLAINED_EXTRA_FIELDS = {
    "host.os.type": "from the FolderPath shape (C:\\...); Elastic sets it only from DeviceInfo's OSPlatform",
    HOST_OS_SOURCE: "says host.os.type came from the path shape",
}


def test_reference_record_field_by_field() -> None:
    """[raw] through the normalizer against [expected]: every ECS field equal, except the listed differences,
    each checked to still differ as stated."""
    record = reference_record()
    event = normalize(record)
    expected = elastic_expected(record)
    ecs = {k: v for k, v in event.items() if not k.startswith(VENDOR)}
    differing = {k for k in expected if ecs.get(k) != expected[k]}
    assert differing == set(KNOWN_DIFFERENCES)
    assert set(ecs) - set(expected) == set(EXPLAINED_EXTRA_FIELDS)
    assert "ecs.version" not in ecs
    for field in ("@timestamp", "process.start"):
        assert ecs[field] == "2023-07-19T14:02:19.4882081Z" and _es_millis(ecs[field]) == expected[field]
    assert (ecs["host.os.type"], ecs[HOST_OS_SOURCE]) == ("windows", "path_shape")


def test_reference_record_vendor_namespace() -> None:
    """[expected] keeps every column under m365_defender.event.* (its test runs with preserve_duplicate_custom_fields):
    renamed, LogonId and ReportId as text, dates parsed, nulls dropped."""
    record = reference_record()
    p = record["properties"]
    vendor = {k[len(VENDOR) :]: v for k, v in normalize(record).items() if k.startswith(VENDOR)}
    assert vendor["category"] == "AdvancedHunting-DeviceProcessEvents"
    assert vendor["operation_name"] == "Publish"
    assert vendor["tenant.name"] == record["Tenant"] and vendor["tenant.id"] == record["tenantId"]
    assert vendor["time"] == record["time"] and vendor["timestamp"] == p["Timestamp"]
    assert vendor["initiating_process.logon_id"] == str(p["InitiatingProcessLogonId"])
    assert vendor["logon.id"] == str(p["LogonId"])
    assert vendor["process.id"] == p["ProcessId"] and vendor["initiating_process.id"] == p["InitiatingProcessId"]
    assert vendor["process.creation_time"] == p["ProcessCreationTime"]
    assert vendor["folder_path"] == p["FolderPath"] and vendor["file.name"] == p["FileName"]
    assert vendor["device.name"] == p["DeviceName"]  # the vendor copy keeps its case
    assert vendor["account.upn"] == p["AccountUpn"] and vendor["account.object_id"] == p["AccountObjectId"]
    assert vendor["process.integrity_level"] == "Low"
    assert vendor["initiating_process.version_info_internal_file_name"] == "msedgewebview2_exe"
    # Every non-null column is kept somewhere (InitiatingProcessCreationTime is null in [raw]).
    assert len(vendor) == len([v for v in p.values() if v is not None]) + 5


# --- the three shapes ------------------------------------------------------------------------------------------

_ENVELOPE_FIELDS = {f"{VENDOR}{name}" for name in ("category", "operation_name", "tenant.id", "time")}


@pytest.mark.parametrize("path", [POSITIVE, BENIGN], ids=["positive", "benign"])
def test_export_json_and_csv_give_the_streaming_records_events(path: Path) -> None:
    """The same rows as an Advanced Hunting JSON export and as CSV: every field of every DeviceProcessEvents and
    DeviceInfo event the same as from the streaming records (all text in the CSV; [mde-process] and [mde-info]
    numeric and boolean columns parsed back), but the streaming record's own fields."""
    records = fixture_records(path)
    rows = [export_row(r) for r in records]
    streamed, exported, from_csv = SourceContext(), SourceContext(), SourceContext()
    csv_rows = csv_records(csv_text(rows))
    assert len(csv_rows) == len(rows)
    compared = 0
    for record, row, csv_row in zip(records, rows, csv_rows, strict=True):
        want = {k: v for k, v in normalize(record, streamed).items() if k not in _ENVELOPE_FIELDS}
        got_json, got_csv = normalize(row, exported), normalize(csv_row, from_csv)
        if record["category"] in ("AdvancedHunting-DeviceProcessEvents", "AdvancedHunting-DeviceInfo"):
            assert got_json == want
            assert got_csv == want
            compared += 1
        else:
            # An export row does not name its table, and ActionType InboundConnectionAccepted does not tell.
            assert "event.category" not in got_json and "event.category" not in got_csv
            assert got_csv["event.action"] == want["event.action"] == "inboundconnectionaccepted"
    assert compared >= 4


def test_csv_numbers_and_booleans_are_parsed_where_the_schema_types_them() -> None:
    """[mde-process]/[mde-info] long and boolean columns from CSV text; text that is not a number is left out (the
    pipeline's convert fails), and LogonId/ReportId stay text as the pipeline converts them."""
    text = csv_text(
        [
            {
                **export_row(process_created()),
                "ProcessId": "7344",
                "InitiatingProcessId": "0x17e8",  # the convert processor reads 0x hex (Long.decode)
                "InitiatingProcessParentId": "not a pid",
                "FileSize": "289792",
                "LogonId": "998877",
                "ReportId": "40388",
            },
            {
                **export_row(device_info("Windows11")),
                "OSBuild": "22631",
                "IsAzureADJoined": "true",
                "IsExcluded": "false",
            },
        ]
    )
    process, info = (normalize(row) for row in csv_records(text))
    assert process["process.pid"] == 7344 and process[f"{VENDOR}process.id"] == 7344
    assert process["process.parent.pid"] == 0x17E8
    assert f"{VENDOR}initiating_process.parent_id" not in process
    assert process[f"{VENDOR}file.size"] == 289792
    assert process[f"{VENDOR}logon.id"] == "998877" and process[f"{VENDOR}report_id"] == "40388"
    assert info[f"{VENDOR}os.build"] == 22631
    assert info[f"{VENDOR}is_azure_ad_joined"] is True and info[f"{VENDOR}is_excluded"] is False


def test_export_row_tables() -> None:
    """A row names its table by Sentinel's Type column, else by ActionType ProcessCreated, else by DeviceInfo's
    own columns; a row that does not tell gets no category."""
    sentinel = {**export_row(process_created(ActionType="ProcessCreated")), "Type": "DeviceProcessEvents"}
    assert normalize(sentinel)["event.category"] == ["process"]
    sentinel_events = {**export_row(process_created(ActionType="OpenProcessApiCall")), "Type": "DeviceEvents"}
    event = normalize(sentinel_events)
    assert event["event.category"] == ["host"] and event["process.parent.name"] == "w3wp.exe"
    info = normalize({"Timestamp": "2024-05-14T08:58:02Z", "DeviceName": "h", "DeviceId": "d", "ClientVersion": "1"})
    assert info["event.category"] == ["host"] and info["event.type"] == ["info"]
    projected = export_row(process_created(ActionType=None))
    event = normalize(projected)
    assert "event.category" not in event and "event.type" not in event
    # The mapping every device row gets still applies.
    assert event["process.command_line"] == 'cmd.exe /c "whoami /all"' and event["process.pid"] == 7344
    assert "process.name" not in event and "process.parent.name" not in event


# --- ECS fields -----------------------------------------------------------------------------------------------


def test_process_created_fields() -> None:
    event = normalize(
        process_created(
            ProcessCommandLine='  cmd.exe  /c "whoami  /all" \t',
            AccountDomain="iis apppool",
            AccountName="contosoportal",
            AccountSid="S-1-5-82-1",
            InitiatingProcessCommandLine='w3wp.exe -ap "ContosoPortal"',
            InitiatingProcessParentFileName="svchost.exe",
            InitiatingProcessParentId=1936,
            InitiatingProcessCreationTime="2024-05-14T09:11:58.0911262Z",
            InitiatingProcessParentCreationTime="2024-05-14T08:00:00Z",
            InitiatingProcessSignatureStatus="Valid",
            SHA1="9b47f1e2c05d83a6e4b2d0c9f1a7e3b58d6c2f40",
            InitiatingProcessSHA1=None,
        )
    )
    assert event["@timestamp"] == "2024-05-14T09:26:17.3390418Z"
    assert (event["event.kind"], event["event.category"], event["event.type"]) == ("event", ["process"], ["start"])
    assert event["event.action"] == "processcreated"
    assert event["host.name"] == "web-iis01.contoso-lab.example"  # lower-cased, FQDN kept
    assert event["process.name"] == "cmd.exe" and event["process.executable"] == "C:\\Windows\\System32\\cmd.exe"
    # Trimmed, then split on single spaces with quotes kept (not Windows argv rules).
    assert event["process.command_line"] == 'cmd.exe  /c "whoami  /all"'
    assert event["process.args"] == ["cmd.exe", "/c", '"whoami', '/all"']
    assert event["process.args_count"] == 4
    assert event["process.parent.name"] == "w3wp.exe"
    assert event["process.parent.executable"] == "c:\\windows\\system32\\inetsrv\\w3wp.exe"
    assert event["process.parent.pid"] == 6120 and event["process.pid"] == 7344
    assert event["process.parent.args"] == ["w3wp.exe", "-ap", '"ContosoPortal"']
    assert event["process.parent.start"] == "2024-05-14T09:11:58.0911262Z"
    assert event["process.parent.group_leader.name"] == "svchost.exe"
    assert event["process.parent.group_leader.pid"] == 1936
    assert event["process.parent.group_leader.start"] == "2024-05-14T08:00:00Z"
    assert (
        event["process.parent.code_signature.status"],
        event["process.parent.code_signature.exists"],
        event["process.parent.code_signature.trusted"],
    ) == ("trusted", True, True)
    assert (event["user.name"], event["user.domain"], event["user.id"]) == (
        "contosoportal",
        "iis apppool",
        "S-1-5-82-1",
    )
    assert event["related.user"] == ["contosoportal"]
    assert event["related.hash"] == ["9b47f1e2c05d83a6e4b2d0c9f1a7e3b58d6c2f40"]


def test_network_event_maps_the_initiating_process_to_process() -> None:
    """[device.yml]: outside DeviceProcessEvents/DeviceEvents the initiating process is process.*, its parent
    process.parent.*."""
    event = normalize(
        streaming(
            "DeviceNetworkEvents",
            Timestamp="2024-05-14T09:26:16.9011842Z",
            DeviceName="WEB-IIS01",
            ActionType="ConnectionSuccess",
            InitiatingProcessFileName="w3wp.exe",
            InitiatingProcessFolderPath="c:\\windows\\system32\\inetsrv\\w3wp.exe",
            InitiatingProcessId=6120,
            InitiatingProcessCommandLine="w3wp.exe -ap x",
            InitiatingProcessParentFileName="svchost.exe",
            InitiatingProcessParentId=1936,
            InitiatingProcessSignatureStatus="Unsigned",
            RemoteIP="198.51.100.77",
            LocalIP="not an address",
            RemotePort="443",
            AdditionalFields='{"direction": "Out", "uid": "C1"}',
        )
    )
    assert (event["event.category"], event["event.type"]) == (["network"], ["end"])
    assert (event["process.name"], event["process.pid"], event["process.command_line"]) == (
        "w3wp.exe",
        6120,
        "w3wp.exe -ap x",
    )
    assert (event["process.parent.name"], event["process.parent.pid"]) == ("svchost.exe", 1936)
    assert event["process.code_signature.status"] == "Unsigned"
    assert "process.parent.executable" not in event
    assert event[f"{VENDOR}remote.ip"] == "198.51.100.77" and f"{VENDOR}local.ip" not in event
    assert event[f"{VENDOR}remote.port"] == 443
    assert event[f"{VENDOR}network_direction"] == "Out" and event[f"{VENDOR}additional_fields.uid"] == "C1"
    assert f"{VENDOR}additional_fields.direction" not in event


@pytest.mark.parametrize(
    ("table", "action", "categories", "types", "event_action"),
    [
        ("DeviceProcessEvents", "ProcessCreated", ["process"], ["start"], "processcreated"),
        ("DeviceEvents", "OpenProcessApiCall", ["host"], ["info"], "openprocessapicall"),
        ("DeviceImageLoadEvents", "ImageLoaded", ["library"], ["start"], "load"),
        ("DeviceLogonEvents", "LogonFailed", ["authentication"], ["info"], "logonfailed"),
        ("DeviceRegistryEvents", "RegistryValueSet", ["registry"], ["change"], "registryvalueset"),
        ("DeviceFileEvents", "File Created", ["file"], ["info"], "file-created"),
        ("DeviceNetworkEvents", "InboundConnectionAccepted", ["network"], ["allowed"], "inboundconnectionaccepted"),
    ],
)
def test_categorization_per_table(
    table: str, action: str, categories: list[str], types: list[str], event_action: str
) -> None:
    """[device.yml]'s event.category and event.type tables, and event.action (lower-cased, spaces to "-";
    ImageLoaded becomes "load")."""
    event = normalize(streaming(table, Timestamp="2024-05-14T09:26:16Z", DeviceName="h", ActionType=action))
    assert (event["event.category"], event["event.type"], event["event.action"]) == (categories, types, event_action)


def test_logon_outcome_and_user_precedence() -> None:
    """[device.yml]: user.name from AccountName then RequestAccountName (the later wins), user.domain from
    RequestAccountDomain then AccountDomain; a logon event fails when FailureReason is set."""
    event = normalize(
        streaming(
            "DeviceLogonEvents",
            DeviceName="h",
            ActionType="LogonFailed",
            AccountName="alice",
            RequestAccountName="bob",
            AccountDomain="contoso",
            RequestAccountDomain="fabrikam",
            FailureReason="InvalidUserNameOrPassword",
        )
    )
    assert (event["user.name"], event["user.domain"], event["event.outcome"]) == ("bob", "contoso", "failure")
    assert (
        normalize(streaming("DeviceLogonEvents", DeviceName="h", ActionType="LogonSuccess"))["event.outcome"]
        == "success"
    )


def test_device_info_fields() -> None:
    event = normalize(
        device_info(
            "Linux",
            OSDistribution="Ubuntu",
            OSVersion="22.04",
            OSArchitecture="64-bit",
            DeviceType="Server",
            PublicIP="-",
            LoggedOnUsers='[{"UserName":"alice","DomainName":"web"},{"UserName":"bob"},{"Sid":"S-1-5-18"}]',
            MacAddress="00:15:5d:0a:1b:2c",
            NetworkAdapterName="{6a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}",
            IsAzureADJoined=1,
            CreatedBySomethingNew="kept",
        )
    )
    assert (event["event.kind"], event["event.category"], event["event.type"]) == ("event", ["host"], ["info"])
    assert "process.name" not in event and "event.action" not in event
    assert (event["host.os.type"], event[HOST_OS_SOURCE]) == ("linux", "device_info")
    assert (event["host.os.full"], event["host.os.platform"], event["host.os.version"]) == ("Linux", "Ubuntu", "22.04")
    assert (event["host.architecture"], event["host.type"]) == ("64-bit", "Server")
    assert "host.ip" not in event  # "-" is not an address
    assert event["host.mac"] == "00-15-5D-0A-1B-2C"
    assert event[f"{VENDOR}network.adapter_name"] == "6a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
    assert event[f"{VENDOR}active_users"] == ["alice", "bob"]
    assert event["related.user"] == ["alice", "bob"]
    assert event[f"{VENDOR}is_azure_ad_joined"] is True
    assert event[f"{VENDOR}created_by_something_new"] == "kept"  # a column the pipeline does not know


def test_other_defender_tables_get_the_basic_fields() -> None:
    event = normalize(
        {
            "time": "2024-05-14T09:30:00.0000000Z",
            "category": "AdvancedHunting-EmailEvents",
            "properties": {"Timestamp": "2024-05-14T09:29:58.1234567Z", "ActionType": "Delivered", "Subject": "Hi"},
        }
    )
    assert event["@timestamp"] == "2024-05-14T09:29:58.1234567Z"
    assert (event["event.kind"], event["event.action"]) == ("event", "delivered")
    assert "event.category" not in event and "user.name" not in event
    assert event[f"{VENDOR}subject"] == "Hi" and event[f"{VENDOR}category"] == "AdvancedHunting-EmailEvents"


def test_timestamp_falls_back_to_the_record_time() -> None:
    record = process_created(Timestamp=None)
    assert normalize(record)["@timestamp"] == record["time"]
    assert normalize({**export_row(record), "TimeGenerated": "2024-05-14 09:26:18.5"})["@timestamp"] == (
        "2024-05-14T09:26:18.5Z"
    )


# --- the operating system -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "os_type"),
    [
        ("Windows10", "windows"),
        ("Windows11", "windows"),
        ("WindowsServer2019", "windows"),
        ("WindowsServer2022", "windows"),
        ("Windows7", "windows"),
        ("Linux", "linux"),
        ("Ubuntu", "linux"),
        ("RedHatEnterpriseLinux", "linux"),
        ("macOS", "macos"),
        ("iOS", "ios"),
        ("Android", "android"),
        ("Unknown", None),
    ],
)
def test_os_platform(platform: str, os_type: str | None) -> None:
    event = normalize(device_info(platform))
    assert event.get("host.os.type") == os_type
    assert event.get(HOST_OS_SOURCE) == ("device_info" if os_type else None)
    assert event["host.os.full"] == platform


def test_os_from_an_earlier_device_info_record_of_the_same_device() -> None:
    context = SourceContext()
    no_path = {"FolderPath": None, "InitiatingProcessFolderPath": None}
    before = normalize(process_created(**no_path), context)
    assert "host.os.type" not in before and HOST_OS_SOURCE not in before
    normalize(device_info("WindowsServer2019"), context)
    after = normalize(process_created(**no_path), context)
    assert (after["host.os.type"], after[HOST_OS_SOURCE]) == ("windows", "device_info")
    # DeviceInfo beats the path shape: a Linux device running a Windows-looking path stays Linux.
    normalize(device_info("Linux", DeviceId="linux-1", DeviceName="lnx"), context)
    event = normalize(process_created(DeviceId="linux-1", DeviceName="LNX", FolderPath="C:\\wine\\cmd.exe"), context)
    assert (event["host.os.type"], event[HOST_OS_SOURCE]) == ("linux", "device_info")
    # Another input, another context: nothing remembered.
    assert normalize(process_created(**no_path)).get("host.os.type") is None


def test_os_by_device_name_when_ids_cannot_tell() -> None:
    context = SourceContext()
    normalize(device_info("macOS", DeviceId=None, DeviceName="Mac-07.contoso-lab.example"), context)
    no_path = {"FolderPath": None, "InitiatingProcessFolderPath": None}
    event = normalize(process_created(DeviceId=None, DeviceName="MAC-07.contoso-lab.example", **no_path), context)
    assert (event["host.os.type"], event[HOST_OS_SOURCE]) == ("macos", "device_info")
    normalize(device_info("Windows10", DeviceId="id-a", DeviceName="reused-name"), context)
    other = normalize(process_created(DeviceId="id-b", DeviceName="reused-name", **no_path), context)
    assert "host.os.type" not in other  # same name, another device


def test_device_memory_is_bounded_by_process_memory() -> None:
    no_path = {"FolderPath": None, "InitiatingProcessFolderPath": None}
    context = SourceContext(process_memory=2)  # one device: its id and its name
    normalize(device_info("Windows10", DeviceId="a", DeviceName="host-a"), context)
    normalize(device_info("Linux", DeviceId="b", DeviceName="host-b"), context)
    assert normalize(process_created(DeviceId="b", DeviceName="host-b", **no_path), context)["host.os.type"] == "linux"
    assert "host.os.type" not in normalize(process_created(DeviceId="a", DeviceName="host-a", **no_path), context)
    nothing = SourceContext(process_memory=0)
    normalize(device_info("Windows10"), nothing)
    assert "host.os.type" not in normalize(process_created(**no_path), nothing)


@pytest.mark.parametrize(
    ("folder_path", "parent_path", "os_type"),
    [
        ("C:\\Windows\\System32\\cmd.exe", None, "windows"),
        ("c:/program files/app/app.exe", None, "windows"),
        ("\\\\fileserver\\share\\tool.exe", None, "windows"),
        ("Program Files\\App\\app.exe", None, "windows"),
        ("/usr/bin/bash", None, "linux"),
        ("/home/alice/run.sh", None, "linux"),
        ("/tmp/a\\b", None, "linux"),
        ("/Applications/Safari.app/Contents/MacOS/Safari", None, "macos"),
        ("/System/Library/CoreServices/launchd", None, "macos"),
        ("/Library/Apple/usr/bin/x", None, "macos"),
        ("/Users/alice/Downloads/x", None, "macos"),
        (None, "/usr/sbin/apache2", "linux"),
        (None, "C:\\inetpub\\w3wp.exe", "windows"),
        ("cmd.exe", None, None),
        (None, None, None),
    ],
)
def test_os_from_the_path_shape(folder_path: str | None, parent_path: str | None, os_type: str | None) -> None:
    event = normalize(process_created(FolderPath=folder_path, InitiatingProcessFolderPath=parent_path))
    assert event.get("host.os.type") == os_type
    assert event.get(HOST_OS_SOURCE) == ("path_shape" if os_type else None)


# --- attacker-written input -----------------------------------------------------------------------------------

_SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)
_KNOWN_COLUMNS = [
    "Timestamp", "DeviceId", "DeviceName", "ActionType", "FileName", "FolderPath", "ProcessId", "ProcessCommandLine",
    "ProcessCreationTime", "AccountDomain", "AccountName", "AccountSid", "LogonId", "ReportId", "FileSize", "MD5",
    "SHA1", "InitiatingProcessFileName", "InitiatingProcessFolderPath", "InitiatingProcessCommandLine",
    "InitiatingProcessId", "InitiatingProcessParentId", "InitiatingProcessCreationTime", "InitiatingProcessSHA1",
    "InitiatingProcessSignatureStatus", "OSPlatform", "OSBuild", "PublicIP", "MacAddress", "LoggedOnUsers",
    "AdditionalFields", "IsAzureADJoined", "IsExcluded", "NetworkAdapterName", "RequestAccountName", "Type",
    "TimeGenerated",
]  # fmt: skip


def _check_event(event: Event) -> None:
    assert event["event.kind"] == "event"
    assert "@timestamp" not in event or (isinstance(event["@timestamp"], str) and event["@timestamp"].endswith("Z"))
    for field in ("process.pid", "process.parent.pid", "process.args_count"):
        assert field not in event or (isinstance(event[field], int) and not isinstance(event[field], bool))
    assert event.get("host.os.type") in (None, "windows", "linux", "macos", "ios", "android")
    assert (HOST_OS_SOURCE in event) == ("host.os.type" in event)
    for path, value in event.items():
        assert isinstance(path, str)
        assert not isinstance(value, dict)
        assert not isinstance(value, list) or not any(isinstance(item, dict | list) for item in value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=20), _JSON, max_size=8))
def test_arbitrary_json_objects_never_raise(document: dict[str, Any]) -> None:
    assert is_m365_defender_record(document) in (True, False)
    _check_event(normalize(document))
    _check_event(normalize({"category": "AdvancedHunting-DeviceProcessEvents", "properties": document}))


_COLUMN_VALUES = _SCALARS | st.lists(_SCALARS, max_size=2) | st.dictionaries(st.text(max_size=5), _SCALARS, max_size=2)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["DeviceProcessEvents", "DeviceInfo", "DeviceNetworkEvents", "DeviceEvents", "EmailEvents"]),
    st.fixed_dictionaries({}, optional={column: _COLUMN_VALUES for column in _KNOWN_COLUMNS}),
)
def test_known_columns_with_any_values_never_raise(table: str, properties: dict[str, Any]) -> None:
    context = SourceContext(process_memory=4)
    _check_event(normalize(streaming(table, **properties), context))
    _check_event(normalize(properties, context))


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional={column: st.text(max_size=30) for column in _KNOWN_COLUMNS}))
def test_csv_rows_with_any_text_never_raise(row: dict[str, str]) -> None:
    _check_event(normalize({k: v for k, v in row.items() if v}))


def test_nesting_deeper_than_the_stack_never_raises() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    event = normalize(process_created(AdditionalFields=deep, SomethingNew=[[[[deep]]]]))
    assert event["process.name"] == "cmd.exe"
    assert not any(k.startswith(f"{VENDOR}additional_fields") or k.startswith(f"{VENDOR}something_new") for k in event)
    text = "[" * 900 + "]" * 900  # within orjson's nesting limit, beyond flattening's
    assert not any(
        k.startswith(f"{VENDOR}additional_fields") for k in normalize(process_created(AdditionalFields=text))
    )


# --- the seed rule --------------------------------------------------------------------------------------------


@functools.cache
def seed_eql_rule() -> RuleSet:
    rules: list[Rule] = [r for r in load_bundled_rules().rules if r.rule_id == SEED_EQL_RULE_ID]
    assert len(rules) == 1 and rules[0].language == "eql"
    return RuleSet(rules)


def alerts_by_hand(documents: list[dict[str, Any]]) -> list[Event]:
    """The events of one input that the seed EQL rule matches, normalized in input order with one context."""
    rules, context = seed_eql_rule(), SourceContext()
    return [event for event in (normalize(d, context) for d in documents) if rules.matching(event)]


def test_positive_fixture_raises_exactly_one_alert_in_every_shape() -> None:
    records = fixture_records(POSITIVE)
    rows = [export_row(r) for r in records]
    for documents in (records, rows, csv_records(csv_text(rows))):
        alerts = alerts_by_hand(documents)
        assert [(a["process.parent.name"], a["process.name"]) for a in alerts] == [("w3wp.exe", "cmd.exe")]
        assert alerts[0][HOST_OS_SOURCE] == "device_info"
        assert (
            alerts[0]["process.command_line"]
            == 'cmd.exe /c "cd /d C:\\inetpub\\wwwroot\\portal\\uploads & whoami /all"'
        )


def test_benign_fixture_raises_none_in_every_shape() -> None:
    records = fixture_records(BENIGN)
    rows = [export_row(r) for r in records]
    for documents in (records, rows, csv_records(csv_text(rows))):
        assert alerts_by_hand(documents) == []
    events = [normalize(r, context) for context in [SourceContext()] for r in records]
    assert [(e.get("process.parent.name"), e.get("process.name")) for e in events] == [
        (None, None),
        ("php-fpm8.1", "dash"),
        ("explorer.exe", "cmd.exe"),
        ("w3wp.exe", "csc.exe"),
        ("php.exe", "cmd.exe"),
    ]
    assert [(e.get("host.os.type"), e.get(HOST_OS_SOURCE)) for e in events] == [
        ("linux", "device_info"),
        ("linux", "device_info"),
        ("windows", "path_shape"),
        ("windows", "path_shape"),
        ("windows", "path_shape"),
    ]
    # The seed rule's own exclusion, not a missing field, keeps php.exe -> "cmd.exe /c mode CON" quiet.
    assert events[4]["process.command_line"] == "cmd.exe /c mode CON"


def test_without_os_evidence_the_windows_rule_stays_quiet() -> None:
    """A web shell pair with no path and no earlier DeviceInfo: Elastic's document has no host.os.type either,
    and the seed rule (host.os.type == "windows") does not match it. Its DeviceInfo, or a path, makes it match."""
    no_path = process_created(FolderPath=None, InitiatingProcessFolderPath=None)
    assert alerts_by_hand([no_path]) == []
    assert len(alerts_by_hand([device_info("WindowsServer2022"), no_path])) == 1
    assert len(alerts_by_hand([process_created()])) == 1


def run_hunt(path: Path) -> tuple[list[dict[str, Any]], HuntStats]:
    stats = HuntStats()
    alerts = list(hunt([str(path)], seed_eql_rule(), stats=stats, workers=1))
    if stats.by_source.get(FAMILY, 0) == 0:
        pytest.skip(f"shellwatch.normalize.dispatch does not route {FAMILY} records (or the reader CSV) yet")
    return alerts, stats


def test_hunt_on_the_fixtures() -> None:
    """Through shellwatch.pipeline.hunt, once dispatch routes the family: 1 alert on the positive, 0 on the benign,
    every record attributed to the family."""
    alerts, stats = run_hunt(POSITIVE)
    assert stats.by_source[FAMILY] == 5
    assert [flatten(alert)["process.name"] for alert in alerts] == ["cmd.exe"]
    alerts, stats = run_hunt(BENIGN)
    assert stats.by_source[FAMILY] == 5
    assert alerts == []


def test_hunt_on_a_csv_export(tmp_path: Path) -> None:
    """The positive fixture as an Advanced Hunting CSV export, through hunt, once the reader takes CSV."""
    path = tmp_path / "advanced-hunting-export.csv"
    path.write_text(csv_text([export_row(r) for r in fixture_records(POSITIVE)]), "utf-8")
    alerts, stats = run_hunt(path)
    assert stats.by_source[FAMILY] == 5
    assert [flatten(alert)["process.name"] for alert in alerts] == ["cmd.exe"]
