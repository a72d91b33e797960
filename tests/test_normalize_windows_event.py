"""Raw Windows events (the evtx package's rendering) -> Winlogbeat's collected fields + the provider mapping.

Collection behaviour follows elastic/beats winlogbeat/sys/winevent/event.go (Fields), maputil.go (AddPairs:
empty values dropped, unnamed <Data> named paramN, first key wins) and winmeta.go (standard keyword, opcode
and level names).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import shared_path
from shellwatch.normalize.dispatch import normalize, normalize_with_family, source_family
from shellwatch.normalize.timestamps import iso_utc, sysmon_utc_time
from shellwatch.sources.record import Origin, RawRecord


def _record(data: dict[str, Any]) -> RawRecord:
    return RawRecord(data, "windows_event", Origin("test.evtx", 1))


def _system(provider: str, event_id: Any, channel: str, **extra: Any) -> dict[str, Any]:
    system: dict[str, Any] = {
        "Provider": {"#attributes": {"Name": provider}},
        "EventID": event_id,
        "Channel": channel,
        "Computer": "HOST1",
        "TimeCreated": {"#attributes": {"SystemTime": "2024-03-01T10:00:00.123456Z"}},
    }
    system.update(extra)
    return system


def seed_002_event() -> dict[str, Any]:
    """The 4688 event of seeds/002 (its XML block), as the evtx-style dict an XML reader hands over.

    The seed doubles its backslashes (``C:\\\\Windows\\\\...``): the values are kept literally as written.
    ``<Security />`` and ``<Correlation />`` are empty elements, ``<Data Name="CommandLine" />`` an empty
    value.
    """
    return {
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {
                    "#attributes": {
                        "Name": "Microsoft-Windows-Security-Auditing",
                        "Guid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
                    }
                },
                "EventID": "4688",
                "Version": "2",
                "Level": "0",
                "Task": "13312",
                "Opcode": "0",
                "Keywords": "0x8020000000000000",
                "TimeCreated": {"#attributes": {"SystemTime": "2015-11-12T02:24:52.377352500Z"}},
                "EventRecordID": "2814",
                "Correlation": None,
                "Execution": {"#attributes": {"ProcessID": "4", "ThreadID": "400"}},
                "Channel": "Security",
                "Computer": "WIN-GG82ULGC9GO.contoso.local",
                "Security": None,
            },
            "EventData": {
                "SubjectUserSid": "S-1-5-18",
                "SubjectUserName": "WIN-GG82ULGC9GO$",
                "SubjectDomainName": "CONTOSO",
                "SubjectLogonId": "0x3e7",
                "NewProcessId": "0x2bc",
                "NewProcessName": r"C:\\Windows\\System32\\rundll32.exe",
                "TokenElevationType": "%%1938",
                "ProcessId": "0xe74",
                "CommandLine": "",
                "TargetUserSid": "S-1-5-21-1377283216-344919071-3415362939-1104",
                "TargetUserName": "dadmin",
                "TargetDomainName": "CONTOSO",
                "TargetLogonId": "0x4a5af0",
                "ParentProcessName": r"C:\\Windows\\explorer.exe",
                "MandatoryLabel": "S-1-16-8192",
            },
        }
    }


def test_seed_002_xml_block_matches_its_text() -> None:
    """The hand-built dict above is the seed's XML block, value for value."""
    text = shared_path("seeds", "002_34a43a8019901ab4.txt").read_text(encoding="utf-8")
    data = dict(re.findall(r'<Data Name="(\w+)">([^<]*)</Data>', text))
    event_data = seed_002_event()["Event"]["EventData"]
    assert {k: v for k, v in event_data.items() if v} == data
    assert '<Data Name="CommandLine" />' in text
    assert 'SystemTime="2015-11-12T02:24:52.377352500Z"' in text


