"""Winlogbeat documents (``winlogbeat-*``) and Elastic Agent's windows / system integration documents
(``logs-windows.sysmon_operational-*``, ``logs-system.security*``) -> ECS: Winlogbeat 6.x through
shellwatch.normalize.winlogbeat_legacy, 7.x/8.x and Agent documents through shellwatch.normalize.ecs_document;
field by field, against Elastic's expected output, and the seed EQL rule over the fixtures in
tests/fixtures/sources/{winlogbeat,sysmon_operational,system_security}.

Sources:
- [wb6-fields] https://www.elastic.co/guide/en/beats/winlogbeat/6.8/exported-fields-eventlog.html: the 6.x document
  (``event_id`` long, ``record_number`` keyword, ``source_name``, ``log_name``, ``computer_name``, ``level``,
  ``keywords``, ``event_data``/``user_data``, ``process_id``, ``thread_id``, ``user.*``, ``type``).
- [legacy-aliases] https://www.elastic.co/guide/en/beats/winlogbeat/7.17/exported-fields-eventlog.html ("Legacy
  Winlogbeat alias fields"): each 6.x name and the 7.x field it became.
- [event-go] elastic/beats ``winlogbeat/sys/winevent/event.go`` (``Fields``): ``level`` lower-cased, the System
  account under ``winlog.user.*``, ``kernel_time``/``processor_id``... under ``winlog``; empty values dropped.
- [to-event] elastic/beats ``winlogbeat/eventlog/eventlog.go`` (``ToEvent``): ``event.action`` = the task name,
  ``host.name`` = the event's computer, ``winlog.level`` -> ``log.level``, ``winlog.message`` -> ``message``.
- [beat-aliases] https://www.elastic.co/guide/en/beats/filebeat/8.19/exported-fields-beat-common.html: libbeat 7
  aliases ``beat.hostname``/``beat.timezone`` to ``agent.*``/``event.timezone``.
- [beats-golden] ../shared/reference/sources/{windows_security_4688,sysmon_eid1}: what Winlogbeat collected from
  two EVTX records and what the ingest pipeline made of them (elastic/beats x-pack/winlogbeat/module/*/test/testdata;
  MAPPING.md §1, §2).
- [sysmon-pipeline] elastic/integrations ``packages/windows/data_stream/sysmon_operational/elasticsearch/
  ingest_pipeline/default.yml`` @ 029004a3: ``event.code`` set from ``winlog.event_id`` as a string; categorization
  table; no ``event.module`` written to ``_source``.
- [integration-samples] elastic/integrations ``packages/windows/data_stream/sysmon_operational/sample_event.json``,
  ``packages/system/data_stream/security/sample_event.json``: Agent documents (``agent.type: filebeat``,
  ``data_stream.dataset``, ``event.ingested``, ``winlog.*``), shaping the fixtures.
- [host-os] MAPPING.md §0: ``host.os.type`` comes from the shipper's host metadata, never from a pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from shellwatch.ecs import Event, flatten
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.dispatch import source_family
from shellwatch.normalize.ecs_document import is_windows_log_document, normalize_ecs_document
from shellwatch.normalize.windows_event import normalize_windows_event
from shellwatch.normalize.winlogbeat_legacy import FAMILY, is_winlogbeat6_record, normalize_winlogbeat6
from shellwatch.pipeline import hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import RawRecord, ReadProblem

SOURCES = Path(__file__).parent / "fixtures" / "sources"
WINLOGBEAT = SOURCES / "winlogbeat"
SEED_EQL_FILE = "persistence_webshell_detection.toml"

# (folder, file, alerts the seed EQL rule raises, the (parent, child) of the matching event)
FIXTURES = [
    ("winlogbeat", "winlogbeat-positive.ndjson", 1, ("w3wp.exe", "cmd.exe")),
    ("winlogbeat", "winlogbeat-benign.ndjson", 0, None),
    ("winlogbeat", "winlogbeat6-positive.ndjson", 1, ("w3wp.exe", "powershell.exe")),
    ("winlogbeat", "winlogbeat6-benign.ndjson", 0, None),
    ("sysmon_operational", "sysmon_operational-positive.ndjson", 1, ("httpd.exe", "cmd.exe")),
    ("sysmon_operational", "sysmon_operational-benign.ndjson", 0, None),
    ("system_security", "system_security-positive.ndjson", 1, ("php-cgi.exe", "cmd.exe")),
    ("system_security", "system_security-benign.ndjson", 0, None),
]

# [legacy-aliases], [event-go], [to-event], [beat-aliases]: 6.x field -> the field the same value lands in.
LEGACY_NAMES = {
    "type": "winlog.api",
    "activity_id": "winlog.activity_id",
    "computer_name": "winlog.computer_name",
    "event_id": "winlog.event_id",
    "keywords": "winlog.keywords",
    "log_name": "winlog.channel",
    "message_error": "error.message",
    "record_number": "winlog.record_id",
    "related_activity_id": "winlog.related_activity_id",
    "opcode": "winlog.opcode",
    "provider_guid": "winlog.provider_guid",
    "process_id": "winlog.process.pid",
    "source_name": "winlog.provider_name",
    "task": "winlog.task",
    "thread_id": "winlog.process.thread.id",
    "user.identifier": "winlog.user.identifier",
    "user.type": "winlog.user.type",
    "version": "winlog.version",
    "xml": "event.original",
    "user.name": "winlog.user.name",
    "user.domain": "winlog.user.domain",
    "level": "log.level",
    "message": "message",
    "beat.name": "agent.name",
    "beat.hostname": "agent.hostname",
    "beat.version": "agent.version",
    "beat.timezone": "event.timezone",
}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def normalize(document: Mapping[str, Any]) -> Event:
    """The normalizer this module tests, for one Winlogbeat or Agent document."""
    if is_winlogbeat6_record(document):
        return normalize_winlogbeat6(document, SourceContext())
    return normalize_ecs_document(document, windows_log=is_windows_log_document(document))


@cache
def seed_rule() -> Rule:
    rules = [
        rule
        for rule in load_bundled_rules().rules
        if rule.language == "eql" and Path(rule.source.path).name == SEED_EQL_FILE
    ]
    assert len(rules) == 1
    return rules[0]


# --------------------------------------------------------------------------------------------------------------
# The seed EQL rule over the fixtures


@pytest.mark.parametrize(("folder", "name", "alerts", "pair"), FIXTURES)
def test_seed_rule_on_fixture(folder: str, name: str, alerts: int, pair: tuple[str, str] | None) -> None:
    """The seed EQL rule raises exactly one alert on each positive fixture, on the web server's shell, and none on
    the benign ones (explorer.exe -> cmd.exe, w3wp.exe -> csc.exe, the ``mode CON`` command line the rule
    excludes, a network event)."""
    rules = RuleSet([seed_rule()])
    matched = [event for event in map(normalize, _lines(SOURCES / folder / name)) if rules.matching(event)]
    assert len(matched) == alerts
    if pair is not None:
        assert (matched[0]["process.parent.name"], matched[0]["process.name"]) == pair


@pytest.mark.parametrize(("folder", "name", "alerts", "pair"), FIXTURES)
def test_hunt_on_fixture(folder: str, name: str, alerts: int, pair: tuple[str, str] | None) -> None:
    """The same through ``shellwatch hunt``'s pipeline (reader, dispatch, rule set); Elastic Agent's integration
    documents are counted as their own source."""
    path = SOURCES / folder / name
    problems: list[ReadProblem] = []
    records = list(read_paths([str(path)], on_problem=problems.append))
    assert problems == []
    expected = "elastic_agent" if folder in ("sysmon_operational", "system_security") else FAMILY
    assert {source_family(record) for record in records} == {expected}
    found = list(hunt([str(path)], RuleSet([seed_rule()]), workers=1))
    assert len(found) == alerts
    if pair is not None:
        process = found[0]["process"]
        assert (process["parent"]["name"], process["name"]) == pair


# --------------------------------------------------------------------------------------------------------------
# Winlogbeat 6.x


def test_winlogbeat6_4688_fields() -> None:
    """A 4688 shipped by Winlogbeat 6.8, field by field: the security pipeline's mapping (MAPPING.md §1), the
    System part from the 6.x names, the rendered names under their 7.x fields [legacy-aliases] [event-go]."""
    event = normalize_winlogbeat6(_lines(WINLOGBEAT / "winlogbeat6-positive.ndjson")[0])
    assert event["@timestamp"] == "2019-06-18T09:41:27.530Z"
    assert (event["event.category"], event["event.type"], event["event.action"]) == (
        ["process"],
        ["start"],
        "created-process",
    )
    assert (event["event.code"], event["event.outcome"], event["event.kind"]) == ("4688", "success", "event")
    assert (event["host.name"], event["host.os.type"]) == ("WEB-APP-07.corp.example", "windows")
    assert event["process.pid"] == 0x1A2C
    assert event["process.parent.pid"] == 0x9F4
    assert event["process.executable"] == "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert (event["process.name"], event["process.parent.name"]) == ("powershell.exe", "w3wp.exe")
    assert event["process.args"][:3] == ["powershell.exe", "-nop", "-w"]  # quote-keeping split of 4688
    assert (event["user.name"], event["user.domain"]) == ("ShopAppPool", "IIS APPPOOL")
    assert event["user.id"].startswith("S-1-5-82-")
    assert event["winlog.logon.id"] == "0x2a41f7"
    assert event["winlog.event_data.TokenElevationType"] == "%%1936"
    assert (event["winlog.event_id"], event["winlog.record_id"], event["winlog.channel"]) == (
        "4688",
        "1184302",
        "Security",
    )
    assert (event["winlog.process.pid"], event["winlog.process.thread.id"]) == (4, 5528)
    assert (event["winlog.api"], event["winlog.task"], event["winlog.opcode"]) == (
        "wineventlog",
        "Process Creation",
        "Info",
    )
    assert (event["log.level"], event["winlog.keywords"]) == ("information", ["Audit Success"])
    assert (event["agent.name"], event["agent.hostname"], event["agent.version"]) == (
        "WEB-APP-07",
        "WEB-APP-07",
        "6.8.23",
    )
    assert event["host.os.build"] == "14393.5582"
    assert event["message"].startswith("A new process has been created.")
    assert not any(field.startswith(("event_data.", "beat.", "computer_name", "source_name")) for field in event)


def _raw_4688_of_the_positive(document: Mapping[str, Any]) -> dict[str, Any]:
    """The same record as the evtx package renders it from the Security log: the System values written out,
    the insertion strings as they are."""
    return {
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {
                    "#attributes": {
                        "Name": "Microsoft-Windows-Security-Auditing",
                        "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D",
                    }
                },
                "EventID": 4688,
                "Version": 2,
                "Level": 0,
                "Task": 13312,
                "Opcode": 0,
                "Keywords": "0x8020000000000000",
                "TimeCreated": {"#attributes": {"SystemTime": "2019-06-18T09:41:27.530Z"}},
                "EventRecordID": 1184302,
                "Correlation": None,
                "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 5528}},
                "Channel": "Security",
                "Computer": "WEB-APP-07.corp.example",
                "Security": None,
            },
            "EventData": dict(document["event_data"]),
        }
    }


# Fields a Winlogbeat 6 document has that its raw event cannot give: names rendered from the provider's message
# tables, the shipper and its host [to-event] [event-go]; each with where it comes from.
ONLY_IN_THE_6X_EVENT = {
    "winlog.task": "task, rendered from the provider's message table",
    "message": "message, rendered from the provider's message table",
    "winlog.api": "type, the event log API Winlogbeat read with",
    "agent.name": "beat.name",
    "agent.hostname": "beat.hostname",
    "agent.version": "beat.version",
    "host.architecture": "add_host_metadata",
    "host.id": "add_host_metadata",
    "host.os.build": "add_host_metadata",
    "host.os.family": "add_host_metadata",
    "host.os.name": "add_host_metadata",
    "host.os.platform": "add_host_metadata",
    "host.os.version": "add_host_metadata",
}


def test_winlogbeat6_gets_the_mapping_of_its_raw_event() -> None:
    """A Winlogbeat 6 document and the raw event of the same record give the same fields: every field of the raw
    event's normalization is in the 6.x one with the same value, and the 6.x one adds only what the document
    carries beyond the raw event (listed with its origin)."""
    document = _lines(WINLOGBEAT / "winlogbeat6-positive.ndjson")[0]
    _, from_raw = normalize_windows_event(_raw_4688_of_the_positive(document))
    from_6x = normalize_winlogbeat6(document)

    assert {
        field: (from_6x.get(field), value) for field, value in from_raw.items() if from_6x.get(field) != value
    } == {}
    assert set(from_6x) - set(from_raw) == set(ONLY_IN_THE_6X_EVENT)


def _load_single(folder: str, name: str) -> dict[str, Any]:
    documents = json.loads(shared_path("reference", "sources", folder, name).read_text(encoding="utf-8"))
    assert isinstance(documents, list) and len(documents) == 1
    document: dict[str, Any] = documents[0]
    return document


BEATS_PAIRS = [
    (
        "windows_security_4688",
        "beats_collection_security-windows2019_4688_Process_Created.evtx.golden.json",
        "beats_ingest_security-windows2019_4688_Process_Created.golden.json",
    ),
    (
        "sysmon_eid1",
        "beats_collection_sysmon-12-processcreate.evtx.golden.json",
        "beats_ingest_sysmon-12-processcreate.golden.json",
    ),
]

# Fields Winlogbeat 7 added at collection that a 6.x document never had: the ECS event.* block [to-event].
_COLLECTION_ONLY = ("event.action", "event.code", "event.kind", "event.outcome", "event.provider")


def winlogbeat6_document_of(collected: Mapping[str, Any]) -> dict[str, Any]:
    """The document Winlogbeat 6 would have written for the record Winlogbeat 7 collected: each 7.x field back
    under its 6.x name [legacy-aliases], ``level`` as the rendered name (capitalized, as 6.x wrote it), the event
    id as a number and the record number as a string [wb6-fields]."""
    six_name = {seven: six for six, seven in LEGACY_NAMES.items()}
    document: dict[str, Any] = {}
    for field, value in flatten(collected).items():
        if field.startswith("winlog.event_data."):
            document.setdefault("event_data", {})[field.removeprefix("winlog.event_data.")] = value
        elif field == "log.level":
            document["level"] = value.capitalize()
        elif field in ("@timestamp", "host.name"):
            document[field] = value
        elif field in six_name:
            document[six_name[field]] = value
        else:
            assert field in _COLLECTION_ONLY, field
    document["event_id"] = int(document["event_id"])
    document["record_number"] = str(document["record_number"])
    return document


# Every field of Elastic's expected documents the 6.x path does not produce, with the reason.
KNOWN_DIFFERENCES_FROM_EXPECTED = {"ecs.version": "pipeline constant, not derived from the event"}
EXPLAINED_EXTRA_FIELDS = {
    "host.os.type": "set by the shipper's host metadata in Elastic, absent from the golden files [host-os]",
    "event.created": "the sysmon mapping keeps the System time there; the 7.x golden predates time_created",
    "agent.hostname": "the 6.x host.name (the shipping host) under its 7.x name",
}


@pytest.mark.parametrize(("folder", "collected_name", "expected_name"), BEATS_PAIRS)
def test_winlogbeat6_document_matches_elastic_expected_output(
    folder: str, collected_name: str, expected_name: str
) -> None:
    """The 6.x document of each beats golden record gives Elastic's expected ingest output field by field, except
    the listed differences, which must still be differences [beats-golden]."""
    collected = _load_single(folder, collected_name)
    expected = flatten(_load_single(folder, expected_name))
    document = winlogbeat6_document_of(collected)
    assert is_winlogbeat6_record(document)

    actual = normalize_winlogbeat6(document)

    differences = {
        field: (actual.get(field), value)
        for field, value in expected.items()
        if field not in KNOWN_DIFFERENCES_FROM_EXPECTED and actual.get(field) != value
    }
    assert differences == {}
    assert {f for f in KNOWN_DIFFERENCES_FROM_EXPECTED if actual.get(f) == expected.get(f)} == set()
    extras = {f for f in actual if f not in expected and not f.startswith("winlog.event_data.")}
    assert extras <= set(EXPLAINED_EXTRA_FIELDS)


@pytest.mark.parametrize("name", ["winlogbeat6-positive.ndjson", "winlogbeat6-benign.ndjson"])
def test_every_winlogbeat6_field_is_kept(name: str) -> None:
    """Nothing a 6.x document holds is lost: each field lands under its 7.x name [legacy-aliases] (the level
    lower-cased, the ids as the keyword strings Winlogbeat 7 writes), the event data under winlog.event_data, the
    6.x host.name (the shipping host) as agent.hostname, and any other field where it was."""
    for document in _lines(WINLOGBEAT / name):
        event = normalize_winlogbeat6(document)
        for field, value in flatten(document).items():
            if field.startswith("event_data."):
                kept = event.get("winlog.event_data." + field.removeprefix("event_data."))
                assert kept == (value if value != "" else None)  # empty values are dropped [event-go]
            elif field == "level":
                assert event["log.level"] == value.lower()
            elif field in ("event_id", "record_number"):
                assert event[LEGACY_NAMES[field]] == str(value)
            elif field == "host.name":
                assert event["agent.hostname"] == value
            elif field in LEGACY_NAMES:
                assert event[LEGACY_NAMES[field]] == value, field
            elif field != "@timestamp":  # the event's time: Sysmon's UtcTime wins, as in the sysmon pipeline
                assert event[field] == value, field


def test_dotted_winlogbeat6_document_is_the_same_document() -> None:
    """A 6.x document exported with dotted keys (Kibana CSV, flattened JSON) gives the same event as nested."""
    nested = _lines(WINLOGBEAT / "winlogbeat6-benign.ndjson")[0]
    dotted = flatten(nested)
    assert is_winlogbeat6_record(dotted)
    assert normalize_winlogbeat6(dotted) == normalize_winlogbeat6(nested)


def test_winlogbeat6_user_data_event() -> None:
    """An event whose data is UserData (1102, the Security log cleared) keeps it under winlog.user_data with
    its element name, and the security mapping reads the subject from it."""
    document = {
        "@timestamp": "2019-06-20T07:02:11.000Z",
        "computer_name": "DC01.corp.example",
        "event_id": 1102,
        "keywords": ["Audit Success"],
        "level": "Information",
        "log_name": "Security",
        "record_number": "90211",
        "source_name": "Microsoft-Windows-Eventlog",
        "task": "Log clear",
        "type": "wineventlog",
        "user_data": {
            "xml_name": "LogFileCleared",
            "SubjectUserSid": "S-1-5-21-1004336348-1177238915-682003330-500",
            "SubjectUserName": "Administrator",
            "SubjectDomainName": "CORP",
            "SubjectLogonId": "0x4d2e1",
        },
    }
    event = normalize_winlogbeat6(document)
    assert event["winlog.user_data.xml_name"] == "LogFileCleared"
    assert event["winlog.user_data.SubjectUserName"] == "Administrator"
    assert (event["event.action"], event["user.name"], event["user.domain"]) == (
        "audit-log-cleared",
        "Administrator",
        "CORP",
    )
    assert "event.category" in event and "process" not in event["event.category"]


def test_winlogbeat6_event_without_a_mapping() -> None:
    """An Event Logging API record of a provider no pipeline maps (SQL Server 18456) gets the basic fields: the
    task name as event.action [to-event], the unnamed parameters as param1..., the audit keyword's outcome, no
    process category."""
    document = {
        "@timestamp": "2019-06-20T07:02:11.000Z",
        "computer_name": "SQL01",
        "event_id": 18456,
        "level": "Information",
        "log_name": "Application",
        "record_number": "5531",
        "source_name": "MSSQLSERVER",
        "task": "Logon",
        "type": "eventlogging",
        "event_data": {"param1": "sa", "param2": "Reason: Password did not match", "param3": " [CLIENT: 10.1.2.3]"},
        "keywords": ["Classic", "Audit Failure"],
        "message": "Login failed for user 'sa'.",
    }
    event = normalize_winlogbeat6(document)
    assert (event["event.action"], event["event.code"], event["event.outcome"]) == ("Logon", "18456", "failure")
    assert (event["winlog.api"], event["winlog.keywords"]) == ("eventlogging", ["Classic", "Audit Failure"])
    assert event["winlog.event_data.param2"] == "Reason: Password did not match"
    assert (event["host.name"], event["host.os.type"]) == ("SQL01", "windows")
    assert "event.category" not in event and "process.name" not in event


def test_winlogbeat6_user_data_without_element_name_reports_none() -> None:
    """User data whose element name the document does not carry is kept, without inventing an xml_name."""
    document = {"event_id": 7, "source_name": "Example", "user_data": {"Value": "x"}}
    event = normalize_winlogbeat6(document)
    assert event["winlog.user_data.Value"] == "x"
    assert "winlog.user_data.xml_name" not in event


def _records_under(root: Path) -> list[RawRecord]:
    ignored: list[ReadProblem] = []  # README files and the like: not records
    return list(read_paths([str(root)], on_problem=ignored.append))


def _other_family_samples() -> list[dict[str, Any]]:
    """Records of every other family: the other fixtures of this project, and whatever ../shared provides."""
    samples = [
        record.data for record in _records_under(SOURCES) if not Path(record.origin.path).name.startswith("winlogbeat6")
    ]
    samples.append({"EventID": 4688, "SourceName": "Microsoft-Windows-Security-Auditing", "Channel": "Security"})
    samples.append({"event_simpleName": "ProcessRollup2", "aid": "a1", "event_platform": "Win", "TargetProcessId": 1})
    return samples


def test_is_winlogbeat6_record_only_for_winlogbeat6() -> None:
    """Recognition is True for the 6.x fixtures and False for every other family's record (Winlogbeat 7/8 and
    Agent documents, Elastic Defend, raw events, OTRF/NXLog records, the EDR exports)."""
    for name in ("winlogbeat6-positive.ndjson", "winlogbeat6-benign.ndjson"):
        assert all(is_winlogbeat6_record(document) for document in _lines(WINLOGBEAT / name))
    others = _other_family_samples()
    assert len(others) >= 10
    assert [document for document in others if is_winlogbeat6_record(document)] == []


def test_is_winlogbeat6_record_on_shared_samples() -> None:
    """False on the raw and expected documents of ../shared/reference/sources and the Endgame and Defend
    corpora."""
    reference = shared_path("reference", "sources")
    documents: list[Any] = []
    for path in sorted(reference.rglob("*.json")) + sorted(reference.rglob("*.log")):
        records = _records_under(path)
        documents += [record.data for record in records]
    for path in sorted(shared_path("corpus", "elastic-endpoint-package").rglob("*.json")):
        documents += [record.data for record in _records_under(path)]
    documents += [record.data for record in _records_under(shared_path("corpus", "endgame-eql"))]
    assert len(documents) > 100
    assert [document for document in documents if is_winlogbeat6_record(document)] == []


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
_SHALLOW = (
    _JSON_SCALARS
    | st.lists(_JSON_SCALARS, max_size=3)
    | st.dictionaries(st.text(max_size=8), _JSON_SCALARS | st.lists(_JSON_SCALARS, max_size=2), max_size=3)
)
_LEGACY_KEYS = st.sampled_from(
    [*LEGACY_NAMES, "event_data", "user_data", "event_data.Image", "user_data.xml_name", "@timestamp", "host", "beat"]
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12) | _LEGACY_KEYS, _JSON, max_size=8))
def test_winlogbeat6_never_raises_on_arbitrary_objects(document: dict[str, Any]) -> None:
    """Attacker-written logs: recognition and normalization never raise, whatever the values."""
    is_winlogbeat6_record(document)
    event = normalize_winlogbeat6(document)
    assert isinstance(event, dict)


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {"event_id": st.integers(0, 70000) | st.text(max_size=6), "source_name": _SHALLOW},
        optional={
            key: _SHALLOW
            for key in (*LEGACY_NAMES, "event_data", "user_data", "@timestamp", "host")
            if key not in ("event_id", "source_name")
        },
    )
)
def test_winlogbeat6_never_raises_on_winlogbeat6_shapes(document: dict[str, Any]) -> None:
    """Sysmon for Linux ("Linux-Sysmon") writes the same schema from Linux hosts: those events are linux."""
    event = normalize_winlogbeat6(document)
    assert event["event.kind"] == "event"
    assert event["host.os.type"] == ("linux" if document["source_name"] == "Linux-Sysmon" else "windows")


def test_deeply_nested_winlogbeat6_document_is_read_without_the_deep_field() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = {"a": deep}
    document = {"event_id": 1, "source_name": "Microsoft-Windows-Sysmon", "fields": deep, "computer_name": "h"}
    event = normalize_winlogbeat6(document)
    assert event["host.name"] == "h"
    assert not any(field.startswith("fields.") for field in event)


# --------------------------------------------------------------------------------------------------------------
# Winlogbeat 7.x / 8.x and Agent documents


def test_winlogbeat8_document_without_ingest_gets_the_sysmon_mapping() -> None:
    """A Sysmon 1 document Winlogbeat 8 wrote to a file (no ingest pipeline) gets the sysmon pipeline's mapping
    [sysmon-pipeline], as its raw event would; the shipper's fields stay."""
    document = _lines(WINLOGBEAT / "winlogbeat-positive.ndjson")[0]
    event = normalize(document)
    assert (event["event.category"], event["event.type"], event["event.action"]) == (
        ["process"],
        ["start"],
        "Process creation",
    )
    assert event["@timestamp"] == "2024-03-12T14:22:07.913Z"  # UtcTime
    assert event["event.created"] == "2024-03-12T14:22:08.411Z"  # Winlogbeat's, kept
    assert (event["process.name"], event["process.pid"]) == ("cmd.exe", 5844)
    assert event["process.command_line"] == '"C:\\Windows\\system32\\cmd.exe" /c whoami /priv & ipconfig /all'
    assert event["process.args"] == ["C:\\Windows\\system32\\cmd.exe", "/c", "whoami", "/priv", "&", "ipconfig", "/all"]
    assert event["process.entity_id"] == "{6B1F3A02-4C8E-65F0-9A03-000000001200}"
    assert (event["process.parent.name"], event["process.parent.pid"]) == ("w3wp.exe", 3960)
    assert event["process.parent.args"][:3] == ["c:\\windows\\system32\\inetsrv\\w3wp.exe", "-ap", "DefaultAppPool"]
    assert event["process.hash.sha256"] == "18127823e3f6a178e2d095a849cedc9d750a9401e45f4394cc68f38073b88e27"
    assert event["process.pe.imphash"] == "ce03fefc8c3c585e9424d7a444ed637e"
    assert event["process.pe.original_file_name"] == "Cmd.Exe"
    # user.id is the logging service's SID in the sysmon pipeline (MAPPING.md §2).
    assert (event["user.name"], event["user.domain"], event["user.id"]) == (
        "DefaultAppPool",
        "IIS APPPOOL",
        "S-1-5-18",
    )
    assert (event["host.name"], event["host.os.type"], event["agent.type"]) == ("web-iis-02", "windows", "winlogbeat")
    assert event["winlog.record_id"] == "48211"


