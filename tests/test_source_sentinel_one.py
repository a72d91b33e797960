"""SentinelOne Cloud Funnel records -> ECS (shellwatch.normalize.sentinel_one): the mapping choice, its effect on the
seed EQL rule, and field-by-field agreement with Elastic's expected output.

References:
- [s1-raw] ../shared/reference/sources/sentinel_one_cloud_funnel/test-process.log: elastic/integrations
  packages/sentinel_one_cloud_funnel/data_stream/event/_dev/test/pipeline/test-process.log @ 1e76ff63 (verbatim).
- [s1-expected] test-process.log-expected.ECS-excerpt.json beside it: the ECS fields of test-process.log-expected.json
  @ 6beb1464 (vendor namespace omitted).
- [default.yml] .../elasticsearch/ingest_pipeline/default.yml @ 047030f6: @timestamp from event.time (ISO8601 or
  epoch_millis), host.* from endpoint.*, user.* dissected from src.process.user, the trimQuotes script (tgt and
  src.process.parent cmdline only), the commandLineToArgv script, and the removal of null and empty values.
- [pipeline-process.yml] .../ingest_pipeline/pipeline-process.yml @ 127f8141: event.category ["process"], event.type
  ["start"] when meta.event.name is PROCESSCREATION, event.action copied from event.type, and the rename of process to
  process.parent followed by tgt.process into process.
- [8608] https://github.com/elastic/integrations/pull/8608 (integration 0.10.0): "For process creation events, populate
  process.* fields with target/new process information rather than source/parent information". Before it,
  default.yml's process.* = src.process and process.parent.* = src.process.parent stood for process events too.
  MAPPING.md §4 notes the older expected file @ 06a930b0, with process = src and event.type info.
"""

from __future__ import annotations

import functools
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
from shellwatch.normalize.sentinel_one import (
    FAMILY,
    VENDOR_PREFIX,
    is_sentinel_one_record,
    normalize_sentinel_one,
)
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import ReadProblem

FIXTURES = Path(__file__).parent / "fixtures" / "sources" / FAMILY
POSITIVE = FIXTURES / f"{FAMILY}-positive.log"
BENIGN = FIXTURES / f"{FAMILY}-benign.log"
SEED_EQL_RULE_ID = "2917d495-59bd-4250-b395-c29409b76086"


def normalize(record: Mapping[str, Any]) -> Event:
    return normalize_sentinel_one(record, SourceContext())


def reference_record() -> dict[str, Any]:
    text = shared_path("reference", "sources", "sentinel_one_cloud_funnel", "test-process.log").read_text("utf-8")
    record: dict[str, Any] = json.loads(text)
    return record


def expected_document() -> dict[str, Any]:
    path = shared_path(
        "reference", "sources", "sentinel_one_cloud_funnel", "test-process.log-expected.ECS-excerpt.json"
    )
    document: dict[str, Any] = json.loads(path.read_text("utf-8"))["expected"][0]
    return document


def nested(record: Mapping[str, Any]) -> dict[str, Any]:
    """The same record with its dotted keys turned into nested objects."""
    root: dict[str, Any] = {}
    for key, value in record.items():
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return root


def ecs_fields(event: Event) -> Event:
    return {key: value for key, value in event.items() if not key.startswith(VENDOR_PREFIX)}


@functools.cache
def seed_eql_rule() -> RuleSet:
    rules = [r for r in load_bundled_rules().rules if r.rule_id == SEED_EQL_RULE_ID and r.language == "eql"]
    assert len(rules) == 1
    return RuleSet(rules)


def fixture_records(path: Path) -> list[dict[str, Any]]:
    problems: list[ReadProblem] = []
    records = [record.data for record in read_paths([str(path)], on_problem=problems.append)]
    assert problems == []
    return records


# --- recognition ------------------------------------------------------------------------------------------------


def test_recognizes_the_real_record_dotted_and_nested() -> None:
    record = reference_record()
    assert is_sentinel_one_record(record)
    assert is_sentinel_one_record(nested(record))


