"""Sysmon events beyond process creation, mapped as Elastic's sysmon pipeline does.

Source of every expectation: elastic/beats x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml (the same
processors as the integrations' windows.sysmon_operational pipeline): categorization table, renames of
Image/SourceImage/TargetFilename/ImageLoaded..., kv of Hashes, User split, registry and DNS scripts.
Real records come from ../shared/corpus/evtx-attack-samples (skipped without it).
"""

from __future__ import annotations

from typing import Any

import evtx
import orjson

from conftest import shared_path
from shellwatch.ecs import Event
from shellwatch.normalize.dispatch import normalize
from shellwatch.sources.record import Origin, RawRecord


def corpus_event(relative_path: str, record_id: int) -> Event:
    path = shared_path("corpus", "evtx-attack-samples", *relative_path.split("/"))
    for item in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json():
        assert item is not None
        if item["event_record_id"] == record_id:
            return normalize(
                RawRecord(orjson.loads(item["data"]), "windows_event", Origin(str(path), record_id))
            )
    raise AssertionError(f"record {record_id} not in {path}")


def sysmon_event(event_id: int, event_data: dict[str, Any]) -> Event:
    system = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": event_id,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "WS1",
        "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:01.000000Z"}},
        "Security": {"#attributes": {"UserID": "S-1-5-18"}},
    }
    return normalize(
        RawRecord({"Event": {"System": system, "EventData": event_data}}, "windows_event", Origin("t"))
    )


def test_network_connection_3() -> None:
    event = corpus_event("AutomatedTestingTools/panache_sysmon_vs_EDRTestingScript.evtx", 22)
    assert event["event.category"] == ["network"]
    assert event["event.type"] == ["start", "connection", "protocol"]
    assert event["event.action"] == "Network connection"
    assert event["process.name"] == "mshta.exe"
    assert event["network.transport"] == "tcp"
    assert event["network.direction"] == "egress"  # Initiated true
    assert event["network.type"] == "ipv4"  # SourceIsIpv6 false
    assert event["network.protocol"] == "https"  # DestinationPortName; the empty SourcePortName is ignored
    assert (event["source.ip"], event["source.port"], event["source.domain"]) == (
        "10.0.2.15",
        49826,
        "MSEDGEWIN10.home",
    )
    assert (event["destination.ip"], event["destination.port"]) == ("151.101.0.133", 443)
    assert "destination.domain" not in event
    assert event["related.ip"] == ["10.0.2.15", "151.101.0.133"]
    assert (event["user.domain"], event["user.name"]) == ("MSEDGEWIN10", "IEUser")
    assert event["rule.name"] == "Suspicious NetCon"


def test_process_terminated_5() -> None:
    event = corpus_event(
        "AutomatedTestingTools/Malware/DE_timestomp_and_dll_sideloading_and_RunPersist.evtx", 23
    )
    assert event["event.category"] == ["process"]
    assert event["event.type"] == ["end"]
    assert event["process.name"] == "Flash_update.exe"
    assert event["process.pid"] == 2680
    assert event["process.entity_id"] == "{365ABB72-7C01-5CC4-0000-00102B3E0C00}"
    assert "rule.name" not in event  # RuleName is empty


def test_image_loaded_7_describes_the_file() -> None:
    """In event 7 the PE metadata and hashes are the loaded DLL's (file.*), not the process's."""
    event = corpus_event(
        "AutomatedTestingTools/Malware/DE_timestomp_and_dll_sideloading_and_RunPersist.evtx", 4
    )
    assert event["event.type"] == ["change"]
    assert event["process.executable"] == "C:\\Users\\IEUser\\Downloads\\Flash_update.exe"
    assert event["file.path"] == "C:\\Windows\\System32\\winmm.dll"
    assert (event["file.name"], event["file.directory"], event["file.extension"]) == (
        "winmm.dll",
        "C:\\Windows\\System32",
        "dll",
    )
    assert event["file.pe.description"] == "MCI API DLL"
    assert event["file.hash.md5"] == "d5aefad57c08349a4393d987df7c715d"
    assert event["file.pe.imphash"] == "1a7210f2c9930af9b51025300c67da77"
    assert event["file.code_signature.subject_name"] == "Microsoft Windows"
    assert event["file.code_signature.valid"] is True
    assert not any(field.startswith(("process.pe.", "process.hash.")) for field in event)
    # "Signed" arrives as the string "true" and the pipeline compares it with the boolean true.
    assert "file.code_signature.signed" not in event


def test_process_access_10_source_is_the_process() -> None:
    event = corpus_event("AutomatedTestingTools/Malware/rundll32_cmd_schtask.evtx", 23)
    assert event["event.type"] == ["access"]
    assert event["process.entity_id"] == "{747F3D96-4790-5F93-0000-001054282200}"
    assert (event["process.pid"], event["process.thread.id"]) == (3420, 8628)
    assert event["process.name"] == "svchost.exe"
    assert event["winlog.event_data.TargetImage"] == "C:\\Windows\\Explorer.EXE"
    assert event["winlog.event_data.GrantedAccess"] == "0x1014c0"


