"""CrowdStrike FDR events -> ECS, checked field by field against Elastic's crowdstrike.fdr pipeline.

Source of every expectation unless a test says otherwise: elastic/integrations
packages/crowdstrike/data_stream/fdr/elasticsearch/ingest_pipeline/default.yml
@ 007bb7a3c62851fdca8f45fa758a3e67e7071519 (the processor named in each docstring), and the example
ProcessRollup2 event and its ECS output in packages/crowdstrike/docs/README.md. Parent resolution is shellwatch's
own (issue 4), described in shellwatch.normalize.crowdstrike. Fixtures: tests/fixtures/sources/crowdstrike_fdr
(see its README).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from shellwatch.ecs import Event
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.crowdstrike import (
    CATEGORIZATION,
    FAMILY,
    PARENT_RESOLVED_FROM,
    REMEMBERED_TEXT_LIMIT,
    epoch_to_iso,
    is_crowdstrike_record,
    normalize_crowdstrike,
    process_memory,
    process_name,
)
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.sources.reader import read_paths

FIXTURES = Path(__file__).parent / "fixtures" / "sources" / "crowdstrike_fdr"
POSITIVE = FIXTURES / "crowdstrike_fdr-positive.ndjson"
BENIGN = FIXTURES / "crowdstrike_fdr-benign.ndjson"
SEED_RULE_NAME = "Web Shell Detection: Script Process Child of Common Web Processes"

AID = "3e8f1a2b4c5d4e6f9a0b1c2d3e4f5a6b"
CID = "7c1e4a9b2d3f4e5a8b6c0d1e2f3a4b5c"


def fixture_documents(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def normalize_all(documents: list[dict[str, Any]], context: SourceContext | None = None) -> list[Event]:
    context = context if context is not None else SourceContext()
    return [normalize_crowdstrike(document, context) for document in documents]


def rollup(
    target: str, image: str, command_line: str, *, parent: str, parent_base: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A Windows ProcessRollup2 in FDR's shape (every value a string), with the fields a test varies."""
    document: dict[str, Any] = {
        "CommandLine": command_line,
        "ComputerName": "WEB-IIS-07",
        "ImageFileName": image,
        "ParentProcessId": parent,
        "ProcessStartTime": "1715683391.640",
        "RawProcessId": str(int(target) % 65536),
        "TargetProcessId": target,
        "UserSid": "S-1-5-18",
        "aid": AID,
        "cid": CID,
        "event_platform": "Win",
        "event_simpleName": "ProcessRollup2",
        "id": f"id-{target}",
        "name": "ProcessRollup2V19",
        "timestamp": "1715683391862",
    }
    if parent_base is not None:
        document["ParentBaseFileName"] = parent_base
    document.update(extra)
    return document


W3WP = r"\Device\HarddiskVolume2\Windows\System32\inetsrv\w3wp.exe"
CMD = r"\Device\HarddiskVolume2\Windows\System32\cmd.exe"


@pytest.fixture(scope="module")
def seed_rules() -> RuleSet:
    rules = [rule for rule in load_bundled_rules().rules if rule.language == "eql" and rule.name == SEED_RULE_NAME]
    assert len(rules) == 1
    return RuleSet(rules)


# --- recognition ---------------------------------------------------------------------------------------------


def test_fixture_records_are_recognized() -> None:
    for path in (POSITIVE, BENIGN):
        for document in fixture_documents(path):
            assert is_crowdstrike_record(document), document["id"]


@pytest.mark.parametrize(
    "document",
    [
        {"Event": {"System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"}, "EventData": {}}},
        # An ECS document made by Elastic's own crowdstrike integration: the vendor name is nested there.
        {"@timestamp": "2020-10-01T09:58:32.519Z", "crowdstrike": {"event_simpleName": "ProcessRollup2"},
         "event": {"action": "ProcessRollup2"}, "observer": {"serial_number": AID}},
        {"crowdstrike.event_simpleName": "ProcessRollup2", "crowdstrike.aid": AID},
        {"winlog": {"event_id": 4688}, "event_data": {"NewProcessName": "C:\\Windows\\System32\\cmd.exe"}},
        {"EventID": 4688, "SourceName": "Microsoft-Windows-Security-Auditing", "NewProcessName": "cmd.exe"},
        {"event.type": "ProcessCreation", "meta.event.name": "PROCESSCREATION", "tgt.process.name": "cmd.exe"},
        {"category": "AdvancedHunting-DeviceProcessEvents", "properties": {"ActionType": "ProcessCreated"}},
        {"Timestamp": "2024-05-14T10:00:00Z", "DeviceName": "ws1", "ActionType": "ProcessCreated",
         "FileName": "cmd.exe"},
        {"event_type": "process", "event_subtype_full": "creation_event", "process_name": "cmd.exe", "pid": 4},
        # FDR-like but not an event: no name, an empty name, a name that is not a string, or no sensor at all.
        {"aid": AID, "cid": CID, "ComputerName": "WEB-IIS-07"},
        {"event_simpleName": "", "aid": AID},
        {"event_simpleName": ["ProcessRollup2"], "aid": AID},
        {"event_simpleName": "ProcessRollup2", "CommandLine": "cmd.exe"},
    ],
)  # fmt: skip
def test_other_families_are_not_recognized(document: dict[str, Any]) -> None:
    assert not is_crowdstrike_record(document)