def test_recognition_needs_meta_event_name_and_a_cloud_funnel_field() -> None:
    assert is_sentinel_one_record({"meta.event.name": "FILECREATION", "endpoint.name": "h"})
    assert is_sentinel_one_record({"meta": {"event.name": "LOGIN"}, "dataSource": {"name": "SentinelOne"}})
    assert not is_sentinel_one_record({"meta.event.name": "PROCESSCREATION"})
    assert not is_sentinel_one_record(
        {"endpoint.name": "h", "endpoint.os": "windows", "event.type": "Process Creation"}
    )
    assert not is_sentinel_one_record({"meta.event.name": "", "endpoint.name": "h"})
    assert not is_sentinel_one_record({"meta.event.name": ["PROCESSCREATION"], "endpoint.name": "h"})
    assert not is_sentinel_one_record({"meta.event.name": "X", "dataSource.name": "CrowdStrike"})


# One record of each other family's shape (values invented; shapes from the issue's list and ../shared).
OTHER_FAMILIES: dict[str, dict[str, Any]] = {
    "evtx": {
        "Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1},
            "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe", "ParentImage": "C:\\w3wp.exe"},
        }
    },
    "elastic_defend": {
        "@timestamp": "2024-05-14T09:12:03.118Z",
        "event": {"category": ["process"], "type": ["start"], "kind": "event", "dataset": "endpoint.events.process"},
        "host": {"name": "WEB-IIS-01", "os": {"type": "windows"}},
        "process": {"name": "cmd.exe", "parent": {"name": "w3wp.exe"}},
    },
    "ecs_dotted": {"event.category": "process", "event.type": "start", "host.os.type": "windows", "meta.x": 1},
    "winlogbeat_6": {"event_id": 1, "event_data": {"Image": "C:\\cmd.exe"}, "beat": {"name": "w"}, "log_name": "x"},
    "winlogbeat_7": {"winlog": {"event_id": 4688, "event_data": {"NewProcessName": "C:\\cmd.exe"}}, "agent": {}},
    "otrf": {"EventID": 1, "SourceName": "Microsoft-Windows-Sysmon", "Hostname": "h", "Image": "C:\\cmd.exe"},
    "endgame": {
        "event_type": "process",
        "event_subtype_full": "creation_event",
        "process_name": "cmd.exe",
        "parent_process_name": "w3wp.exe",
        "unique_pid": 5,
        "timestamp": 131485997150000000,
    },
    "m365_streaming": {
        "time": "2024-05-14T09:12:03.118Z",
        "category": "AdvancedHunting-DeviceProcessEvents",
        "properties": {"ActionType": "ProcessCreated", "FileName": "cmd.exe", "DeviceName": "web-iis-01"},
    },
    "m365_csv_row": {
        "Timestamp": "2024-05-14T09:12:03.118Z",
        "DeviceName": "web-iis-01",
        "ActionType": "ProcessCreated",
        "FileName": "cmd.exe",
        "InitiatingProcessFileName": "w3wp.exe",
    },
    "crowdstrike_fdr": {
        "event_simpleName": "ProcessRollup2",
        "ImageFileName": "\\Device\\HarddiskVolume2\\Windows\\System32\\cmd.exe",
        "ParentBaseFileName": "w3wp.exe",
        "aid": "ab12",
        "event_platform": "Win",
        "ComputerName": "WEB-IIS-01",
        "timestamp": "1715677923118",
    },
}


@pytest.mark.parametrize("family", sorted(OTHER_FAMILIES))
def test_other_families_are_not_recognized(family: str) -> None:
    assert not is_sentinel_one_record(OTHER_FAMILIES[family])


def test_elastics_own_ingested_document_is_not_a_raw_record() -> None:
    """An already-ingested logs-sentinel_one_cloud_funnel document is ECS, for the ECS normalizer."""
    assert not is_sentinel_one_record(expected_document())
    assert not is_sentinel_one_record(flatten(expected_document()))


def test_only_cloud_funnel_records_are_recognized_in_shared() -> None:
    """Every JSON record in ../shared (OTRF, Endgame, Elastic Defend, M365, winlogbeat golden files, Sigma
    renderings): only the Cloud Funnel test-process.log (in corpus/ and in reference/) is recognized."""
    corpus = shared_path("corpus")
    paths = [
        str(corpus / name)
        for name in ("elastic-endpoint-package", "endgame-eql", "elastic-integrations", "otrf-security-datasets")
    ]
    paths += [str(corpus / "sigma" / "regression_data"), str(shared_path("reference", "sources"))]
    recognized: list[str] = []
    records = 0
    for record in read_paths(paths, on_problem=lambda problem: None):
        records += 1
        if is_sentinel_one_record(record.data):
            recognized.append(record.origin.path.rsplit("/", 1)[-1])
    assert records > 80_000
    assert recognized == ["test-process.log", "test-process.log"]