def test_file_create_11() -> None:
    event = corpus_event("AutomatedTestingTools/Malware/rundll32_cmd_schtask.evtx", 2)
    assert event["event.category"] == ["file"]
    assert event["event.type"] == ["creation"]
    assert event["file.name"] == "__tmp_rar_sfx_access_check_2914968"
    assert event["file.directory"] == "C:\\Users\\IEUser\\AppData\\Local\\Temp\\tmp1375"
    assert "file.extension" not in event
    assert event["process.name"] == "test.tmp"


def test_registry_value_set_13() -> None:
    event = corpus_event("AutomatedTestingTools/Malware/rundll32_cmd_schtask.evtx", 11)
    assert event["event.category"] == ["configuration", "registry"]
    assert event["registry.hive"] == "HKU"
    assert event["registry.key"].endswith("\\Internet Settings\\ZoneMap\\ProxyBypass")
    assert event["registry.value"] == "ProxyBypass"
    assert event["registry.data.strings"] == ["1"]  # DWORD (0x00000001)
    assert event["registry.data.type"] == "SZ_DWORD"


def test_dns_query_22() -> None:
    event = corpus_event("Privilege Escalation/Sysmon_UACME_64.evtx", 464)
    assert event["event.category"] == ["network"]
    assert event["network.protocol"] == "dns"
    assert event["dns.question.name"] == "wpad"
    assert event["related.hosts"] == ["wpad"]
    assert "dns.answers.type" not in event  # QueryResults is "-"


def test_dns_query_results_are_split() -> None:
    """The pipeline's QueryResults script: "type: N name" answers, IPv4-mapped addresses unwrapped, an A/AAAA
    answer synthesized per resolved address."""
    event = sysmon_event(
        22,
        {
            "QueryName": "www.example.org",
            "QueryResults": "type:  5 f2.example.net;::ffff:151.101.66.2;2001:db8::1;",
            "Image": "C:\\Windows\\System32\\svchost.exe",
        },
    )
    assert event["dns.resolved_ip"] == ["151.101.66.2", "2001:db8::1"]
    assert event["dns.answers.type"] == ["CNAME", "A", "AAAA"]
    assert event["dns.answers.data"] == ["f2.example.net", "151.101.66.2", "2001:db8::1"]
    assert event["related.hosts"] == ["f2.example.net", "www.example.org"]
    assert event["related.ip"] == ["151.101.66.2", "2001:db8::1"]


def test_hashes_user_and_empty_values() -> None:
    """kv of Hashes with all-zero values dropped; User split only into exactly two parts; "-" values and the
    null GUID ignored."""
    event = sysmon_event(
        1,
        {
            "Hashes": "SHA1=0000000000000000000000000000000000000000,MD5=ABCDEF,IMPHASH=00FF",
            "User": "NT AUTHORITY\\SYSTEM",
            "Image": "C:\\a\\b.exe",
            "OriginalFileName": "-",
            "ParentProcessGuid": "{00000000-0000-0000-0000-000000000000}",
            "CommandLine": "-",
        },
    )
    assert event["process.hash.md5"] == "abcdef"
    assert "process.hash.sha1" not in event
    assert event["process.pe.imphash"] == "00ff"
    assert event["related.hash"] == ["abcdef", "00ff"]
    assert (event["user.domain"], event["user.name"], event["user.id"]) == (
        "NT AUTHORITY",
        "SYSTEM",
        "S-1-5-18",
    )
    assert "process.pe.original_file_name" not in event
    assert "process.parent.entity_id" not in event
    assert "process.command_line" not in event
    # winlog.event_data keeps every value, "-" included.
    assert event["winlog.event_data.OriginalFileName"] == "-"
    for odd_user in ("a\\b\\c", "DOMAIN\\", "nobackslash"):
        assert "user.name" not in sysmon_event(1, {"User": odd_user})


def test_sysmon_timestamp_is_utc_time_and_event_created_is_time_created() -> None:
    event = sysmon_event(1, {"UtcTime": "2024-01-01 00:00:00.250", "Image": "C:\\x.exe"})
    assert event["@timestamp"] == "2024-01-01T00:00:00.250Z"
    assert event["event.created"] == "2024-01-01T00:00:01.000000Z"
    malformed = sysmon_event(1, {"UtcTime": "01/01/2024", "Image": "C:\\x.exe"})
    assert malformed["@timestamp"] == "2024-01-01T00:00:01.000000Z"
    assert "event.created" not in malformed


def test_process_name_needs_a_backslash() -> None:
    """sysmon.yml getProcessName: the part after the last backslash; nothing without one, or when empty."""
    assert "process.name" not in sysmon_event(1, {"Image": "System"})
    assert "process.name" not in sysmon_event(1, {"Image": "C:\\dir\\"})
    assert sysmon_event(1, {"Image": "C:\\dir\\x.exe"})["process.name"] == "x.exe"