def test_no_record_of_the_shared_corpus_is_taken_for_fdr() -> None:
    """Every JSON object (and rendered EVTX record) of the other families in ../shared: Elastic Defend, Endgame,
    SentinelOne, Microsoft 365 Defender, Sigma regression data, OTRF datasets."""
    corpus = shared_path("corpus")
    paths = [
        str(corpus / name)
        for name in (
            "elastic-endpoint-package",
            "endgame-eql",
            "elastic-integrations",
            "sigma",
            "otrf-security-datasets",
        )
    ]
    records = 0
    for record in read_paths(paths, on_problem=lambda _problem: None):
        records += 1
        assert not is_crowdstrike_record(record.data), record.origin
    assert records > 10_000


# --- field by field ------------------------------------------------------------------------------------------


def test_windows_process_rollup_field_by_field() -> None:
    """The w3wp.exe rollup of the positive fixture: every ECS field the pipeline sets for this shape."""
    w3wp = fixture_documents(POSITIVE)[1]
    event = normalize_crowdstrike(w3wp, SourceContext())
    expected_ecs = {
        "@timestamp": "2024-05-14T10:41:02.530Z",  # date-timestamp: timestamp, UNIX_MS
        "event.created": "2024-05-14T10:41:02.530Z",
        "event.action": "ProcessRollup2",  # rename event_simpleName
        "event.category": ["process"],  # script-categorize-events, ProcessRollup2 row
        "event.type": ["start"],
        "event.kind": "event",
        "event.outcome": "success",
        "event.id": f"1a4e7d03-11f2-11ef-8b21-06d1c2b7a001|{AID}|{CID}",  # set_event_id: id|aid|cid
        "observer.serial_number": AID,
        "observer.ip": ["198.51.100.23"],
        "observer.address": ["198.51.100.23"],
        "observer.version": "1007.3.0018806.1",  # ConfigBuild
        "host.hostname": "WEB-IIS-07",
        "host.name": "WEB-IIS-07",  # not lower-cased
        "host.os.type": "windows",  # event_platform Win
        "process.command_line": w3wp["CommandLine"],
        "process.args": [
            "c:\\windows\\system32\\inetsrv\\w3wp.exe", "-ap", "IntranetPortal", "-v", "v4.0", "-l", "webengine4.dll",
            "-a", "\\\\.\\pipe\\iisipm4f1c0a7e-2b1d-4c55-9e0a-7d2f3b6c8e91",
            "-h", "C:\\inetpub\\temp\\apppools\\IntranetPortal\\IntranetPortal.config",
            # "-w" "" gives an empty argument; remove-nulls then drops it from the list (args_count keeps it).
            "-w", "-m", "0", "-t", "20", "-ta", "0",
        ],
        "process.args_count": 19,
        "process.executable": W3WP,  # the device path is kept verbatim
        "process.name": "w3wp.exe",
        "process.start": "2024-05-14T10:41:02.318Z",  # ProcessStartTime, UNIX
        "process.pid": 4688,  # RawProcessId
        "process.entity_id": "5321730402",  # TargetProcessId
        "process.parent.entity_id": "5321004187",  # ParentProcessId: a Falcon id, never process.parent.pid
        "process.parent.name": "svchost.exe",  # ParentBaseFileName
        "process.hash.md5": w3wp["MD5HashData"],
        "process.hash.sha256": w3wp["SHA256HashData"],  # the all-zero SHA1HashData is dropped
        "user.id": w3wp["UserSid"],
        "user.name": "IntranetPortal",
        "related.hash": [w3wp["MD5HashData"], w3wp["SHA256HashData"], "2166136261"],  # + ConfigStateHash
        "related.ip": ["198.51.100.23"],
        "related.hosts": ["WEB-IIS-07"],
        "related.user": ["IntranetPortal"],
    }  # fmt: skip
    vendor = {path: value for path, value in event.items() if path.startswith("crowdstrike.")}
    assert {path: value for path, value in event.items() if not path.startswith("crowdstrike.")} == expected_ecs
    # What the pipeline does not rename stays under crowdstrike.*; ProcessEndTime "" is removed by remove-nulls.
    assert vendor == {
        "crowdstrike.AuthenticationId": "996",
        "crowdstrike.ConfigStateHash": "2166136261",
        "crowdstrike.EffectiveTransmissionClass": "2",
        "crowdstrike.Entitlements": "15",
        "crowdstrike.ImageSubsystem": "3",
        "crowdstrike.IntegrityLevel": "8192",
        "crowdstrike.ParentAuthenticationId": "996",
        "crowdstrike.ProcessCreateFlags": "1024",
        "crowdstrike.ProcessParameterFlags": "16385",
        "crowdstrike.ProcessSxsFlags": "64",
        "crowdstrike.SessionId": "0",
        "crowdstrike.SourceProcessId": "5321004187",
        "crowdstrike.SourceThreadId": "8826143918",
        "crowdstrike.TokenType": "1",
        "crowdstrike.WindowFlags": "0",
        "crowdstrike.cid": CID,
        "crowdstrike.id": "1a4e7d03-11f2-11ef-8b21-06d1c2b7a001",
        "crowdstrike.name": "ProcessRollup2V19",
    }