# --- the mapping choice, field by field on the real record -------------------------------------------------------


def test_the_created_process_is_process_and_its_creator_the_parent() -> None:
    """[s1-raw] + [pipeline-process.yml]: tgt.process.* -> process.*, src.process.* -> process.parent.*."""
    event = normalize(reference_record())
    assert event["process.name"] == "nr-winpkg.exe"
    assert event["process.executable"] == (
        "C:\\ProgramFiles\\NewRelic\\newrelic-infra\\newrelic-integrations\\nr-winpkg.exe"
    )
    assert event["process.pid"] == 4720
    assert event["process.entity_id"] == "D0046CBAF5BC03DA"
    assert event["process.command_line"] == "./nr-winpkg"
    assert event["process.args"] == ["./nr-winpkg"]
    assert event["process.args_count"] == 1
    assert event["process.hash.md5"] == "65f9131df4b7c909ae41add0fcd172fa"
    assert event["process.hash.sha1"] == "a1d7ac9e15c26535a7dec40bba21cda4de078504"
    assert event["process.hash.sha256"] == "b00b5e5d4e268b8dbd0af0749edb6626e686403c71f1c81ae08d18242046f29e"
    assert event["process.start"] == "2022-10-03T15:32:29.464Z"
    assert event["process.title"] == "nr-winpkg.exe"
    assert event["process.user.name"] == "NTAUTHORITY\\SYSTEM"

    assert event["process.parent.name"] == "newrelic-infra.exe"
    assert event["process.parent.executable"] == "C:\\ProgramFiles\\NewRelic\\newrelic-infra\\newrelic-infra.exe"
    assert event["process.parent.pid"] == 3596
    assert event["process.parent.entity_id"] == "F59445BAF5BC03DA"
    # src.process.cmdline is not quote-trimmed [default.yml]; its trailing backslash stays.
    assert event["process.parent.command_line"] == "C:\\ProgramFiles(x86)\\Microsoft\\important_stuff\\stuff.EXE\\"
    assert event["process.parent.args"] == ["C:\\ProgramFiles(x86)\\Microsoft\\important_stuff\\stuff.EXE\\"]
    assert event["process.parent.hash.md5"] == "7c99f420f8985a4ccf428f9fe2b090f0"
    assert event["process.parent.start"] == "2022-09-10T04:36:46.181Z"
    assert event["process.parent.title"] == "newrelic-infra.exe"
    assert event["process.parent.user.name"] == "NTAUTHORITY\\SYSTEM"


def test_the_grandparent_stays_under_the_vendor_namespace_only() -> None:
    """src.process.parent.* (newrelic-infra-service.exe, pid 3132) has no ECS field: no ECS value names it."""
    record = reference_record()
    event = normalize(record)
    grandparent = {record[k] for k in record if k.startswith("src.process.parent.") and isinstance(record[k], str)}
    grandparent -= {record[k] for k in record if k.startswith(("src.process.", "tgt.process.")) and ".parent." not in k}
    assert "newrelic-infra-service.exe" in grandparent
    for key, value in ecs_fields(event).items():
        values = value if isinstance(value, list) else [value]
        if key.startswith("related."):
            continue  # related.hash/user list every process's hashes and accounts, as Elastic's do
        assert not grandparent.intersection(v for v in values if isinstance(v, str)), key
    assert 3132 not in ecs_fields(event).values()
    assert event[VENDOR_PREFIX + "src.process.parent.name"] == "newrelic-infra-service.exe"
    assert event[VENDOR_PREFIX + "src.process.parent.pid"] == 3132
    assert event[VENDOR_PREFIX + "src.process.parent.cmdline"] == record["src.process.parent.cmdline"]


def test_event_host_and_user_fields() -> None:
    """[default.yml] + [pipeline-process.yml] on [s1-raw]."""
    event = normalize(reference_record())
    assert event["@timestamp"] == "2022-10-03T15:32:29.470Z"  # event.time 1664811149470, epoch ms
    assert event["event.kind"] == "event"
    assert event["event.category"] == ["process"]
    assert event["event.type"] == ["start"]
    assert event["event.action"] == ["start"]
    assert event["event.id"] == "01GEF7NPDYKJDP1X0XSQ9K7J2N_41"
    assert event["host.os.type"] == "windows"
    assert event["host.os.platform"] == "windows"
    assert event["host.os.name"] == "WindowsServer2019Datacenter"
    assert event["host.hostname"] == "asdf1"
    assert event["host.name"] == "asdf1"  # shellwatch's addition: Elastic sets host.hostname only
    assert event["host.id"] == "asdf356783457dfds4456d65"
    assert event["host.type"] == "server"
    assert event["user.name"] == "SYSTEM"
    assert event["user.domain"] == "NTAUTHORITY"
    assert "user.id" not in event  # the record has no src.process.userSid


