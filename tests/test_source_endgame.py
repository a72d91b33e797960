"""Endgame (``endgame-*``) records -> ECS: shellwatch.normalize.endgame, field by field, over the 102 events of the
``eql`` package's Endgame test data, the fixtures in tests/fixtures/sources/endgame, and the seed EQL rule.

Sources:
- [schema] ../shared/reference/sources/MAPPING.md §3: the legacy Endgame fields and their ECS targets.
- [test-data] ../shared/corpus/endgame-eql/eql/etc/test_data.json (endgameinc/eql @ 7d8a09c4): 102 legacy records.
- [already-running] elastic/endpoint-package ``schemas/examples/v1/process_already_running_windows.json``
  (../shared/corpus/elastic-endpoint-package): Elastic Defend writes ``event.action: already_running`` with
  ``event.type: ["info"]``; elastic/kibana ``x-pack/plugins/security_solution/common/endpoint/models/event.ts``
  (``isProcessRunning``) reads ECS ``info`` as Endgame's ``already_running``.
- [ecs-types] https://www.elastic.co/guide/en/ecs/current/ecs-allowed-values-event-type.html: ``start``, ``end``,
  ``info``, ``creation``, ``deletion``, ``change``.
- [endgame-ecs] elastic/kibana ``x-pack/plugins/security_solution/public/common/demo_data/endgame_ecs/``
  (``creation.ts``, ``dns.ts``, ``termination.ts``): Endgame documents as streamed to Elasticsearch:
  ``event.module: endgame``, ``event.dataset: esensor``, ``event.action`` = the Endgame subtype,
  ``host.os.platform: windows`` without ``host.os.type``, a creation event with ``event.type: ["process_start"]``,
  DNS requests under ``event.category: network``, the parent's name only in ``endgame.parent_process_name``.
- [resolver] elastic/kibana ``.../common/endpoint/models/event.ts``: ``entityId``/``parentEntityId`` are
  ``String(unique_pid)``/``String(unique_ppid)``, a 0 ``unique_ppid`` meaning none; ``eventSequence`` is
  ``serial_event_id``.
- [eql-syntax] https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-syntax.html: ``==`` compares
  exactly, ``:`` case-insensitively; ``process where`` tests ``event.category``.
- [eql-null] shellwatch/query/eql.py: ``not (... process.command_line : ...)`` does not exclude a document without
  ``process.command_line`` (Elasticsearch's ``must_not``).
- [es-objects] https://www.elastic.co/guide/en/elasticsearch/reference/current/array.html: an array of objects is
  indexed as one multi-valued field per leaf.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from shellwatch.ecs import Event
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.endgame import FAMILY, is_endgame_record, normalize_endgame
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import RawRecord, ReadProblem

FIXTURES = Path(__file__).parent / "fixtures" / "sources" / "endgame"
POSITIVE = FIXTURES / "endgame-positive.json"
BENIGN = FIXTURES / "endgame-benign.json"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"

SEED_EQL_FILE = "persistence_webshell_detection.toml"
WEB_PARENTS = ("w3wp.exe", "httpd.exe", "nginx.exe", "php.exe", "php-cgi.exe", "tomcat.exe")
SHELLS = ("cmd.exe", "cscript.exe", "powershell.exe", "pwsh.exe", "powershell_ise.exe", "wmic.exe", "wscript.exe")
EXCLUDED_COMMAND_LINES = (
    "cmd.exe /c mode CON",
    'cmd.exe /s /c "mode CON"',
    'cmd.exe /c "mode"',
    'cmd.exe /s /c "tput colors 2>&1"',
)

# The ECS event.type of each Endgame subtype [already-running] [ecs-types].
SUBTYPE_TYPES = {
    "creation_event": ["start"],
    "termination_event": ["end"],
    "already_running": ["info"],
    "file_create_event": ["creation"],
    "file_delete_event": ["deletion"],
    "registry_modify_event": ["change"],
}


def normalize(document: Mapping[str, Any]) -> Event:
    return normalize_endgame(document, SourceContext())


@cache
def seed_rule() -> Rule:
    return next(
        rule
        for rule in load_bundled_rules().rules
        if rule.language == "eql" and Path(rule.source.path).name == SEED_EQL_FILE
    )


@cache
def seed_rules() -> RuleSet:
    return RuleSet([seed_rule()])


def seed_fires(event: Event) -> bool:
    return bool(seed_rules().matching(event))


@cache
def _test_data_text() -> str:
    return shared_path("corpus", "endgame-eql", "eql", "etc", "test_data.json").read_text(encoding="utf-8")


def eql_test_data() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(_test_data_text())
    return records


def by_serial(serial: int) -> dict[str, Any]:
    return next(record for record in eql_test_data() if record["serial_event_id"] == serial)


def read_fixture(path: Path) -> list[RawRecord]:
    problems: list[ReadProblem] = []
    records = list(read_paths([str(path)], on_problem=problems.append))
    assert problems == []
    return records


# ---------------------------------------------------------------------------------------------------------------
# The 102 records of the eql test data


def test_family_name() -> None:
    assert FAMILY == "endgame"


def test_every_test_data_record_is_recognized_and_normalizes() -> None:
    records = eql_test_data()
    assert len(records) == 102
    for record in records:
        assert is_endgame_record(record), record["serial_event_id"]
        event = normalize(record)
        assert event["event.kind"] == "event"
        assert event["event.action"] == record["event_subtype_full"]
        assert "@timestamp" in event


def test_every_original_field_is_kept_under_endgame() -> None:
    for record in eql_test_data():
        event = normalize(record)
        for key, value in record.items():
            if not isinstance(value, dict):
                assert event[f"endgame.{key}"] == value, (record["serial_event_id"], key)


def test_nested_vendor_fields_are_flattened_as_elasticsearch_indexes_them() -> None:
    """[es-objects]: ``mysterious_field.subarray`` is an array of objects, one multi-valued field per leaf."""
    event = normalize(by_serial(75305))
    assert event["endgame.mysterious_field.num"] == 100
    assert event["endgame.mysterious_field.subarray.a"] == ["s0-a", "s1-a", "s2-a", "s3-a"]
    assert event["endgame.mysterious_field.subarray.c.x.y"] == ["s0-c-x-y", "s0-c-x-y", "s3-c-x-y"]


def test_process_event_types_follow_the_subtype() -> None:
    """[already-running] [ecs-types]: creation -> start, termination -> end, already_running -> info; only
    creation events are starts."""
    starts = []
    for record in eql_test_data():
        event = normalize(record)
        subtype = record["event_subtype_full"]
        if subtype in SUBTYPE_TYPES:
            assert event["event.type"] == SUBTYPE_TYPES[subtype], record["serial_event_id"]
        else:
            assert "event.type" not in event, record["serial_event_id"]
        if "start" in event.get("event.type", []):
            starts.append(record["serial_event_id"])
    expected = [r["serial_event_id"] for r in eql_test_data() if r["event_subtype_full"] == "creation_event"]
    assert starts == expected
    assert len(starts) == 12


def test_opcode_decides_when_a_process_record_has_no_known_subtype() -> None:
    """[schema]: opcode 1 = create, 2 = terminate, 3 = already running."""
    for opcode, expected in ((1, ["start"]), (2, ["end"]), (3, ["info"])):
        record = {**by_serial(53), "event_subtype_full": "", "opcode": opcode}
        assert normalize(record)["event.type"] == expected
    record = {**by_serial(53), "event_subtype_full": "", "opcode": 7}
    assert "event.type" not in normalize(record)
    # A named subtype wins over a disagreeing opcode.
    assert normalize({**by_serial(53), "opcode": 3})["event.type"] == ["start"]


def test_categories_follow_the_event_type() -> None:
    """[endgame-ecs]: DNS requests are network events; non-process events never get a process start."""
    categories = {"process": ["process"], "file": ["file"], "network": ["network"], "dns": ["network"]}
    categories["registry"] = ["registry"]
    for record in eql_test_data():
        event = normalize(record)
        assert event["event.category"] == categories[record["event_type"]], record["serial_event_id"]
        if record["event_type"] != "process":
            assert "start" not in event.get("event.type", [])


COMMAND_LINE_53 = 'C:\\Windows\\system32\\cmd.exe /c "c:\\workspace\\red_ttp\\process_name_masquerade.py"'


def test_creation_event_field_by_field() -> None:
    """[schema] [resolver]: test_data serial 53, cmd.exe started by python.exe."""
    event = normalize(by_serial(53))
    mapped = {key: value for key, value in event.items() if not key.startswith("endgame.")}
    assert mapped == {
        "@timestamp": "2017-09-26T22:10:29.4209140Z",
        "event.kind": "event",
        "event.module": "endgame",
        "event.dataset": "esensor",
        "event.action": "creation_event",
        "event.category": ["process"],
        "event.type": ["start"],
        "event.sequence": 53,
        "host.os.type": "windows",
        "process.pid": 1788,
        "process.entity_id": "53",
        "process.executable": "C:\\Windows\\System32\\cmd.exe",
        "process.name": "cmd.exe",
        "process.command_line": COMMAND_LINE_53,
        "process.args": ["C:\\Windows\\system32\\cmd.exe", "/c", "c:\\workspace\\red_ttp\\process_name_masquerade.py"],
        "process.args_count": 3,
        "process.hash.md5": "5746bd7e255dd6a8afa06f7c42c1ba41",
        "process.parent.pid": 420,
        "process.parent.entity_id": "48",
        "process.parent.executable": "C:\\Python27\\python.exe",
        "process.parent.name": "python.exe",
        "user.name": "vagrant",
        "user.domain": "vagrant",
    }


def test_termination_and_pe_fields() -> None:
    """[schema]: ``original_file_name`` -> ``process.pe.original_file_name``; the exit code is kept."""
    event = normalize(by_serial(75303))
    assert event["event.type"] == ["end"]
    assert event["process.exit_code"] == 0
    assert event["process.pe.original_file_name"] == "MSBuild.exe"
    assert event["process.name"] == "MSBuild.exe"


def test_file_registry_network_and_dns_fields() -> None:
    file_event = normalize(by_serial(55))
    assert file_event["file.path"] == "C:\\workspace\\red_ttp\\svchost.exe"
    assert file_event["file.name"] == "svchost.exe"
    assert file_event["event.type"] == ["creation"]
    assert file_event["process.name"] == "python.exe"
    assert normalize(by_serial(59))["event.type"] == ["deletion"]

    registry = normalize(by_serial(57))
    assert registry["registry.value"] == "LanguageList"
    assert registry["registry.path"].endswith("\\MuiCache\\1B\\52C64B7E\\LanguageList")
    assert registry["registry.data.strings"] == ["en-US", "en"]
    assert registry["event.type"] == ["change"]

    network = normalize(by_serial(75304))
    assert network["source.ip"] == network["destination.ip"] == "10.6.48.157"
    assert (network["source.port"], network["destination.port"]) == (52178, 8000)
    assert network["network.transport"] == "tcp"
    assert "event.type" not in network

    dns = normalize(by_serial(63))
    assert dns["dns.question.name"] == "teredo.ipv6.microsoft.com."
    assert dns["network.protocol"] == "dns"
    assert "event.type" not in dns


def test_filetime_timestamps() -> None:
    """[schema]: FILETIME is 100 ns ticks since 1601-01-01 UTC; all 7 fraction digits are kept."""
    epoch = datetime(1601, 1, 1, tzinfo=UTC)
    for record in eql_test_data():
        ticks = record["timestamp"]
        rendered = normalize(record)["@timestamp"]
        assert rendered.endswith("Z")
        assert rendered[-8:-1] == f"{ticks % 10_000_000:07d}"
        assert datetime.fromisoformat(rendered) == epoch + timedelta(microseconds=ticks // 10)
    assert normalize(by_serial(1))["@timestamp"] == "1970-01-01T00:00:00.0000000Z"


def test_filetime_out_of_range_is_left_out() -> None:
    for bad in (-1, 1 << 70, "not a number", 1.5, True, None):
        event = normalize({**by_serial(53), "timestamp": bad})
        assert "@timestamp" not in event
    assert normalize({**by_serial(53), "timestamp": "131509374294209140"})["@timestamp"] == (
        "2017-09-26T22:10:29.4209140Z"
    )


def _windows_evidence(record: Mapping[str, Any]) -> bool:
    # Independent of the module: a drive-letter path in a *_path field, or the NT AUTHORITY domain.
    paths = [value for key, value in record.items() if key.endswith("_path") and isinstance(value, str)]
    drive_path = any(len(p) > 2 and p[0].isalpha() and p[1:3] == ":\\" for p in paths)
    return drive_path or record.get("user_domain") == "NT AUTHORITY" or record.get("event_type") == "registry"


def test_host_os_type_over_test_data() -> None:
    """The legacy schema has no OS field: every record with Windows evidence is windows, the one without (the
    System Idle Process, pid 0, no path, no user) gets none."""
    without = []
    for record in eql_test_data():
        event = normalize(record)
        if _windows_evidence(record):
            assert event["host.os.type"] == "windows", record["serial_event_id"]
        else:
            assert "host.os.type" not in event
            without.append(record["serial_event_id"])
    assert without == [1]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"process_path": "/usr/sbin/nginx"}, "linux"),
        ({"process_path": "/Applications/Safari.app/Contents/MacOS/Safari"}, "macos"),
        ({"process_path": "/System/Library/CoreServices/launchservicesd"}, "macos"),
        ({"process_path": "\\Device\\HarddiskVolume2\\Windows\\System32\\cmd.exe"}, "windows"),
        ({"process_path": "\\\\fileserver\\tools\\psexec.exe"}, "windows"),
        ({"process_path": "c:/windows/system32/cmd.exe"}, "windows"),
        ({"user_sid": "S-1-5-21-1004336348-1177238915-682003330-512"}, "windows"),
        ({"user_domain": "NT AUTHORITY"}, "windows"),
        ({"event_type": "registry"}, "windows"),
        ({"process_path": "cmd.exe"}, None),
        ({}, None),
    ],
)
def test_host_os_type_evidence(fields: dict[str, Any], expected: str | None) -> None:
    record: dict[str, Any] = {"event_type": "process", "event_type_full": "process_event"}
    record |= {"event_subtype_full": "creation_event", "process_name": "x", "pid": 1, **fields}
    assert normalize(record).get("host.os.type") == expected


def test_names_come_from_the_vendor_fields_then_the_path() -> None:
    """Endgame names the process itself; the path's last segment only stands in when the name is absent."""
    renamed = {**by_serial(53), "process_name": "svchost.exe", "parent_process_name": "services.exe"}
    event = normalize(renamed)
    assert (event["process.name"], event["process.parent.name"]) == ("svchost.exe", "services.exe")
    nameless = {
        key: value for key, value in by_serial(53).items() if key not in ("process_name", "parent_process_name")
    }
    event = normalize(nameless)
    assert (event["process.name"], event["process.parent.name"]) == ("cmd.exe", "python.exe")