def test_metadata_enrichment_as_in_elastics_documented_example() -> None:
    """The aidmaster/userinfo ``metadata`` of packages/crowdstrike/docs/README.md's example: host.name from
    metadata.host.ComputerName when the event has none, host.ip from its aip, user.name from metadata.user.UserName
    (before UserName), related.hosts/related.user in the pipeline's order; metadata.host.aid and
    metadata.user.UserSid_readable removed; the rest under crowdstrike.info.*. The caller's document is unchanged."""
    document = rollup("2450046082233", CMD, "cmd.exe", parent="2439558094566", parent_base="svchost.exe")
    del document["ComputerName"]
    document["UserName"] = "IgnoredWhenMetadataNamesTheUser"
    document["metadata"] = {
        "host": {"ComputerName": "FIN-SRV-11", "aip": "192.0.2.44", "aid": AID, "City": "Lyon"},
        "user": {"UserName": "a.martin", "User": "CORP\\AMARTIN", "LastLoggedOnHost": "FIN-WS-0007",
                 "UserSid_readable": "S-1-5-21-1-2-3-1104"},
    }  # fmt: skip
    original = copy.deepcopy(document)
    event = normalize_crowdstrike(document, SourceContext())
    assert document == original
    assert event["host.name"] == "FIN-SRV-11"
    assert "host.hostname" not in event
    assert event["host.ip"] == ["192.0.2.44"]
    assert event["user.name"] == "a.martin"
    assert event["crowdstrike.UserName"] == "IgnoredWhenMetadataNamesTheUser"
    assert event["related.hosts"] == ["FIN-SRV-11", "FIN-WS-0007"]
    assert event["related.user"] == ["a.martin", "CORP\\AMARTIN"]
    assert event["related.ip"] == ["192.0.2.44"]
    assert event["crowdstrike.info.host.City"] == "Lyon"
    assert event["crowdstrike.info.user.User"] == "CORP\\AMARTIN"
    for gone in ("crowdstrike.info.host.aid", "crowdstrike.info.user.UserSid_readable", "crowdstrike.info.host.aip",
                 "crowdstrike.info.host.ComputerName", "crowdstrike.info.user.UserName"):  # fmt: skip
        assert gone not in event


@pytest.mark.parametrize(
    ("executable", "name"),
    [
        (r"\Device\HarddiskVolume3\Windows\System32\cmd.exe", "cmd.exe"),
        ("/usr/bin/bash", "bash"),
        (r"C:\Windows\System32\cmd.exe", r"C:\Windows\System32\cmd.exe"),  # no leading \ or /: the whole string
        ("cmd.exe", "cmd.exe"),
        ("\\Device\\HarddiskVolume3\\Windows\\", ""),  # splitOnToken keeps the trailing empty segment
    ],
)
def test_process_name_only_from_paths_starting_with_a_separator(executable: str, name: str) -> None:
    """process-name script: ``executable.splitOnToken("\\\\")[-1]`` only when the path starts with ``\\`` (or ``/``)."""
    assert process_name(executable) == name
    event = normalize_crowdstrike(rollup("100", executable, "x", parent="1"), SourceContext())
    if name:
        assert event["process.name"] == name
    else:
        assert "process.name" not in event  # remove-nulls drops the empty name