def test_every_raw_field_is_kept_verbatim_under_the_vendor_namespace() -> None:
    record = reference_record()
    event = normalize(record)
    kept = {key[len(VENDOR_PREFIX) :]: value for key, value in event.items() if key.startswith(VENDOR_PREFIX)}
    assert kept == record


def test_nested_keys_give_the_same_event() -> None:
    record = reference_record()
    assert normalize(nested(record)) == normalize(record)


# --- single fields ------------------------------------------------------------------------------------------------


def creation(**fields: Any) -> dict[str, Any]:
    """A minimal PROCESSCREATION record (dotted keys) with ``fields`` (``__`` for ``.``) laid over it."""
    record: dict[str, Any] = {
        "meta.event.name": "PROCESSCREATION",
        "event.type": "Process Creation",
        "event.category": "process",
        "event.time": 1715677923118,
        "endpoint.name": "WEB-IIS-01",
        "endpoint.os": "windows",
        "dataSource.name": "SentinelOne",
        "src.process.name": "w3wp.exe",
        "src.process.cmdline": 'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "DefaultAppPool"',
        "src.process.user": "IIS APPPOOL\\DefaultAppPool",
        "src.process.parent.name": "svchost.exe",
        "tgt.process.name": "cmd.exe",
        "tgt.process.cmdline": "cmd /c whoami",
    }
    record.update({key.replace("__", "."): value for key, value in fields.items()})
    return record


@pytest.mark.parametrize(
    ("raw", "command_line", "args"),
    [
        ('"C:\\Windows\\system32\\cmd.exe"', "C:\\Windows\\system32\\cmd.exe", ["C:\\Windows\\system32\\cmd.exe"]),
        # Only one enclosing pair goes, even when that splits a quoted argument apart (trimQuotes in default.yml).
        ('"C:\\a b\\x.exe" -k "v"', 'C:\\a b\\x.exe" -k "v', ["C:\\a", "b\\x.exe -k v"]),
        ('""x""', '"x"', ["x"]),
        ('cmd /c "dir"', 'cmd /c "dir"', ["cmd", "/c", "dir"]),
        # A lone quote starts and ends with a quote; Painless's substring(1, 0) throws and the value stays.
        ('"', '"', None),
    ],
)
def test_created_process_command_line_loses_one_enclosing_pair_of_quotes(
    raw: str, command_line: str, args: list[str] | None
) -> None:
    """[default.yml] trimQuotes on tgt.process.cmdline, then commandLineToArgv on the result."""
    event = normalize(creation(tgt__process__cmdline=raw))
    assert event["process.command_line"] == command_line
    assert event.get("process.args") == args


def test_a_command_line_of_two_quotes_becomes_empty_and_is_left_out() -> None:
    event = normalize(creation(tgt__process__cmdline='""'))
    assert "process.command_line" not in event
    assert "process.args" not in event


def test_the_creators_command_line_keeps_its_quotes() -> None:
    """[default.yml] trims tgt.process.cmdline and src.process.parent.cmdline, not src.process.cmdline."""
    event = normalize(creation(src__process__cmdline='"C:\\inetpub\\app.exe"'))
    assert event["process.parent.command_line"] == '"C:\\inetpub\\app.exe"'
    assert event["process.parent.args"] == ["C:\\inetpub\\app.exe"]


@pytest.mark.parametrize(
    ("endpoint_os", "os_type"),
    [("windows", "windows"), ("linux", "linux"), ("macos", "macos"), ("osx", "macos"), ("solaris", None)],
)
def test_host_os_type(endpoint_os: str, os_type: str | None) -> None:
    """[default.yml]: endpoint.os -> host.os.type for linux/windows/macos/ios/android; Cloud Funnel's "osx"
    (elastic/integrations#13575, #13709) -> macos here. host.os.platform keeps the raw value."""
    event = normalize(creation(endpoint__os=endpoint_os))
    assert event.get("host.os.type") == os_type
    assert event["host.os.platform"] == endpoint_os


