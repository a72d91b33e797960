"""Field-by-field agreement with Elastic's own expected output for the beats golden pairs.

Each pair in ../shared/reference/sources/{windows_security_4688,sysmon_eid1}/ comes from elastic/beats
``x-pack/winlogbeat/module/{security,sysmon}/test/testdata``:

* ``beats_collection_*.evtx.golden.json`` is what Winlogbeat *collected* from the EVTX file: the raw input
  (``winlog.*`` as read, ``event.action`` still the task name, no ``process.*``/``user.*``);
* ``beats_ingest_*.golden.json`` is the *expected output* of the ingest pipeline for that document.

The tests rebuild, from the collected document's ``winlog.*`` fields, the raw Windows event a reader would
hand over for the same record (the evtx package's rendering), normalize it, and compare every field of the
expected document. The JSON path (the collected document itself, as a raw Winlogbeat document) is compared
as well.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import shared_path
from shellwatch.ecs import Event, flatten
from shellwatch.normalize.dispatch import normalize_with_family
from shellwatch.sources.record import Origin, RawRecord

# winmeta.xml values (Windows SDK), to turn the names Winlogbeat rendered back into the raw System values.
_LEVEL_NUMBERS = {"critical": 1, "error": 2, "warning": 3, "information": 4, "verbose": 5}
_OPCODE_NUMBERS = {"Info": 0, "Start": 1, "Stop": 2}
_KEYWORD_BITS = {"Audit Failure": 0x10000000000000, "Audit Success": 0x20000000000000}

# Fields of the expected documents this normalizer cannot or should not produce from a raw event, each with
# its reason. Every other field of the expected document must be equal.
KNOWN_DIFFERENCES_FROM_RAW_EVENT = {
    # Set by the pipeline itself (the ECS version it was written for), not derived from the event.
    "ecs.version": "pipeline constant",
    # Rendered on the collecting host from the publisher's message table (EvtFormatMessage); a raw EVTX/XML
    # record carries only the insertion strings.
    "message": "needs the provider's message DLL",
    "winlog.task": "task name comes from the provider's message DLL",
    # Winlogbeat resolves the System/Security SID with LookupAccountSid on the collecting host.
    "winlog.user.name": "SID lookup on the collecting Windows host",
    "winlog.user.domain": "SID lookup on the collecting Windows host",
    "winlog.user.type": "SID lookup on the collecting Windows host",
}
KNOWN_DIFFERENCES_FROM_COLLECTED_DOCUMENT = {
    "ecs.version": "pipeline constant",
}

# Fields the normalizer adds that the expected documents lack, each with its reason.
EXPLAINED_EXTRA_FIELDS = {
    # Elastic sets it from the shipper's add_host_metadata, which the golden files do not include; a raw
    # EVTX/XML reader has no shipper, so the normalizer sets it (the seed rule filters on it).
    "host.os.type",
    # The sysmon pipeline copies winlog.time_created (TimeCreated) there; the 7.x collection golden predates
    # Winlogbeat sending time_created, the raw event always has it.
    "event.created",
}
# winlog.event_data.* is kept whole, where the pipelines move the mapped fields out of it.
EXTRA_PREFIXES = ("winlog.event_data.",)

PAIRS = [
    (
        "windows_security_4688",
        "beats_collection_security-windows2019_4688_Process_Created.evtx.golden.json",
        "beats_ingest_security-windows2019_4688_Process_Created.golden.json",
        "windows_security",
    ),
    (
        "sysmon_eid1",
        "beats_collection_sysmon-12-processcreate.evtx.golden.json",
        "beats_ingest_sysmon-12-processcreate.golden.json",
        "sysmon",
    ),
]


def _load(folder: str, name: str) -> dict[str, Any]:
    path = shared_path("reference", "sources", folder, name)
    documents = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(documents, list) and len(documents) == 1
    document: dict[str, Any] = documents[0]
    return document


def raw_event_from_collected(collected: dict[str, Any]) -> dict[str, Any]:
    """The evtx-package rendering of the event Winlogbeat collected, rebuilt from its winlog.* fields."""
    winlog = collected["winlog"]
    keywords = 0
    for name in winlog.get("keywords", []):
        keywords |= _KEYWORD_BITS[name]
    system: dict[str, Any] = {
        "Provider": {
            "#attributes": {"Name": winlog["provider_name"], "Guid": winlog["provider_guid"].strip("{}")}
        },
        "EventID": int(winlog["event_id"]),
        "Version": winlog["version"],
        "Level": _LEVEL_NUMBERS[collected["log"]["level"]],
        "Opcode": _OPCODE_NUMBERS[winlog["opcode"]],
        "Keywords": f"0x{keywords | 0x8000000000000000:016x}",
        "TimeCreated": {"#attributes": {"SystemTime": collected["@timestamp"]}},
        "EventRecordID": winlog["record_id"],
        "Correlation": None,
        "Execution": {
            "#attributes": {
                "ProcessID": winlog["process"]["pid"],
                "ThreadID": winlog["process"]["thread"]["id"],
            }
        },
        "Channel": winlog["channel"],
        "Computer": winlog["computer_name"],
        "Security": {"#attributes": {"UserID": winlog["user"]["identifier"]}} if "user" in winlog else None,
    }
    event_data = dict(winlog["event_data"])
    # evtx renders GUID-typed values without braces and integer-typed ones as numbers.
    for key, value in list(event_data.items()):
        if key.endswith("Guid") and value.startswith("{"):
            event_data[key] = value.strip("{}")
        elif key in ("ProcessId", "ParentProcessId", "TerminalSessionId") and value.isdigit():
            event_data[key] = int(value)
    return {"Event": {"System": system, "EventData": event_data}}


def _differences(actual: Event, expected: Event, known: dict[str, str]) -> dict[str, tuple[Any, Any]]:
    return {
        field: (actual.get(field), value)
        for field, value in expected.items()
        if field not in known and actual.get(field) != value
    }


def _unexplained_extras(actual: Event, expected: Event) -> set[str]:
    return {
        field
        for field in actual
        if field not in expected
        and field not in EXPLAINED_EXTRA_FIELDS
        and not field.startswith(EXTRA_PREFIXES)
    }


@pytest.mark.parametrize(("folder", "collected_name", "expected_name", "family"), PAIRS)
def test_raw_event_matches_elastic_expected_output(
    folder: str, collected_name: str, expected_name: str, family: str
) -> None:
    """Every field of Elastic's expected document, except the listed known differences, is produced from the
    raw event. Source: elastic/beats x-pack/winlogbeat/module/*/test/testdata (see MAPPING.md §1, §2)."""
    collected = _load(folder, collected_name)
    expected = flatten(_load(folder, expected_name))
    record = RawRecord(raw_event_from_collected(collected), "windows_event", Origin("golden.evtx", 1))

    actual_family, actual = normalize_with_family(record)

    assert actual_family == family
    assert _differences(actual, expected, KNOWN_DIFFERENCES_FROM_RAW_EVENT) == {}
    assert _unexplained_extras(actual, expected) == set()
    # The list is not stale: every known difference that applies to this pair is a real difference.
    stale = {f for f in KNOWN_DIFFERENCES_FROM_RAW_EVENT if f in expected and actual.get(f) == expected[f]}
    assert stale == set()


@pytest.mark.parametrize(("folder", "collected_name", "expected_name", "family"), PAIRS)
def test_collected_winlogbeat_document_matches_elastic_expected_output(
    folder: str, collected_name: str, expected_name: str, family: str
) -> None:
    """A Winlogbeat document that skipped the ingest pipeline gets the pipeline's mapping: only ecs.version
    differs from Elastic's expected output."""
    collected = _load(folder, collected_name)
    expected = flatten(_load(folder, expected_name))
    record = RawRecord(collected, "json", Origin("winlogbeat.ndjson", line=1))

    actual_family, actual = normalize_with_family(record)

    assert actual_family == "winlogbeat"
    assert _differences(actual, expected, KNOWN_DIFFERENCES_FROM_COLLECTED_DOCUMENT) == {}
    assert _unexplained_extras(actual, expected) == set()


def test_process_fields_of_the_4688_pair() -> None:
    """The values the web-shell rules read, spelled out (expected document of the 4688 pair)."""
    collected = _load("windows_security_4688", PAIRS[0][1])
    event = normalize_with_family(
        RawRecord(raw_event_from_collected(collected), "windows_event", Origin("x"))
    )[1]
    assert event["process.pid"] == 4556  # 0x11cc
    assert event["process.parent.pid"] == 4652  # 0x122c
    assert event["process.name"] == "wevtutil.exe"
    assert event["process.parent.name"] == "powershell.exe"
    assert event["process.args"] == ['"C:\\Windows\\system32\\wevtutil.exe"', "cl", "Security"]
    assert event["user.name"] == "vagrant"
    assert event["user.effective.id"] == "S-1-0-0"
    assert "user.effective.name" not in event  # TargetUserName is "-"