@pytest.mark.parametrize(
    ("platform", "os_type"), [("Win", "windows"), ("Lin", "linux"), ("Mac", "macos"), ("win", None), ("", None)]
)
def test_host_os_type_from_event_platform(platform: str, os_type: str | None) -> None:
    """OS fields: Win/Lin/Mac only, case-sensitive; event_platform leaves crowdstrike.* once host.os.type is set.
    Without host.os.type the split-command-line script does not run (no process.args)."""
    event = normalize_crowdstrike(
        rollup("100", CMD, "cmd.exe /c ver", parent="1", event_platform=platform), SourceContext()
    )
    assert event.get("host.os.type") == os_type
    if os_type is None:
        assert "process.args" not in event
        assert event.get("crowdstrike.event_platform") == (platform or None)
    else:
        assert event["process.args"] == ["cmd.exe", "/c", "ver"]
        assert "crowdstrike.event_platform" not in event


def test_linux_host_keeps_windows_rule_quiet(seed_rules: RuleSet) -> None:
    """The same web-server/shell names on a Lin sensor: host.os.type linux, and the seed rule does not match."""
    child = rollup("200", CMD, "cmd.exe /c whoami", parent="100", parent_base="w3wp.exe", event_platform="Lin")
    event = normalize_crowdstrike(child, SourceContext())
    assert event["host.os.type"] == "linux"
    assert (event["process.name"], event["process.parent.name"]) == ("cmd.exe", "w3wp.exe")
    assert seed_rules.matching(event) == []
    windows = normalize_crowdstrike({**child, "event_platform": "Win"}, SourceContext())
    assert [rule.name for rule in seed_rules.matching(windows)] == [SEED_RULE_NAME]


