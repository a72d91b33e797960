"""Real records from ../shared/corpus through the normalizers (each test skips when the corpus is absent).

* evtx-attack-samples (sbousseaden/EVTX-ATTACK-SAMPLES): the web-shell positives named in corpus/MANIFEST.md,
  a 4688 with a device path, and every record of every file;
* sigma regression_data: evtx renderings saved as JSON (the ``json`` shape of a Windows event);
* otrf-security-datasets: NXLog/Logstash flat records;
* elastic-endpoint-package: Elastic Defend ECS documents (pass-through).
"""

from __future__ import annotations

import glob
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evtx
import orjson

from conftest import shared_path
from shellwatch.ecs import Event, flatten
from shellwatch.normalize.dispatch import normalize, normalize_with_family, source_family
from shellwatch.sources.record import Origin, RawRecord


def evtx_records(path: Path) -> Iterator[RawRecord]:
    try:
        for item in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json():
            assert item is not None
            yield RawRecord(
                orjson.loads(item["data"]), "windows_event", Origin(str(path), item["event_record_id"])
            )
    except (RuntimeError, OSError):
        # Damaged samples (bad chunk magic, zero-size record): the records before the damage were read.
        return


def process_starts(path: Path) -> list[Event]:
    events = [normalize(record) for record in evtx_records(path)]
    return [e for e in events if e.get("event.category") == ["process"] and e.get("event.type") == ["start"]]


def test_iis_webshell_sysmon_1() -> None:
    """corpus/MANIFEST.md counts one web-shell positive in this file: w3wp.exe spawning cmd.exe."""
    path = shared_path(
        "corpus", "evtx-attack-samples", "Lateral Movement", "LM_typical_IIS_webshell_sysmon_1_10_traces.evtx"
    )
    starts = process_starts(path)
    shells = [e for e in starts if e.get("process.parent.name") == "w3wp.exe"]
    assert len(shells) == 1
    event = shells[0]
    assert event["process.name"] == "cmd.exe"
    assert event["host.os.type"] == "windows"
    assert event["event.code"] == "1"
    assert event["process.command_line"] == '"c:\\windows\\system32\\cmd.exe" /c net user'
    assert event["process.args"] == ["c:\\windows\\system32\\cmd.exe", "/c", "net", "user"]
    assert event["process.args_count"] == 4
    assert event["process.parent.executable"] == "C:\\Windows\\System32\\inetsrv\\w3wp.exe"
    assert event["process.parent.args"][:3] == [
        "c:\\windows\\system32\\inetsrv\\w3wp.exe",
        "-ap",
        "DefaultAppPool",
    ]
    assert (event["user.domain"], event["user.name"]) == ("IIS APPPOOL", "DefaultAppPool")
    assert event["user.id"] == "S-1-5-18"  # the System/Security UserID, as Elastic's pipeline sets it
    assert event["process.entity_id"] == "{365ABB72-4A01-5CE7-0000-0010EE9DAC00}"
    assert event["process.working_directory"] == "c:\\windows\\system32\\inetsrv\\"
    assert event["process.hash.md5"] == "ad7b9c14083b52bc532fba5948342b98"
    assert event["winlog.event_data.IntegrityLevel"] == "High"
    assert event["@timestamp"] == "2019-05-24T01:33:53.112Z"


def test_sql_xp_cmdshell_sysmon_1() -> None:
    """The other MANIFEST.md positive: sqlservr.exe spawning a shell."""
    path = shared_path(
        "corpus", "evtx-attack-samples", "Lateral Movement", "sysmon_1_exec_via_sql_xpcmdshell.evtx"
    )
    starts = process_starts(path)
    assert [(e["process.parent.name"], e["process.name"]) for e in starts] == [("sqlservr.exe", "cmd.exe")]


def test_security_4688_with_a_device_path() -> None:
    path = shared_path("corpus", "evtx-attack-samples", "Credential Access", "tutto_malseclogon.evtx")
    event = next(e for e in process_starts(path) if e["event.code"] == "4688")
    assert event["process.executable"].startswith("\\Device\\Mup\\VBoxSvr\\")
    assert event["process.name"] == "MalSeclogon.exe"
    assert event["process.parent.name"] == "cmd.exe"
    assert (event["process.pid"], event["process.parent.pid"]) == (0x21A4, 0x2480)
    assert event["user.name"] == "IEUser"
    assert "process.command_line" not in event  # command-line auditing off: CommandLine is empty