def test_winlogbeat7_document_gets_host_os_type_and_a_string_event_code() -> None:
    """Winlogbeat 7.10 predates host.os.type and wrote event ids as numbers: the event gets ``windows`` [host-os]
    and ``event.code`` as the string the pipeline sets from winlog.event_id [sysmon-pipeline]."""
    document = _lines(WINLOGBEAT / "winlogbeat-benign.ndjson")[0]
    assert "type" not in document["host"]["os"] and document["event"]["code"] == 1
    event = normalize(document)
    assert (event["host.os.type"], event["event.code"], event["event.type"]) == ("windows", "1", ["start"])
    assert (event["process.parent.name"], event["process.name"]) == ("explorer.exe", "cmd.exe")


def _ingested_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for folder in ("sysmon_operational", "system_security"):
        for path in sorted((SOURCES / folder).glob("*.ndjson")):
            found += [(f"{path.name}:{n}", document) for n, document in enumerate(_lines(path), 1)]
    return found


@pytest.mark.parametrize(
    ("where", "document"), _ingested_documents(), ids=lambda value: value if isinstance(value, str) else ""
)
def test_ingested_agent_documents_pass_through_unchanged(where: str, document: dict[str, Any]) -> None:
    """An Agent document that went through the integration's pipeline is its flattened self: no mapping runs a
    second time; host.os.type is added only where the shipper left it out [host-os]."""
    event = normalize(document)
    original = flatten(document)
    added = {field for field in event if field not in original}
    assert added == ({"host.os.type"} if "host.os.type" not in original else set())
    assert {field: event[field] for field in original} == original
    assert event["host.os.type"] == "windows"


@pytest.mark.parametrize("expected_name", [pair[2] for pair in BEATS_PAIRS])
def test_elastic_expected_documents_pass_through_unchanged(expected_name: str) -> None:
    """Elastic's own ingest output (the beats goldens) read back: unchanged but for host.os.type [beats-golden]."""
    folder = next(pair[0] for pair in BEATS_PAIRS if pair[2] == expected_name)
    document = _load_single(folder, expected_name)
    event = normalize(document)
    original = flatten(document)
    assert set(event) - set(original) == {"host.os.type"}
    assert {field: event[field] for field in original} == original