@pytest.mark.parametrize(
    ("account", "name", "domain"),
    [
        ("CORP\\jdoe", "jdoe", "CORP"),
        ("NT AUTHORITY\\SYSTEM", "SYSTEM", "NT AUTHORITY"),
        ("A\\B\\C", "B\\C", "A"),  # dissect's last key takes the rest
        ("root", "root", None),  # Elastic would also write "root" to user.domain
    ],
)
def test_user_is_the_creators_account(account: str, name: str, domain: str | None) -> None:
    event = normalize(creation(src__process__user=account, tgt__process__user="OTHER\\someone"))
    assert event["user.name"] == name
    assert event.get("user.domain") == domain


@pytest.mark.parametrize(
    "time",
    [1715677923118, "1715677923118", "2024-05-14T09:12:03.118Z", "2024-05-14T09:12:03.118+00:00"],
)
def test_timestamp_from_epoch_millis_or_iso8601(time: Any) -> None:
    """[default.yml]: the date processor on event.time with formats ISO8601 and epoch_millis."""
    assert normalize(creation(event__time=time))["@timestamp"] == "2024-05-14T09:12:03.118Z"


@pytest.mark.parametrize("time", ["", "yesterday", True, None, [1715677923118], "9" * 5000])
def test_an_unreadable_time_leaves_the_timestamp_out(time: Any) -> None:
    assert "@timestamp" not in normalize(creation(event__time=time))


def test_pids_convert_as_elasticsearch_longs() -> None:
    event = normalize(creation(tgt__process__pid="5120", src__process__pid=4312))
    assert (event["process.pid"], event["process.parent.pid"]) == (5120, 4312)
    event = normalize(creation(tgt__process__pid="51x", src__process__pid=True))
    assert "process.pid" not in event and "process.parent.pid" not in event


def test_each_process_gets_its_own_code_signature() -> None:
    """Elastic sets tgt's signature before renaming process to process.parent [pipeline-process.yml], so the
    parent shows the child's; here each process has its own."""
    event = normalize(
        creation(
            tgt__process__publisher="Microsoft Windows",
            tgt__process__signedStatus="signed",
            tgt__process__verifiedStatus="verified",
            src__process__publisher="Contoso",
            src__process__signedStatus="signed",
            src__process__verifiedStatus="unverified",
        )
    )
    assert event["process.code_signature.subject_name"] == "Microsoft Windows"
    assert event["process.code_signature.exists"] is True
    assert event["process.code_signature.trusted"] is True
    assert event["process.parent.code_signature.subject_name"] == "Contoso"
    assert event["process.parent.code_signature.exists"] is True
    assert event["process.parent.code_signature.trusted"] is False


def test_process_termination_is_an_end() -> None:
    event = normalize(creation(meta__event__name="PROCESSTERMINATION", event__type="Process Termination"))
    assert event["event.category"] == ["process"]
    assert event["event.type"] == ["end"]
    assert event["event.action"] == ["end"]


def test_other_categories_keep_the_actor_as_the_process_and_get_no_process_category() -> None:
    """A file written by cmd.exe (whose parent is w3wp.exe) is not a process start: default.yml maps the actor
    (src) to process.* and its parent to process.parent.*; only the process pipeline categorizes."""
    record = creation(
        meta__event__name="FILECREATION",
        event__type="File Creation",
        event__category="file",
        src__process__name="cmd.exe",
        src__process__parent__name="w3wp.exe",
        tgt__file__path="C:\\inetpub\\wwwroot\\x.aspx",
    )
    del record["tgt.process.name"], record["tgt.process.cmdline"]
    event = normalize(record)
    assert "event.category" not in event and "event.type" not in event
    assert event["event.action"] == "File Creation"
    assert (event["process.name"], event["process.parent.name"]) == ("cmd.exe", "w3wp.exe")
    assert seed_eql_rule().matching(event) == []
    assert event[VENDOR_PREFIX + "tgt.file.path"] == "C:\\inetpub\\wwwroot\\x.aspx"


def test_cross_process_events_are_not_process_events() -> None:
    event = normalize(creation(meta__event__name="OPENPROCESS", event__category="cross_process"))
    assert "event.category" not in event
    assert event["process.name"] == "w3wp.exe"