def test_seed_002_process_creation() -> None:
    """Seed 002's 4688: the fields the web-shell rules read.

    user.* is the *subject* (the creator, here the machine account) and user.effective.* the *target* (the
    account the new process runs as, dadmin), as the system/security pipeline maps 4688 ("Copy Subject User
    from Event Data" and "Copy Target User to Effective", elastic/beats x-pack/winlogbeat/module/security/
    ingest/security.yml; the beats golden 4688 file has user.name = SubjectUserName).
    """
    family, event = normalize_with_family(_record(seed_002_event()))
    assert family == "windows_security"
    assert event["@timestamp"] == "2015-11-12T02:24:52.377352500Z"
    assert event["host.os.type"] == "windows"
    assert event["host.name"] == "WIN-GG82ULGC9GO.contoso.local"
    assert event["event.code"] == "4688"
    assert event["event.category"] == ["process"]
    assert event["event.type"] == ["start"]
    assert event["event.action"] == "created-process"
    assert event["event.outcome"] == "success"
    # The doubled backslashes stay; the name is still what follows the last one.
    assert event["process.executable"] == r"C:\\Windows\\System32\\rundll32.exe"
    assert event["process.name"] == "rundll32.exe"
    assert event["process.parent.executable"] == r"C:\\Windows\\explorer.exe"
    assert event["process.parent.name"] == "explorer.exe"
    assert event["process.pid"] == 700
    assert event["process.parent.pid"] == 3700
    assert event["user.effective.name"] == "dadmin"
    assert event["user.effective.domain"] == "CONTOSO"
    assert event["user.effective.id"] == "S-1-5-21-1377283216-344919071-3415362939-1104"
    assert event["user.name"] == "WIN-GG82ULGC9GO$"
    assert event["user.id"] == "S-1-5-18"
    assert event["related.user"] == ["WIN-GG82ULGC9GO$", "dadmin"]
    assert event["winlog.logon.id"] == "0x3e7"
    # Command-line auditing was off: no command line, no args (Winlogbeat drops the empty value).
    assert "process.command_line" not in event
    assert "process.args" not in event
    assert "winlog.event_data.CommandLine" not in event
    assert event["winlog.event_data.TokenElevationType"] == "%%1938"
    assert event["winlog.event_data.MandatoryLabel"] == "S-1-16-8192"
    assert event["winlog.keywords"] == ["Audit Success"]
    assert event["winlog.record_id"] == "2814"
    assert event["winlog.version"] == 2
    assert event["log.level"] == "information"
    assert "winlog.user.identifier" not in event


def test_system_part_like_winlogbeat() -> None:
    system = _system(
        "Service Control Manager",
        {"#attributes": {"Qualifiers": 16384}, "#text": 7036},
        "System",
        Level=4,
        Opcode=0,
        Task=0,
        Version=0,
        Keywords="0x8080000000000000",
        EventRecordID=42,
        Execution={"#attributes": {"ProcessID": 600, "ThreadID": 0}},
        Correlation={"#attributes": {"ActivityID": "CD4E5D70-1D10-0001-895D-4ECD101DD801"}},
        Security={"#attributes": {"UserID": "S-1-5-18"}},
    )
    family, event = normalize_with_family(
        _record({"Event": {"System": system, "EventData": {"param1": "x"}}})
    )
    assert family == "windows"
    assert event["event.code"] == "7036"  # the qualifiers are not part of the id
    assert event["winlog.event_id"] == "7036"
    assert event["event.provider"] == "Service Control Manager"
    assert event["winlog.keywords"] == ["Classic"]
    assert "event.outcome" not in event
    assert event["winlog.task"] == "None"
    assert "winlog.version" not in event  # zero values are left out, as AddOptional does
    assert "winlog.process.thread.id" not in event
    assert event["winlog.process.pid"] == 600
    assert event["winlog.activity_id"] == "{CD4E5D70-1D10-0001-895D-4ECD101DD801}"
    assert event["winlog.user.identifier"] == "S-1-5-18"
    assert event["winlog.event_data.param1"] == "x"
    assert "event.category" not in event  # basic fields only for an unmapped provider


def test_event_data_values_become_winlogbeat_strings() -> None:
    data = {
        "Named": "v",
        "Empty": "",
        "Missing": None,
        "Number": 2404,
        "Flag": True,
        "Lines": "one\r\ntwo\n",
        "Binary": "5700650072",
    }
    event = normalize(_record({"Event": {"System": _system("P", 1, "Application"), "EventData": data}}))
    fields = {
        k.removeprefix("winlog.event_data."): v
        for k, v in event.items()
        if k.startswith("winlog.event_data.")
    }
    assert fields == {
        "Named": "v",
        "Number": "2404",
        "Flag": "true",
        "Lines": "one\ntwo",
        "Binary": "5700650072",
    }


def test_unnamed_data_are_numbered_by_position() -> None:
    """Classic events have unnamed <Data>; evtx renders several as {"#text": [...]}, Winlogbeat names them
    paramN by position, skipping empty ones but counting them."""
    event_data = {"Data": {"#text": ["show advanced options", "", "1"]}, "Binary": "613C"}
    event = normalize(
        _record({"Event": {"System": _system("MSSQLSERVER", 15457, "Application"), "EventData": event_data}})
    )
    assert event["winlog.event_data.param1"] == "show advanced options"
    assert "winlog.event_data.param2" not in event
    assert event["winlog.event_data.param3"] == "1"
    assert event["winlog.event_data.Binary"] == "613C"
    named = {"Data": [{"#attributes": {"Name": "Image"}, "#text": "C:\\x.exe"}, "loose"]}
    event = normalize(_record({"Event": {"System": _system("P", 1, "Application"), "EventData": named}}))
    assert (event["winlog.event_data.Image"], event["winlog.event_data.param2"]) == ("C:\\x.exe", "loose")
    single = normalize(
        _record({"Event": {"System": _system("P", 1, "Application"), "EventData": {"Data": "only"}}})
    )
    assert single["winlog.event_data.param1"] == "only"