@pytest.mark.parametrize(
    ("fields", "timestamp"),
    [
        ({"timestamp": "1715683391862"}, "2024-05-14T10:43:11.862Z"),
        ({"UTCTimestamp": "1715683000000", "timestamp": "1715683391862"}, "2024-05-14T10:36:40.000Z"),  # first wins
        ({"timestamp": "2024-05-14T10:43:11.862Z"}, "2024-05-14T10:43:11.862Z"),  # ISO8601, the second format
        ({"timestamp": "not a time", "CreationTimeStamp": "1715683391.5"}, "2024-05-14T10:43:11.500Z"),  # UNIX
        ({"_time": "1715683391"}, "2024-05-14T10:43:11.000Z"),
        ({"timestamp": ""}, None),  # no readable time: left out (the pipeline would use the ingest time)
    ],
)
def test_timestamp_sources_in_pipeline_order(fields: dict[str, str], timestamp: str | None) -> None:
    """date-timestamp-utc, date-timestamp, date-event-created, date-Time, date-_time; set-timestamp."""
    document = rollup("100", CMD, "cmd.exe", parent="1")
    del document["timestamp"]
    event = normalize_crowdstrike({**document, **fields}, SourceContext())
    assert event.get("@timestamp") == timestamp
    assert event.get("event.created") == timestamp
    assert "crowdstrike.timestamp" not in event and "crowdstrike.UTCTimestamp" not in event


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=253402300799999))
def test_epoch_conversion_is_exact(millis: int) -> None:
    """UNIX_MS, and UNIX with a fraction (cut to milliseconds, as the date processor renders it), read as exact
    decimals: no float rounding at any magnitude up to year 9999."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    expected = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
        f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )
    assert epoch_to_iso(str(millis), seconds=False) == expected
    assert epoch_to_iso(f"{millis // 1000}.{millis % 1000:03d}", seconds=True) == expected
    assert epoch_to_iso(f"{millis // 1000}.{millis % 1000:03d}999", seconds=True) == expected


@pytest.mark.parametrize(
    ("raw", "pid"),
    [("4688", 4688), ("+12", 12), ("18446744073709551615", -1), ("9223372036854775808", -(1 << 63))],
)
def test_raw_process_id_as_unsigned_long(raw: str, pid: int) -> None:
    """parse-raw-pids: Long.parseUnsignedLong, so ids past 2^63 wrap to negative longs."""
    event = normalize_crowdstrike(rollup("100", CMD, "cmd.exe", parent="1", RawProcessId=raw), SourceContext())
    assert event["process.pid"] == pid
    assert "crowdstrike.RawProcessId" not in event


@pytest.mark.parametrize("raw", ["-5", "0x10", "18446744073709551616", "12a"])
def test_unparsable_raw_process_id_stays_in_the_vendor_namespace(raw: str) -> None:
    """The pipeline keeps the string in process.pid, which a long mapping then rejects; here it stays readable
    under crowdstrike.RawProcessId and process.pid is left out."""
    event = normalize_crowdstrike(rollup("100", CMD, "cmd.exe", parent="1", RawProcessId=raw), SourceContext())
    assert "process.pid" not in event
    assert event["crowdstrike.RawProcessId"] == raw


def test_placeholder_values_are_removed_everywhere() -> None:
    """remove-nulls: null, "", "-" and "none" are dropped, in lists too; so a "-" UserName is no user.name, and
    an empty ParentBaseFileName is no parent name."""
    document = rollup("100", CMD, "cmd.exe", parent="1", parent_base="", UserName="-", SessionId="none",
                      Tags="41, , -", IntegrityLevel=None)  # fmt: skip
    event = normalize_crowdstrike(document, SourceContext())
    for gone in ("user.name", "process.parent.name", "crowdstrike.SessionId", "crowdstrike.IntegrityLevel"):
        assert gone not in event
    assert event["crowdstrike.Tags"] == ["41"]  # split on ",\s?" then emptied of "" and "-"


def test_user_fields() -> None:
    """User fields: UID before UserSid (then kept under crowdstrike.*), GID -> user.group.id, UserIsAdmin "1" ->
    user.roles admin, UserPrincipal -> user.email, and with exactly one "@" user.domain / user.full_name."""
    document = rollup("100", CMD, "cmd.exe", parent="1", UID="1001", GID="1001", UserIsAdmin="1",
                      UserPrincipal="a.martin@corp.example", UserName="a.martin")  # fmt: skip
    event = normalize_crowdstrike(document, SourceContext())
    assert event["user.id"] == "1001"
    assert event["crowdstrike.UserSid"] == "S-1-5-18"
    assert event["user.group.id"] == "1001"
    assert event["user.roles"] == ["admin"]
    assert "crowdstrike.UserIsAdmin" not in event
    assert (event["user.email"], event["user.domain"], event["user.full_name"]) == (
        "a.martin@corp.example",
        "corp.example",
        "a.martin",
    )
    assert event["related.user"] == ["a.martin"]  # user.name, then full_name (the same value, not repeated)
    two_ats = normalize_crowdstrike({**document, "UserPrincipal": "a@b@c"}, SourceContext())
    assert two_ats["user.email"] == "a@b@c" and "user.domain" not in two_ats


def test_non_process_event_keeps_basic_fields_and_vendor_namespace() -> None:
    """The DnsRequest of the positive fixture: network/protocol, no process category; ContextProcessId ->
    process.entity_id, ContextThreadId -> process.thread.id; counts to long; ContextTimeStamp to a date. The DNS
    section is not ported, so DomainName and RequestType stay under crowdstrike.*."""
    event = normalize_all(fixture_documents(POSITIVE))[2]
    assert event["event.action"] == "DnsRequest"
    assert event["event.category"] == ["network"]
    assert event["event.type"] == ["protocol"]
    assert event["host.os.type"] == "windows"
    assert event["@timestamp"] == "2024-05-14T10:41:10.611Z"
    assert event["process.entity_id"] == "5321730402"
    assert event["process.thread.id"] == 8826371044
    assert event["crowdstrike.DnsRequestCount"] == 1
    assert event["crowdstrike.ContextTimeStamp"] == "2024-05-14T10:41:10.442Z"
    assert event["crowdstrike.DomainName"] == "update-check.example.net"
    assert "process.parent.name" not in event and PARENT_RESOLVED_FROM not in event


def test_context_timestamp_as_windows_filetime() -> None:
    """date-context-timestamp-from-nt: a whole number above 0x0100000000000000 is a FILETIME."""
    filetime = (1715683270 + 11644473600) * 10_000_000
    event = normalize_crowdstrike({"event_simpleName": "DnsRequest", "aid": AID, "ContextTimeStamp": str(filetime)},
                                  SourceContext())  # fmt: skip
    assert event["crowdstrike.ContextTimeStamp"] == "2024-05-14T10:41:10.000Z"


def test_unknown_event_name_keeps_action_and_fields() -> None:
    """A name missing from the categorization table gets no event.kind/category/type (as in the pipeline)."""
    assert "ProcessRollup2" in CATEGORIZATION and "SomeFutureEvent" not in CATEGORIZATION
    event = normalize_crowdstrike({"event_simpleName": "SomeFutureEvent", "aid": AID, "Widget": "7"}, SourceContext())
    assert event["event.action"] == "SomeFutureEvent"
    assert not any(path in event for path in ("event.kind", "event.category", "event.type"))
    assert event["crowdstrike.Widget"] == "7"


def test_categorization_table_rows() -> None:
    """Rows of the pipeline's table: the ones the seed rule depends on, and a sample from its start, middle and
    end (multi-valued lists keep the pipeline's order)."""
    for name in ("ProcessRollup2", "SyntheticProcessRollup2", "WmiCreateProcess"):
        row = CATEGORIZATION[name]
        assert (row.category, row.type, row.kind, row.outcome) == (("process",), ("start",), "event", "success")
    samples = {
        "AcUninstallConfirmation": (("package",), ("deletion",), "state", "success"),
        "AgentOnline": (("configuration", "package", "host"), ("change", "installation", "start"), "state", "success"),
        "EndOfProcess": (("process",), ("end",), "event", "success"),
        "NetworkReceiveAcceptIP4": (("network",), ("allowed", "access", "connection"), "event", "unknown"),
        "ProcessRollup2Stats": (("process",), ("info",), "state", "unknown"),
        "SuspiciousRegAsepUpdate": (("malware", "registry", "configuration"), ("change", "info"), "alert", "success"),
        "UserLogonFailed2": (("authentication",), ("start",), "event", "failure"),
        "ZipFileWritten": (("file",), ("creation",), "event", "success"),
    }
    for name, (category, types, kind, outcome) in samples.items():
        row = CATEGORIZATION[name]
        assert (row.category, row.type, row.kind, row.outcome) == (category, types, kind, outcome), name


# --- parent resolution ---------------------------------------------------------------------------------------


def test_positive_fixture_child_gets_its_parent_from_the_earlier_rollup() -> None:
    events = normalize_all(fixture_documents(POSITIVE))
    w3wp, child = events[1], events[3]
    assert child["process.name"] == "cmd.exe"
    assert child["process.parent.entity_id"] == w3wp["process.entity_id"]
    assert child["process.parent.name"] == "w3wp.exe"
    assert child["process.parent.executable"] == W3WP
    assert child["process.parent.command_line"] == w3wp["process.command_line"]
    assert child["process.parent.pid"] == 4688
    assert child[PARENT_RESOLVED_FROM] == w3wp["event.id"]
    # whoami.exe names its parent itself; its path, command line and pid come from cmd.exe's rollup.
    whoami = events[4]
    assert whoami["process.parent.name"] == "cmd.exe"
    assert whoami["process.parent.pid"] == 7340
    assert whoami[PARENT_RESOLVED_FROM] == child["event.id"]


def test_event_parent_name_wins_and_memory_fills_the_rest_only_for_that_name() -> None:
    parent = rollup("100", W3WP, "w3wp.exe -ap Pool", parent="1", parent_base="svchost.exe")
    same_name = rollup("200", CMD, "cmd.exe", parent="100", parent_base="W3WP.EXE")
    other_name = rollup("300", CMD, "cmd.exe", parent="100", parent_base="svchost.exe")
    _, filled, refused = normalize_all([parent, same_name, other_name])
    assert filled["process.parent.name"] == "W3WP.EXE"  # as the event says
    assert filled["process.parent.executable"] == W3WP
    assert filled[PARENT_RESOLVED_FROM] == f"id-100|{AID}|{CID}"
    assert refused["process.parent.name"] == "svchost.exe"
    assert not any(
        path in refused for path in ("process.parent.executable", "process.parent.pid", PARENT_RESOLVED_FROM)
    )


def test_parent_is_resolved_within_the_same_sensor_only() -> None:
    parent = rollup("100", W3WP, "w3wp.exe", parent="1")
    elsewhere = rollup("200", CMD, "cmd.exe", parent="100", aid="0" * 31 + "1")
    event = normalize_all([parent, elsewhere])[1]
    assert "process.parent.name" not in event and PARENT_RESOLVED_FROM not in event


def test_parent_rollup_later_in_the_file_is_not_used() -> None:
    child = rollup("200", CMD, "cmd.exe", parent="100")
    parent = rollup("100", W3WP, "w3wp.exe", parent="1")
    assert "process.parent.name" not in normalize_all([child, parent])[0]


def test_synthetic_rollups_are_remembered_and_other_events_are_not() -> None:
    """SyntheticProcessRollup2 (a process already running when the sensor started) describes a process too; an
    EndOfProcess or a DnsRequest with a TargetProcessId/ContextProcessId describes no image and is not kept."""
    synthetic = rollup("100", W3WP, "w3wp.exe", parent="1", event_simpleName="SyntheticProcessRollup2")
    ended = {"event_simpleName": "EndOfProcess", "aid": AID, "TargetProcessId": "101", "RawProcessId": "9"}
    dns = {"event_simpleName": "DnsRequest", "aid": AID, "ContextProcessId": "102"}
    # A rollup without TargetProcessId takes process.entity_id from ContextProcessId; it is not a process's own id.
    no_target = rollup("103", W3WP, "w3wp.exe", parent="1", ContextProcessId="103")
    del no_target["TargetProcessId"]
    parents = ("100", "101", "102", "103")
    children = [rollup(str(200 + n), CMD, "cmd.exe", parent=parent) for n, parent in enumerate(parents)]
    events = normalize_all([synthetic, ended, dns, no_target, *children])
    assert events[3]["process.entity_id"] == "103"
    assert events[4]["process.parent.name"] == "w3wp.exe"
    for child in events[5:]:
        assert "process.parent.name" not in child


def test_wmi_created_process_gets_its_parent_resolved() -> None:
    """WmiCreateProcess is a process start in the pipeline's table; its parent id is resolved like a rollup's."""
    parent = rollup("100", W3WP, "w3wp.exe", parent="1")
    wmi = rollup("200", CMD, "cmd.exe", parent="100", event_simpleName="WmiCreateProcess")
    event = normalize_all([parent, wmi])[1]
    assert event["event.type"] == ["start"] and event["process.parent.name"] == "w3wp.exe"


def test_long_texts_are_not_remembered_rather_than_cut() -> None:
    long_line = "w3wp.exe " + "a" * REMEMBERED_TEXT_LIMIT
    parent = rollup("100", W3WP, long_line, parent="1")
    event = normalize_all([parent, rollup("200", CMD, "cmd.exe", parent="100")])[1]
    assert event["process.parent.executable"] == W3WP
    assert "process.parent.command_line" not in event


@pytest.mark.parametrize(("bound", "resolved"), [(0, False), (1, False), (2, True)])
def test_oldest_remembered_process_is_forgotten_first(bound: int, resolved: bool) -> None:
    """w3wp.exe, then an unrelated rollup, then w3wp's child: with room for one process the worker is forgotten."""
    documents = [
        rollup("100", W3WP, "w3wp.exe", parent="1"),
        rollup("150", r"\Device\HarddiskVolume2\Windows\System32\svchost.exe", "svchost.exe -k netsvcs", parent="1"),
        rollup("200", CMD, "cmd.exe /c whoami", parent="100"),
    ]
    context = SourceContext(process_memory=bound)
    child = normalize_all(documents, context)[2]
    assert (child.get("process.parent.name") == "w3wp.exe") is resolved
    assert len(process_memory(context).processes) <= bound


def test_normalizing_a_matched_event_again_keeps_its_parent(seed_rules: RuleSet) -> None:
    """The hunt normalizes a matched record a second time for the alert. With a full memory, remembering the child
    pushes out its parent (the oldest entry); the second normalization must still give the parent."""
    context = SourceContext(process_memory=1)
    normalize_crowdstrike(rollup("100", W3WP, "w3wp.exe", parent="1"), context)
    child = rollup("200", CMD, "cmd.exe /c whoami", parent="100")
    first = normalize_crowdstrike(child, context)
    assert list(process_memory(context).processes) == [(AID, "200")]  # the worker is forgotten
    second = normalize_crowdstrike(child, context)
    assert first == second
    assert second["process.parent.name"] == "w3wp.exe" and seed_rules.matching(second)


def test_memory_belongs_to_one_context() -> None:
    parent = rollup("100", W3WP, "w3wp.exe", parent="1")
    child = rollup("200", CMD, "cmd.exe", parent="100")
    normalize_crowdstrike(parent, SourceContext())
    assert "process.parent.name" not in normalize_crowdstrike(child, SourceContext())


_SENSORS = st.sampled_from(["a1", "a2"])
_IDS = st.sampled_from([str(n) for n in range(9)])
_STREAM = st.lists(st.tuples(_SENSORS, _IDS, _IDS), max_size=60)
"""(aid, TargetProcessId, ParentProcessId) of each rollup: few values, so parents are often remembered."""


@settings(max_examples=200, deadline=None)
@given(bound=st.integers(min_value=0, max_value=6), stream=_STREAM)
def test_memory_stays_within_its_bound_and_matches_a_reference_model(
    bound: int, stream: list[tuple[str, str, str]]
) -> None:
    """Random rollup streams (sensor, own id, parent id): the memory never exceeds the bound, and a parent is
    resolved exactly when an insertion-ordered reference memory of that size still holds it."""
    context = SourceContext(process_memory=bound)
    model: OrderedDict[tuple[str, str], str] = OrderedDict()
    for index, (aid, target, parent) in enumerate(stream):
        image = f"\\Device\\HarddiskVolume1\\p{target}.exe"
        document = rollup(target, image, f"p{target}.exe", parent=parent, aid=aid, id=f"event-{index}")
        event = normalize_crowdstrike(document, context)
        expected_parent = model.get((aid, parent)) if parent != target else None
        assert event.get("process.parent.name") == expected_parent
        again = normalize_crowdstrike(document, context)  # as the hunt does for a matched record
        assert again == event
        if bound:
            model[(aid, target)] = f"p{target}.exe"
            model.move_to_end((aid, target))
            while len(model) > bound:
                model.popitem(last=False)
        assert len(process_memory(context).processes) <= bound


# --- robustness ----------------------------------------------------------------------------------------------

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)
_KNOWN_KEYS = [
    "event_simpleName", "aid", "cid", "aip", "id", "timestamp", "UTCTimestamp", "CreationTimeStamp", "Time", "_time",
    "ContextTimeStamp", "ComputerName", "hostname", "event_platform", "CommandLine", "ImageFileName", "RawProcessId",
    "TargetProcessId", "ParentProcessId", "ParentBaseFileName", "ProcessStartTime", "ProcessEndTime", "ProcessGroupId",
    "ContextProcessId", "ContextThreadId", "EtwRawProcessId", "EtwRawThreadId", "ExitCode", "MD5HashData",
    "SHA1HashData", "SHA256HashData", "UID", "GID", "UserSid", "UserName", "UserPrincipal", "UserIsAdmin", "metadata",
    "info", "Tags", "ConfigStateHash", "ConfigBuild", "AgentVersion", "DnsRequestCount", "RemotePort", "message",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(_KNOWN_KEYS) | st.text(max_size=12), _JSON, max_size=12),
    st.sampled_from(["ProcessRollup2", "SyntheticProcessRollup2", "DnsRequest", "Unknown", None]),
)
def test_never_raises_on_arbitrary_objects(document: dict[str, Any], name: str | None) -> None:
    if name is not None:
        document["event_simpleName"] = name
    context = SourceContext(process_memory=3)
    original = copy.deepcopy(document)
    is_crowdstrike_record(document)
    for _ in range(2):  # twice: the second run may resolve a parent from the first
        event = normalize_crowdstrike(document, context)
        assert all(isinstance(path, str) for path in event)
        assert not any(isinstance(value, dict) for value in event.values())
    assert repr(document) == repr(original)  # never changed (repr: NaN is not equal to itself)