# --- never raises -----------------------------------------------------------------------------------------------

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
_KNOWN_KEYS = [
    *sorted(creation()),
    "tgt.process.pid",
    "src.process.pid",
    "tgt.process.startTime",
    "tgt.process.signedStatus",
    "tgt.process.verifiedStatus",
    "tgt.process.image.sha1",
    "src.process.userSid",
    "endpoint.type",
    "agent.uuid",
]


def _check_event(event: Event) -> None:
    assert "error.message" not in event
    assert event["event.kind"] == "event"
    for field in ("process.pid", "process.parent.pid", "process.args_count"):
        assert field not in event or (isinstance(event[field], int) and not isinstance(event[field], bool))
    assert "@timestamp" not in event or (isinstance(event["@timestamp"], str) and event["@timestamp"].endswith("Z"))
    assert event.get("host.os.type") in (None, "windows", "linux", "macos", "ios", "android")
    for field in ("process.name", "process.parent.name", "process.command_line", "host.name", "user.name"):
        assert field not in event or (isinstance(event[field], str) and event[field])


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=30), _JSON, max_size=8))
def test_arbitrary_json_objects_never_raise(document: dict[str, Any]) -> None:
    assert is_sentinel_one_record(document) in (True, False)
    _check_event(normalize(document))


@settings(max_examples=100, deadline=None)
@given(st.fixed_dictionaries({}, optional={key: _SCALARS | st.lists(_SCALARS, max_size=2) for key in _KNOWN_KEYS}))
def test_cloud_funnel_keys_with_any_values_never_raise(document: dict[str, Any]) -> None:
    _check_event(normalize(document))
    _check_event(normalize(nested(document)))


def test_nesting_deeper_than_the_stack_never_raises() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    record = creation(deep=deep)
    assert is_sentinel_one_record(record)
    event = normalize(record)
    assert event["process.name"] == "cmd.exe"


# --- the effect of the choice on the seed rule ----------------------------------------------------------------------


