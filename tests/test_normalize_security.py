"""Security log events other than the 4688 golden pair, and the value conversions the pipelines use.

Source: elastic/beats x-pack/winlogbeat/module/security/ingest/security.yml ("Set ECS categorization fields",
"Set Logon Type", "Copy Subject User from Event Data", "Copy Target User to Effective", "Rename Common Auth
Fields", "Process Event 4688") and the system integration's system_security_default.yml (event data values
"", "-" and the null GUID removed first). Conversions: Java's Long.decode and Elasticsearch's
ConvertProcessor (type long: "0x" prefix decoded as hex, else Long.parseLong).
"""

from __future__ import annotations

from typing import Any

import pytest

from shellwatch.ecs import Event
from shellwatch.normalize.conversions import (
    es_convert_boolean,
    es_convert_ip,
    es_convert_long,
    java_long_decode,
)
from shellwatch.normalize.dispatch import normalize
from shellwatch.sources.record import Origin, RawRecord


def security_event(event_id: int, event_data: dict[str, Any]) -> Event:
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
        "EventID": event_id,
        "Channel": "Security",
        "Computer": "DC1",
        "Keywords": "0x8010000000000000",
        "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:00.000000Z"}},
    }
    return normalize(
        RawRecord({"Event": {"System": system, "EventData": event_data}}, "windows_event", Origin("t"))
    )


def test_logon_4624() -> None:
    event = security_event(
        4624,
        {
            "SubjectUserSid": "S-1-5-18",
            "SubjectUserName": "DC1$",
            "SubjectLogonId": "0x3e7",
            "TargetUserName": "alice",
            "TargetLogonId": "0x1234",
            "LogonType": "10",
            "IpAddress": "::ffff:10.0.0.5",
            "IpPort": "51000",
            "WorkstationName": "-",
            "ProcessId": "0x2c4",
            "ProcessName": "C:\\Windows\\System32\\svchost.exe",
        },
    )
    assert event["event.category"] == ["authentication"]
    assert event["event.action"] == "logged-in"
    assert event["event.outcome"] == "failure"  # Audit Failure keyword bit
    assert event["winlog.logon.type"] == "RemoteInteractive"
    assert (event["source.ip"], event["source.port"]) == ("10.0.0.5", 51000)
    assert "source.domain" not in event  # "-" is an empty value
    assert (event["process.pid"], event["process.name"]) == (0x2C4, "svchost.exe")
    assert event["winlog.logon.id"] == "0x3e7"
    assert event["related.user"] == ["DC1$"]
    assert event["related.ip"] == ["10.0.0.5"]
    assert "user.name" not in event  # 4624 is not in the subject-user list


def test_process_exit_4689() -> None:
    event = security_event(
        4689,
        {"SubjectUserName": "bob", "ProcessId": "0x1f4", "ProcessName": "C:\\Tools\\nc.exe", "Status": "0x0"},
    )
    assert event["event.type"] == ["end"]
    assert event["event.action"] == "exited-process"
    assert (event["process.pid"], event["process.name"], event["user.name"]) == (500, "nc.exe", "bob")


def test_4688_target_user_principal_name_and_args() -> None:
    event = security_event(
        4688,
        {
            "SubjectUserName": "svc",
            "TargetUserName": "alice@corp.example",
            "TargetDomainName": "CORP",
            "NewProcessId": "0x10",
            "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
            "ProcessId": "0x20",
            "ParentProcessName": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
            "CommandLine": 'cmd.exe /c "whoami /all" ',
        },
    )
    assert event["user.effective.name"] == "alice"
    assert event["related.user"] == ["svc", "alice", "alice@corp.example"]
    assert event["process.args"] == ["cmd.exe", "/c", '"whoami /all"']
    assert event["process.command_line"] == 'cmd.exe /c "whoami /all" '
    assert (event["process.name"], event["process.parent.name"]) == ("cmd.exe", "w3wp.exe")


def test_4688_name_is_the_last_backslash_segment() -> None:
    """splitOnToken("\\\\")[-1]: the whole string without a backslash; nothing for a trailing backslash."""
    assert security_event(4688, {"NewProcessName": "cmd.exe"})["process.name"] == "cmd.exe"
    assert "process.name" not in security_event(4688, {"NewProcessName": "C:\\dir\\"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0x2bc", 700), ("0XE74", 3700), ("#10", 16), ("010", 8), ("42", 42), ("-0x10", -16), ("0x", None),
     ("", None), ("0x-5", None), (" 1", None), ("1_000", None), ("0x8000000000000000", None)],
)  # fmt: skip
def test_java_long_decode(text: str, expected: int | None) -> None:
    assert java_long_decode(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3616", 3616), ("0x10", 16), ("-0x10", -16), ("+5", 5), ("010", 10), ("1.5", None), ("abc", None),
     ("٣", None), ("9223372036854775808", None)],
)  # fmt: skip
def test_es_convert_long(text: str, expected: int | None) -> None:
    assert es_convert_long(text) == expected


def test_es_convert_boolean_and_ip() -> None:
    assert (es_convert_boolean("TRUE"), es_convert_boolean("false"), es_convert_boolean("1")) == (
        True,
        False,
        None,
    )
    assert es_convert_ip("fe80::1") == "fe80::1"
    assert es_convert_ip("10.0.0.256") is None