# --- the seed rule -------------------------------------------------------------------------------------------


def matches(path: Path, rules: RuleSet) -> list[Event]:
    return [event for event in normalize_all(fixture_documents(path)) if rules.matching(event)]


def test_seed_rule_raises_once_on_the_positive_fixture(seed_rules: RuleSet) -> None:
    matched = matches(POSITIVE, seed_rules)
    assert len(matched) == 1
    assert (matched[0]["process.name"], matched[0]["process.parent.name"]) == ("cmd.exe", "w3wp.exe")
    assert PARENT_RESOLVED_FROM in matched[0]


def test_seed_rule_needs_the_resolved_parent(seed_rules: RuleSet) -> None:
    """Without memory the positive child has no parent name, and the rule cannot match."""
    events = normalize_all(fixture_documents(POSITIVE), SourceContext(process_memory=0))
    assert [event for event in events if seed_rules.matching(event)] == []


def test_seed_rule_stays_quiet_on_the_benign_fixture(seed_rules: RuleSet) -> None:
    assert matches(BENIGN, seed_rules) == []
    events = normalize_all(fixture_documents(BENIGN))
    csc, orphan, linux = events[2], events[3], events[4]
    assert csc["process.parent.name"] == "w3wp.exe"  # resolved, but csc.exe is no shell
    assert orphan["process.name"] == "cmd.exe" and "process.parent.name" not in orphan
    assert linux["host.os.type"] == "linux"


@pytest.mark.parametrize(("path", "count"), [(POSITIVE, 1), (BENIGN, 0)])
def test_seed_rule_through_hunt(path: Path, count: int) -> None:
    from shellwatch.pipeline import HuntStats, hunt

    stats = HuntStats()
    rules = RuleSet(rule for rule in load_bundled_rules().rules if rule.language == "eql")
    alerts = list(hunt([str(path)], rules, stats=stats, workers=1))
    if FAMILY not in stats.by_source:
        pytest.skip(f"the hunt does not route {FAMILY} records to this normalizer yet (normalize/dispatch.py)")
    assert stats.by_source[FAMILY] == len(fixture_documents(path))
    assert len(alerts) == count