def test_entity_ids_as_kibana_reads_them() -> None:
    """[resolver]: unique ids as strings; a 0 ``unique_ppid`` (csrss.exe, serial 4) is no parent id."""
    event = normalize(by_serial(4))
    assert event["process.entity_id"] == "4"
    assert "process.parent.entity_id" not in event
    assert event["process.parent.pid"] == 364


def _seed_expectation(record: Mapping[str, Any]) -> bool:
    """What the seed rule should say, read from the raw fields alone [eql-syntax] [eql-null]."""
    if record.get("event_type") != "process" or record.get("event_subtype_full") != "creation_event":
        return False
    if not _windows_evidence(record):
        return False
    parent = str(record.get("parent_process_name", "")).lower()
    child = str(record.get("process_name", "")).lower()
    if parent not in WEB_PARENTS or child not in SHELLS:
        return False
    command_line = record.get("command_line")
    excluded = (
        parent in ("php.exe", "httpd.exe")
        and child == "cmd.exe"
        and isinstance(command_line, str)
        and command_line.lower() in {line.lower() for line in EXCLUDED_COMMAND_LINES}
    )
    return not excluded


def _pair_variants(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield record
    parents = (*WEB_PARENTS, "W3WP.EXE", "explorer.exe", "python.exe")
    children = (*SHELLS, "CMD.exe", "whoami.exe", "conhost.exe")
    for parent in parents:
        for child in children:
            yield {**record, "parent_process_name": parent, "process_name": child}
    for parent in ("php.exe", "httpd.exe", "HTTPD.EXE", "w3wp.exe"):
        for line in (*EXCLUDED_COMMAND_LINES, "CMD.EXE /C MODE CON", "cmd.exe /c mode CON2"):
            yield {**record, "parent_process_name": parent, "process_name": "cmd.exe", "command_line": line}
        without_line = {key: value for key, value in record.items() if key != "command_line"}
        yield {**without_line, "parent_process_name": parent, "process_name": "cmd.exe"}


def test_seed_rule_over_test_data_pair_by_pair() -> None:
    """Every record of the test data, as is and with its (parent, child) names replaced by each web server and
    shell pair: the seed rule fires exactly where the rule's logic, read from the raw fields, says it should."""
    fired = expected_count = 0
    for record in eql_test_data():
        for variant in _pair_variants(record):
            expected = _seed_expectation(variant)
            assert seed_fires(normalize(variant)) is expected, (
                variant.get("serial_event_id"),
                variant.get("parent_process_name"),
                variant.get("process_name"),
                variant.get("command_line"),
            )
            fired += expected
            expected_count += 1
    assert not any(seed_fires(normalize(record)) for record in eql_test_data())
    # The pairs reach every clause: 12 creation events x (7 web parents x 8 shells, plus exclusion variants).
    assert fired > 12 * 7 * 8
    assert expected_count > fired


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


def test_positive_fixture_fires_exactly_once_on_the_web_shell_child() -> None:
    events = [normalize(record.data) for record in read_fixture(POSITIVE)]
    assert all(is_endgame_record(record.data) for record in read_fixture(POSITIVE))
    fired = [event for event in events if seed_fires(event)]
    assert len(fired) == 1
    (alerted,) = fired
    assert (alerted["process.parent.name"], alerted["process.name"], alerted["process.pid"]) == (
        "w3wp.exe",
        "cmd.exe",
        6840,
    )
    assert alerted["user.domain"] == "IIS APPPOOL"
    # The supporting records: the parent's already_running record, a file event and the child's termination.
    assert [event.get("event.type") for event in events] == [["info"], ["creation"], ["start"], ["start"], ["end"]]


def test_benign_fixture_never_fires() -> None:
    records = read_fixture(BENIGN)
    assert len(records) == 6
    assert all(is_endgame_record(record.data) for record in records)
    events = [normalize(record.data) for record in records]
    assert not any(seed_fires(event) for event in events)
    # What keeps each quiet: a non-web parent, a non-shell child, a process already running, the rule's
    # exclusion, a Linux host, a non-shell child (ECS-shaped record).
    assert [event["host.os.type"] for event in events] == ["windows"] * 4 + ["linux", "windows"]
    assert events[2]["event.type"] == ["info"]
    assert events[3]["process.command_line"] == "cmd.exe /c mode CON"


def test_benign_fixture_ecs_record_is_completed() -> None:
    """[endgame-ecs]: host.os.type from host.os.platform, event.type from the subtype, the parent's name from
    ``endgame.parent_process_name``; the rest passes through."""
    event = normalize(read_fixture(BENIGN)[5].data)
    assert event["host.os.type"] == "windows"
    assert event["event.type"] == ["start"]
    assert event["process.parent.name"] == "nginx.exe"
    assert event["process.name"] == "php-cgi.exe"
    assert event["process.args"] == ["C:\\nginx\\php\\php-cgi.exe", "-b", "127.0.0.1:9123"]
    assert event["@timestamp"] == "2024-05-15T07:48:02.118Z"
    assert event["endgame.unique_ppid"] == 1288


def test_fixtures_through_hunt_once_wired() -> None:
    """The seed rule over the fixtures through ``shellwatch.pipeline.hunt``: 1 alert, then 0."""
    from shellwatch.normalize.dispatch import source_family
    from shellwatch.pipeline import hunt

    if source_family(read_fixture(POSITIVE)[0]) != FAMILY:
        pytest.skip("the endgame family is not wired into shellwatch.normalize.dispatch yet")
    alerts = list(hunt([str(POSITIVE)], seed_rules(), workers=1))
    assert len(alerts) == 1
    assert list(hunt([str(BENIGN)], seed_rules(), workers=1)) == []


# ---------------------------------------------------------------------------------------------------------------
# ECS-shaped Endgame documents


def endgame_ecs_creation(**overrides: Any) -> dict[str, Any]:
    """An Endgame creation event as Endgame streams it [endgame-ecs]: w3wp.exe starting cmd.exe."""
    document: dict[str, Any] = {
        "@timestamp": 1715677923000,
        "agent": {"id": "0b6b5a52-7b39-4f6d-9a30-5f0d3c1e2a77", "type": "endgame"},
        "event": {
            "action": "creation_event",
            "category": ["process"],
            "dataset": "esensor",
            "kind": "event",
            "module": "endgame",
        },
        "host": {"name": "IIS-07", "os": {"name": "Windows", "platform": "windows", "version": "10.0"}},
        "process": {
            "executable": "C:\\Windows\\System32\\cmd.exe",
            "name": "cmd.exe",
            "pid": 5120,
            "args": ["cmd.exe", "/c", "whoami"],
        },
        "endgame": {
            "event_subtype_full": "creation_event",
            "parent_process_name": "w3wp.exe",
            "pid": 5120,
            "process_name": "cmd.exe",
        },
        "user": {"domain": "IIS APPPOOL", "name": "Portal"},
    }
    document.update(overrides)
    return document


def test_ecs_document_is_completed_and_matches_the_seed_rule() -> None:
    event = normalize(endgame_ecs_creation())
    assert event["host.os.type"] == "windows"
    assert event["event.type"] == ["start"]
    assert event["process.parent.name"] == "w3wp.exe"
    assert event["@timestamp"] == "2024-05-14T09:12:03.000Z"
    assert seed_fires(event)


def test_ecs_document_keeps_what_it_has() -> None:
    """``event.type`` is derived only when missing: Endgame's pre-ECS-1.4 ``process_start`` [endgame-ecs] stays,
    and ``event.type == "start"`` does not match it, as in Elasticsearch [eql-syntax]."""
    document = endgame_ecs_creation()
    document["event"] = {**document["event"], "type": ["process_start"]}
    event = normalize(document)
    assert event["event.type"] == ["process_start"]
    assert not seed_fires(event)

    document = endgame_ecs_creation()
    document["host"] = {"name": "IIS-07", "os": {"type": "linux", "platform": "windows"}}
    assert normalize(document)["host.os.type"] == "linux"

    document = endgame_ecs_creation()
    document["process"] = {**document["process"], "parent": {"name": "services.exe"}}
    assert normalize(document)["process.parent.name"] == "services.exe"


def test_ecs_document_os_from_evidence_when_host_os_is_silent() -> None:
    document = endgame_ecs_creation(host={"name": "IIS-07"})
    assert normalize(document)["host.os.type"] == "windows"  # C:\ executable
    linux = endgame_ecs_creation(
        host={"name": "web-3", "os": {"platform": "linux"}},
        process={"executable": "/usr/bin/bash", "pid": 4},
        user={"name": "www-data"},
    )
    assert normalize(linux)["host.os.type"] == "linux"
    silent = endgame_ecs_creation(host={"name": "x"}, process={"pid": 4}, user={"name": "svc"})
    assert "host.os.type" not in normalize(silent)


def test_ecs_document_in_dotted_form_and_with_kibana_style_arrays() -> None:
    """A flat, dotted-key export of an Endgame document, with every value an array as Kibana returns fields."""
    document = {
        "@timestamp": "1715677923000",
        "event.module": ["endgame"],
        "event.category": ["process"],
        "event.action": ["creation_event"],
        "host.os.platform": ["windows"],
        "process.name": ["powershell.exe"],
        "process.executable": ["C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"],
        "endgame.parent_process_name": ["tomcat.exe"],
    }
    assert is_endgame_record(document)
    event = normalize(document)
    assert event["@timestamp"] == "2024-05-14T09:12:03.000Z"
    assert event["event.type"] == ["start"]
    assert event["host.os.type"] == "windows"
    assert event["process.parent.name"] == "tomcat.exe"
    assert seed_fires(event)


def test_ecs_category_from_the_endgame_event_type() -> None:
    document = endgame_ecs_creation()
    document["event"] = {"module": "endgame", "kind": "event"}
    document["endgame"] = {**document["endgame"], "event_type_full": "process_event"}
    event = normalize(document)
    assert event["event.category"] == ["process"]
    assert event["event.type"] == ["start"]
    assert seed_fires(event)


# ---------------------------------------------------------------------------------------------------------------
# Recognition: Endgame records only


def _other_family_documents() -> list[tuple[str, dict[str, Any]]]:
    documents: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(SAMPLES.iterdir()):
        for record in read_paths([str(path)], on_problem=lambda _p: None):
            documents.append((path.name, record.data))
    reference = shared_path("reference", "sources")
    for path in sorted(reference.rglob("*.json")) + sorted(reference.rglob("*.log")):
        for record in read_paths([str(path)], on_problem=lambda _p: None):
            documents.append((path.name, record.data))
    endpoint = shared_path("corpus", "elastic-endpoint-package")
    for path in sorted(endpoint.rglob("*.json")):
        for record in read_paths([str(path)], on_problem=lambda _p: None):
            documents.append((path.name, record.data))
    documents.append(
        (
            "otrf",
            {
                "EventID": 1,
                "SourceName": "Microsoft-Windows-Sysmon",
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Hostname": "WORKSTATION5",
                "Image": "C:\\Windows\\System32\\cmd.exe",
                "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
                "@timestamp": "2020-10-22T04:29:52.000Z",
            },
        )
    )
    documents.append(
        (
            "m365 advanced hunting csv row",
            {
                "Timestamp": "2024-05-14T09:12:03Z",
                "DeviceName": "iis-07.corp.example",
                "ActionType": "ProcessCreated",
                "FileName": "cmd.exe",
                "FolderPath": "C:\\Windows\\System32\\cmd.exe",
                "InitiatingProcessFileName": "w3wp.exe",
            },
        )
    )
    documents.append(
        (
            "crowdstrike fdr",
            {
                "event_simpleName": "ProcessRollup2",
                "event_platform": "Win",
                "timestamp": "1715677923000",
                "aid": "ffe1c2d3b4a5968778695a4b3c2d1e0f",
                "ImageFileName": "\\Device\\HarddiskVolume2\\Windows\\System32\\cmd.exe",
                "ParentBaseFileName": "w3wp.exe",
                "TargetProcessId": "4400123",
            },
        )
    )
    return documents


def test_other_families_are_not_endgame() -> None:
    documents = _other_family_documents()
    assert len(documents) > 10
    for name, document in documents:
        assert not is_endgame_record(document), name


def test_recognition_needs_the_endgame_markers() -> None:
    record = by_serial(53)
    assert not is_endgame_record({key: value for key, value in record.items() if key != "event_subtype_full"})
    without_full = {key: value for key, value in record.items() if key != "event_type_full"}
    assert is_endgame_record(without_full)  # event_type + unique_pid still say Endgame
    assert not is_endgame_record({key: value for key, value in without_full.items() if key != "unique_pid"})
    assert is_endgame_record({"endgame": {"pid": 4}})
    assert not is_endgame_record({"endgame": {}})
    assert is_endgame_record({"event": {"module": "endgame"}})
    assert not is_endgame_record({"event": {"module": "endpoint"}, "process": {"name": "cmd.exe"}})


def test_a_csv_row_of_strings_is_read() -> None:
    """A legacy record exported as CSV: every value a string."""
    row = {key: str(value) for key, value in by_serial(53).items()}
    assert is_endgame_record(row)
    event = normalize(row)
    assert event["process.pid"] == 1788
    assert event["process.parent.entity_id"] == "48"
    assert event["@timestamp"] == "2017-09-26T22:10:29.4209140Z"
    assert event["event.type"] == ["start"]


# ---------------------------------------------------------------------------------------------------------------
# Attacker-written input

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
legacy_keys = st.sampled_from(
    [
        "event_type", "event_type_full", "event_subtype_full", "opcode", "timestamp", "timestamp_utc", "pid",
        "ppid", "unique_pid", "unique_ppid", "process_name", "process_path", "command_line", "parent_process_name",
        "parent_process_path", "user_name", "user_domain", "user_sid", "md5", "exit_code", "file_path",
        "file_name", "registry_path", "bytes_written_string_list", "source_address", "destination_port",
        "protocol", "query_name", "serial_event_id", "machine_id",
    ]
)  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_never_raises_on_arbitrary_objects(document: dict[str, Any]) -> None:
    is_endgame_record(document)
    normalize(document)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(legacy_keys, json_values, max_size=12), st.sampled_from(["creation_event", "x", ""]))
def test_never_raises_on_legacy_shaped_records(document: dict[str, Any], subtype: str) -> None:
    document = {**document, "event_subtype_full": subtype, "event_type_full": "process_event"}
    assert is_endgame_record(document)
    event = normalize(document)
    assert event["event.kind"] == "event"


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.sampled_from(["endgame", "event", "host", "process", "@timestamp"]), json_values))
def test_never_raises_on_ecs_shaped_documents(document: dict[str, Any]) -> None:
    document = {**document, "endgame.event_subtype_full": "creation_event"}
    assert is_endgame_record(document)
    normalize(document)


def test_deep_nesting_is_survived() -> None:
    nested: dict[str, Any] = {"leaf": 1}
    for _ in range(5000):
        nested = {"n": nested}
    legacy = {**by_serial(53), "mysterious_field": nested}
    event = normalize(legacy)
    assert event["process.name"] == "cmd.exe"
    assert event["endgame.process_name"] == "cmd.exe"
    ecs_document = endgame_ecs_creation(extra=nested)
    assert normalize(ecs_document)["process.name"] == "cmd.exe"