def test_every_evtx_record_normalizes() -> None:
    """Every record of every EVTX file in the corpus gives an event of its family, and every process start
    (Sysmon 1, Security 4688) the fields the seed rules read."""
    root = shared_path("corpus")
    families: Counter[str] = Counter()
    starts = 0
    for name in sorted(glob.glob(str(root / "**" / "*.evtx"), recursive=True)):
        for record in evtx_records(Path(name)):
            family, event = normalize_with_family(record)
            families[family] += 1
            assert family == source_family(record)
            assert event["event.kind"] == "event", (record.origin, event.get("error.message"))
            assert event["host.os.type"] == "windows"
            if event.get("event.code") in ("1", "4688") and family in ("sysmon", "windows_security"):
                starts += 1
                assert event["event.category"] == ["process"], record.origin
                assert event["event.type"] == ["start"]
                assert event["process.executable"], record.origin
                assert event["process.name"], record.origin
                assert isinstance(event["process.pid"], int)
    assert families["sysmon"] > 3000
    assert families["windows_security"] > 5000
    assert starts > 1000


def test_sigma_regression_renderings() -> None:
    """Sigma's regression_data JSON files are evtx renderings ({"Event": {"System": ...}}) read as JSON."""
    root = shared_path("corpus", "sigma", "regression_data")
    checked = 0
    for name in sorted(glob.glob(str(root / "**" / "*.json"), recursive=True)):
        try:
            document = json.loads(Path(name).read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue  # a few files hold several concatenated objects
        record = RawRecord(document, "json", Origin(name, line=1))
        family, event = normalize_with_family(record)
        assert family in ("sysmon", "windows_security", "windows"), name
        if family == "sysmon" and event.get("event.code") == "1":
            checked += 1
            assert event["event.category"] == ["process"]
            assert event["process.name"] == event["process.executable"].rpartition("\\")[2]
    assert checked > 50


def otrf_records(limit: int) -> Iterator[dict[str, Any]]:
    path = shared_path(
        "corpus", "otrf-security-datasets", "datasets", "atomic", "windows", "lateral_movement", "host",
        "empire_wmic_add_user_backdoor.zip",
    )  # fmt: skip
    with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as raw:
        for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8")):
            if number >= limit:
                return
            yield json.loads(line)


def test_otrf_sysmon_and_4688_records() -> None:
    """OTRF flat records (NXLog field names) go through the same Sysmon and 4688 mappings."""
    sysmon = security = None
    for document in otrf_records(20_000):
        if document.get("Image", "").endswith("WMIC.exe") and document["EventID"] == 1 and sysmon is None:
            sysmon = document
        if document["EventID"] == 4688 and document.get("NewProcessName", "").endswith("WMIC.exe"):
            security = document
        if sysmon is not None and security is not None:
            break
    assert sysmon is not None and security is not None

    family, event = normalize_with_family(RawRecord(sysmon, "json", Origin("otrf.json", line=1)))
    assert family == "otrf"
    assert event["process.name"] == "WMIC.exe"
    assert event["process.parent.name"] == "powershell.exe"
    assert (event["user.domain"], event["user.name"]) == ("THESHIRE", "pgustavo")
    assert event["user.id"] == "S-1-5-18"  # NXLog's UserID: the System/Security user
    assert event["host.name"] == "WORKSTATION5.theshire.local"
    assert event["host.os.type"] == "windows"
    assert event["process.args"][:3] == [
        "C:\\windows\\System32\\Wbem\\WMIC.exe",
        "/node:WORKSTATION6",
        "process",
    ]
    assert event["@timestamp"] == "2020-09-14T12:06:01.826Z"  # UtcTime
    assert event["winlog.task"] == "Process Create (rule: ProcessCreate)"
    assert "winlog.event_data.Hostname" not in event  # NXLog metadata is not event data

    family, event = normalize_with_family(RawRecord(security, "json", Origin("otrf.json", line=2)))
    assert family == "otrf"
    assert event["event.action"] == "created-process"
    assert event["process.name"] == "WMIC.exe"
    assert event["process.parent.name"] == "powershell.exe"
    assert event["process.pid"] == int(security["NewProcessId"], 16)
    assert event["process.args"][0] == '"C:\\windows\\System32\\Wbem\\WMIC.exe"'
    assert event["event.outcome"] == "success"
    assert event["user.name"] == "pgustavo"


def test_elastic_defend_documents_pass_through_unchanged() -> None:
    root = shared_path("corpus", "elastic-endpoint-package")
    for relative in (
        "package/endpoint/data_stream/process/sample_event.json",
        "schemas/examples/v1/process_created_windows.json",
    ):
        document = json.loads((root / relative).read_text(encoding="utf-8"))
        family, event = normalize_with_family(RawRecord(document, "json", Origin(relative, line=1)))
        assert family == "elastic_defend"
        flat = flatten(document)
        unchanged = {k: v for k, v in flat.items() if k != "@timestamp"}
        assert {k: event[k] for k in unchanged} == unchanged
        assert event["@timestamp"] == flat["@timestamp"]  # already ISO 8601 UTC
        assert set(event) == set(flat)  # nothing added: the documents are complete