def chain_records(chain: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Cloud Funnel PROCESSCREATION records for a process chain [(name, command line), ...]: record i has the
    creator chain[i] as src, its parent chain[i-1] as src.process.parent and chain[i+1] as tgt."""
    records = []
    for index in range(1, len(chain) - 1):
        (parent, parent_line), (creator, creator_line), (created, created_line) = chain[index - 1 : index + 2]
        records.append(
            {
                "meta.event.name": "PROCESSCREATION",
                "event.type": "Process Creation",
                "event.category": "process",
                "event.time": 1715677923118 + index,
                "event.id": f"01HXCHAIN_{index}",
                "endpoint.name": "WEB-IIS-01",
                "endpoint.os": "windows",
                "dataSource.name": "SentinelOne",
                "src.process.parent.name": parent,
                "src.process.parent.image.path": f"C:\\Windows\\System32\\{parent}",
                "src.process.parent.cmdline": parent_line,
                "src.process.parent.pid": 1000 + index - 1,
                "src.process.name": creator,
                "src.process.image.path": f"C:\\Windows\\System32\\{creator}",
                "src.process.cmdline": creator_line,
                "src.process.pid": 1000 + index,
                "tgt.process.name": created,
                "tgt.process.image.path": f"C:\\Windows\\System32\\{created}",
                "tgt.process.cmdline": created_line,
                "tgt.process.pid": 1000 + index + 1,
            }
        )
    return records


def elastic_before_0_10_mapping(record: Mapping[str, Any]) -> Event:
    """The event with process.* as Elastic's integration wrote process events before 0.10.0 [8608]: default.yml's
    process.* = src.process.*, process.parent.* = src.process.parent.* (its cmdline quote-trimmed), no rename.

    Only process.* changes; event.type stays "start" (those versions wrote "info", under which the rule fires on
    nothing), so the difference measured is the mapping's alone.
    """
    event = {key: value for key, value in normalize(record).items() if not key.startswith("process.")}
    event["process.name"] = record["src.process.name"]
    event["process.executable"] = record["src.process.image.path"]
    event["process.command_line"] = record["src.process.cmdline"]
    event["process.pid"] = record["src.process.pid"]
    event["process.parent.name"] = record["src.process.parent.name"]
    event["process.parent.executable"] = record["src.process.parent.image.path"]
    parent_line = record["src.process.parent.cmdline"]
    if len(parent_line) >= 2 and parent_line[0] == parent_line[-1] == '"':
        parent_line = parent_line[1:-1]
    event["process.parent.command_line"] = parent_line
    return event


WEB_SHELL_CHAIN = [
    ("services.exe", "C:\\Windows\\system32\\services.exe"),
    ("svchost.exe", "C:\\Windows\\system32\\svchost.exe -k iissvcs"),
    ("w3wp.exe", 'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "DefaultAppPool"'),
    ("cmd.exe", 'cmd /c "cd /d "C:\\inetpub\\wwwroot\\"&whoami&echo [S]&cd&echo [E]"'),
    ("whoami.exe", "whoami"),
]


def test_the_seed_rule_fires_on_the_web_server_starting_the_shell() -> None:
    """shellwatch's mapping: the w3wp.exe -> cmd.exe creation raises the alert; the svchost -> w3wp and
    cmd -> whoami creations do not."""
    rules = seed_eql_rule()
    records = chain_records(WEB_SHELL_CHAIN)
    assert [(r["src.process.name"], r["tgt.process.name"]) for r in records] == [
        ("svchost.exe", "w3wp.exe"),
        ("w3wp.exe", "cmd.exe"),
        ("cmd.exe", "whoami.exe"),
    ]
    fired = [(r["src.process.name"], r["tgt.process.name"]) for r in records if rules.matching(normalize(r))]
    assert fired == [("w3wp.exe", "cmd.exe")]


def test_with_elastics_old_mapping_it_fires_one_generation_later() -> None:
    """Elastic's pre-0.10.0 mapping: the rule fires on the cmd.exe -> whoami.exe creation, whose src is cmd.exe and
    src.process.parent w3wp.exe, and not on the creation of the shell itself."""
    rules = seed_eql_rule()
    records = chain_records(WEB_SHELL_CHAIN)
    fired = [
        (r["src.process.name"], r["tgt.process.name"])
        for r in records
        if rules.matching(elastic_before_0_10_mapping(r))
    ]
    assert fired == [("cmd.exe", "whoami.exe")]


def test_a_shell_that_starts_nothing_is_seen_only_with_shellwatchs_mapping() -> None:
    """w3wp.exe -> powershell.exe, and powershell starts no child: one creation event, whose src is w3wp.exe."""
    rules = seed_eql_rule()
    (record,) = chain_records([*WEB_SHELL_CHAIN[1:3], ("powershell.exe", "powershell -nop -c Get-ChildItem")])
    assert rules.matching(normalize(record))
    assert not rules.matching(elastic_before_0_10_mapping(record))


def test_a_linux_host_keeps_the_windows_rule_quiet() -> None:
    rules = seed_eql_rule()
    (windows,) = chain_records(WEB_SHELL_CHAIN[1:4])
    linux = dict(windows, **{"endpoint.os": "linux"})
    assert rules.matching(normalize(windows))
    assert normalize(linux)["host.os.type"] == "linux"
    assert not rules.matching(normalize(linux))


# --- golden comparison with Elastic's expected output -----------------------------------------------------------

# Every field where shellwatch's event and Elastic's expected document for test-process.log differ, with its reason.
# The test recomputes the differences, so this list cannot go stale.
KNOWN_DIFFERENCES = {
    "ecs.version": "pipeline constant (default.yml sets 8.11.0), not derived from the record",
    "event.original": "the raw line itself; shellwatch keeps every raw field under the vendor namespace instead",
    "tags": "set by the pipeline test's configuration (preserve_original_event, preserve_duplicate_custom_fields)",
    "host.name": "set from endpoint.name; Elastic sets only host.hostname, but rules and alert reasons read host.name",
    "related.hosts": "default.yml also appends endpoint.os and endpoint.type ('windows', 'server'): not hosts",
    "process.code_signature.exists": (
        "pipeline-process.yml writes tgt's signature to process.code_signature before renaming process to "
        "process.parent, so Elastic shows it on the parent and none on the process; here each has its own"
    ),
    "process.code_signature.subject_name": "as process.code_signature.exists",
    "process.code_signature.trusted": "as process.code_signature.exists",
    "sentinel_one_cloud_funnel": (
        "the excerpt omits Elastic's vendor namespace (a placeholder string here); shellwatch's is checked by "
        "test_every_raw_field_is_kept_verbatim_under_the_vendor_namespace"
    ),
}

# The fields of the mapping choice: they must agree with Elastic's current pipeline [8608].
MAPPING_CHOICE_FIELDS = (
    "process.name",
    "process.executable",
    "process.pid",
    "process.entity_id",
    "process.command_line",
    "process.args",
    "process.parent.name",
    "process.parent.executable",
    "process.parent.pid",
    "process.parent.entity_id",
    "process.parent.command_line",
    "process.parent.args",
)


def golden_differences() -> dict[str, tuple[Any, Any]]:
    ours = ecs_fields(normalize(reference_record()))
    theirs = flatten(expected_document())
    return {
        field: (ours.get(field), theirs.get(field))
        for field in sorted(set(ours) | set(theirs))
        if ours.get(field) != theirs.get(field)
    }


def test_golden_every_field_equal_except_the_listed_differences() -> None:
    """[s1-expected]: every ECS field equal to Elastic's, except KNOWN_DIFFERENCES, each with its reason."""
    differences = golden_differences()
    assert set(differences) == set(KNOWN_DIFFERENCES), {f: differences.get(f) for f in differences}
    assert all(reason for reason in KNOWN_DIFFERENCES.values())
    # The process/parent choice is not among them: Elastic's current pipeline maps tgt to process as well.
    expected = flatten(expected_document())
    ours = normalize(reference_record())
    for field in MAPPING_CHOICE_FIELDS:
        assert field in expected
        assert ours[field] == expected[field], field


def test_golden_differences_are_what_their_reasons_say() -> None:
    differences = golden_differences()
    expected = flatten(expected_document())
    ours = normalize(reference_record())
    for field in ("ecs.version", "event.original", "tags"):
        assert differences[field][0] is None and differences[field][1] is not None
    assert differences["host.name"] == (expected["host.hostname"], None)
    assert differences["related.hosts"] == (["asdf1"], ["asdf1", "windows", "server"])
    for part in ("exists", "subject_name", "trusted"):
        field = f"process.code_signature.{part}"
        assert differences[field] == (ours[field], None)
        # Elastic's parent carries the values that belong to tgt; here the parent's own (equal in this record).
        assert ours[f"process.parent.code_signature.{part}"] == expected[f"process.parent.code_signature.{part}"]


# --- fixtures -----------------------------------------------------------------------------------------------------


def alerts_by_hand(path: Path) -> list[tuple[str, Rule]]:
    """Reader -> this normalizer -> the seed EQL rule: (tgt process name, rule) per match."""
    rules = seed_eql_rule()
    matches = []
    for record in fixture_records(path):
        assert is_sentinel_one_record(record)
        event = normalize(record)
        matches += [(event["process.name"], rule) for rule in rules.matching(event)]
    return matches


def test_positive_fixture_raises_exactly_one_alert() -> None:
    matches = alerts_by_hand(POSITIVE)
    assert [name for name, _ in matches] == ["cmd.exe"]
    events = [normalize(r) for r in fixture_records(POSITIVE)]
    assert [(e["process.parent.name"], e["process.name"]) for e in events] == [
        ("svchost.exe", "w3wp.exe"),
        ("w3wp.exe", "cmd.exe"),
        ("cmd.exe", "whoami.exe"),
    ]


def test_benign_fixture_raises_none() -> None:
    assert alerts_by_hand(BENIGN) == []
    events = [normalize(r) for r in fixture_records(BENIGN)]
    assert [e.get("process.name") for e in events] == ["cmd.exe", "csc.exe", "sh", "w3wp.exe"]
    assert [e.get("host.os.type") for e in events] == ["windows", "windows", "linux", "windows"]
    assert events[0]["process.command_line"] == "C:\\Windows\\system32\\cmd.exe"  # enclosing quotes trimmed
    assert "event.category" not in events[3]


def run_hunt(path: Path) -> tuple[list[dict[str, Any]], HuntStats]:
    stats = HuntStats()
    alerts = list(hunt([str(path)], seed_eql_rule(), stats=stats, workers=1))
    if stats.by_source.get(FAMILY, 0) == 0:
        pytest.skip(f"shellwatch.normalize.dispatch does not route {FAMILY} records yet")
    return alerts, stats


def test_hunt_on_the_fixtures() -> None:
    """Through shellwatch.pipeline.hunt, once dispatch routes the family: 1 alert on the positive, 0 on the benign,
    every record attributed to the family."""
    alerts, stats = run_hunt(POSITIVE)
    assert stats.by_source[FAMILY] == 3
    assert [flatten(alert)["process.name"] for alert in alerts] == ["cmd.exe"]
    alerts, stats = run_hunt(BENIGN)
    assert stats.by_source[FAMILY] == 4
    assert alerts == []