def test_user_data_log_cleared() -> None:
    """1102 carries its fields in UserData; the security pipeline copies its subject to user.* ("Copy Subject
    User from user_data")."""
    user_data = {
        "LogFileCleared": {
            "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
            "SubjectUserSid": "S-1-5-21-1-2-3-1000",
            "SubjectUserName": "IEUser",
            "SubjectDomainName": "IE10WIN7",
            "SubjectLogonId": "0x6793c",
        }
    }
    family, event = normalize_with_family(
        _record(
            {
                "Event": {
                    "System": _system("Microsoft-Windows-Eventlog", 1102, "Security"),
                    "UserData": user_data,
                }
            }
        )
    )
    assert family == "windows_security"
    assert event["winlog.user_data.xml_name"] == "LogFileCleared"
    assert event["winlog.user_data.SubjectUserName"] == "IEUser"
    assert event["event.action"] == "audit-log-cleared"
    assert event["user.name"] == "IEUser"
    assert event["user.id"] == "S-1-5-21-1-2-3-1000"
    assert event["winlog.logon.id"] == "0x6793c"


def test_eventlog_provider_outside_security_channel_is_not_security() -> None:
    event_data = {"Event": {"System": _system("Microsoft-Windows-Eventlog", 104, "System"), "EventData": {}}}
    assert source_family(_record(event_data)) == "windows"


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"Event": None},
        {"Event": {"System": "x"}},
        {"Event": {"System": {"EventID": {"#text": "not a number"}, "Provider": ["odd"]}}},
        {"Event": {"System": _system("Microsoft-Windows-Sysmon", 1, "x"), "EventData": ["a", "b"]}},
        {"Event": {"System": _system("Microsoft-Windows-Sysmon", 1, "x"),
                   "EventData": {"ProcessId": {"a": 1}}}},
        {"Event": {"System": _system("Microsoft-Windows-Security-Auditing", 4688, "Security"),
                   "EventData": {"NewProcessId": "0xZZ", "ProcessId": "-", "NewProcessName": "\\"}}},
    ],
)  # fmt: skip
def test_odd_records_still_give_an_event(data: dict[str, Any]) -> None:
    family, event = normalize_with_family(_record(data))
    assert event["event.kind"] in ("event", "pipeline_error")
    assert family == source_family(_record(data))
    assert "process.pid" not in event


def test_unreadable_record_is_kept_and_marked() -> None:
    """A record nested beyond what flattening can follow gives a pipeline_error event, not an exception."""
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    event = normalize(RawRecord(deep, "json", Origin("deep.json", line=1)))
    assert event["event.kind"] == "pipeline_error"
    assert "could not be normalized" in event["error.message"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-11-14T17:10:15.1515514Z", "2019-11-14T17:10:15.1515514Z"),
        ("2015-11-12T02:24:52.377352500Z", "2015-11-12T02:24:52.377352500Z"),
        ("2024-03-01T12:00:00.5+02:00", "2024-03-01T10:00:00.500000Z"),
        ("2024-03-01T12:00:00.25+00:00", "2024-03-01T12:00:00.25Z"),
        ("2020-09-14 08:05:43", "2020-09-14T08:05:43Z"),
        (1600000000123, "2020-09-13T12:26:40.123Z"),
        ("yesterday", None),
        (None, None),
        (True, None),
    ],
)
def test_timestamps_are_iso_utc_with_z(value: Any, expected: str | None) -> None:
    """Elasticsearch's @timestamp default formats: strict_date_optional_time (zone-less means UTC) or
    epoch_millis."""
    assert iso_utc(value) == expected


def test_sysmon_utc_time() -> None:
    """sysmon.yml: date processor, format ``yyyy-MM-dd HH:mm:ss.SSS``, timezone UTC."""
    assert sysmon_utc_time("2020-10-27 20:00:14.320") == "2020-10-27T20:00:14.320Z"
    assert sysmon_utc_time("2020-10-27T20:00:14.320") is None
    assert sysmon_utc_time("2020-13-27 20:00:14.320") is None
