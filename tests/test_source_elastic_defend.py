"""Elastic Defend documents (``logs-endpoint.events.process-*``) -> ECS: shellwatch.normalize.ecs_document keeps
them whole; golden agreement with every process example of the endpoint package, recognition, and the seed EQL
rule over tests/fixtures/sources/elastic_defend.

Sources:
- [endpoint-package] ../shared/corpus/elastic-endpoint-package (elastic/endpoint-package @ 19941229):
  ``schemas/examples/v1/process_{created,already_running,terminated}_windows.json``,
  ``package/endpoint/data_stream/process/sample_event.json``, and the process data stream's pipeline test
  ``_dev/test/pipeline/test-ingest-timestamp.json`` with its ``-expected.json``.
- [defend-fields] ../shared/reference/sources/elastic_defend_endgame/endpoint-package_windows_process_create.md
  (MAPPING.md §3): Elastic Defend writes ECS natively (``event.module: endpoint``, ``event.dataset:
  endpoint.events.process``, ``agent.type: endpoint``); "the normalizer only needs to pass these through".
- [ecs-name] https://www.elastic.co/guide/en/ecs/current/ecs-process.html#field-process-name: ``process.name`` is
  the executable's file name.
- [es-objects] https://www.elastic.co/guide/en/elasticsearch/reference/current/array.html: an array of objects is
  indexed as one multi-valued field per leaf (what ``shellwatch.ecs.flatten`` does).
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
from shellwatch.normalize.ecs_document import (
    ELASTIC_DEFEND_FAMILY,
    is_elastic_defend_document,
    normalize_elastic_defend_document,
)
from shellwatch.pipeline import hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import ReadProblem

SOURCES = Path(__file__).parent / "fixtures" / "sources"
FIXTURES = SOURCES / ELASTIC_DEFEND_FAMILY
SEED_EQL_FILE = "persistence_webshell_detection.toml"

EXAMPLES = [
    "schemas/examples/v1/process_created_windows.json",
    "schemas/examples/v1/process_already_running_windows.json",
    "schemas/examples/v1/process_terminated_windows.json",
    "package/endpoint/data_stream/process/sample_event.json",
]
PIPELINE_TEST = "package/endpoint/data_stream/process/_dev/test/pipeline/test-ingest-timestamp.json"

# Every field of an example the normalized event does not hold with the original's value, per example, with the
# reason. A Defend document passes through whole: there is none.
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {example: {} for example in EXAMPLES}

# Fields the endpoint package's ingest pipeline adds to what the endpoint sent (its pipeline test's expected output
# against its input), with the reason shellwatch does not add them.
INGEST_ONLY_FIELDS = {
    "event.ingested": "the time Elasticsearch ingested the document; shellwatch reads exported documents, it does "
    "not ingest them",
}


def normalize(document: Mapping[str, Any]) -> Event:
    return normalize_elastic_defend_document(document, SourceContext())


@cache
def seed_rule() -> Rule:
    rules = [
        rule
        for rule in load_bundled_rules().rules
        if rule.language == "eql" and Path(rule.source.path).name == SEED_EQL_FILE
    ]
    assert len(rules) == 1
    return rules[0]


def _example(relative: str) -> Any:
    return json.loads(shared_path("corpus", "elastic-endpoint-package", *relative.split("/")).read_text("utf-8"))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------------------
# Golden: the endpoint package's own documents


@pytest.mark.parametrize("example", EXAMPLES)
def test_endpoint_package_example_passes_through_whole(example: str) -> None:
    """Every field of each process example comes out equal to the original flattened [endpoint-package]
    [es-objects], except the listed differences (none), and nothing is added: not even host.os.type, which the
    1.0 schema examples do not carry (Elastic searches them without it)."""
    document = _example(example)
    assert is_elastic_defend_document(document)
    original = flatten(document)

    event = normalize(document)

    differences = {field for field, value in original.items() if event.get(field, object()) != value}
    assert differences == set(KNOWN_DIFFERENCES[example])
    assert set(event) - set(original) == set()


def test_endpoint_package_pipeline_test_pair() -> None:
    """The process data stream's pipeline test: its input and its expected output each pass through whole, and
    the expected output differs from the input only by the listed ingest-time fields [endpoint-package]."""
    inputs = _example(PIPELINE_TEST)["events"]
    expected = _example(PIPELINE_TEST + "-expected.json")["expected"]
    assert len(inputs) == len(expected) >= 1
    for raw, ingested in zip(inputs, expected, strict=True):
        from_raw = normalize(raw)
        from_ingested = normalize(ingested)
        assert from_raw == flatten(raw)
        assert from_ingested == flatten(ingested)
        assert set(from_ingested) - set(from_raw) == set(INGEST_ONLY_FIELDS)


def test_sample_event_fields_the_rules_read() -> None:
    """The values the web-shell rules read, from the data stream's sample event [endpoint-package]."""
    event = normalize(_example(EXAMPLES[3]))
    assert (event["host.os.type"], event["event.type"], event["event.category"]) == (
        "windows",
        ["start"],
        ["process"],
    )
    assert (event["process.name"], event["process.parent.name"]) == ("svchost.exe", "services.exe")
    assert event["process.parent.args"] == []
    # An array of objects: one multi-valued field per leaf [es-objects].
    assert event["process.Ext.code_signature.subject_name"] == ["Microsoft Windows Publisher"]
    assert event["@timestamp"] == "2022-04-04T18:53:08.6578986Z"  # kept to the 100 ns the endpoint wrote


# --------------------------------------------------------------------------------------------------------------
# What is completed, and nothing else


def _positive() -> dict[str, Any]:
    return _lines(FIXTURES / "elastic_defend-positive.ndjson")[0]


def test_positive_fixture_passes_through_whole() -> None:
    document = _positive()
    event = normalize(document)
    assert event == flatten(document)
    assert event["process.Ext.ancestry"] == document["process"]["Ext"]["ancestry"]
    assert event["process.Ext.code_signature.trusted"] == [True]


def test_process_names_are_completed_from_the_executables() -> None:
    """A document without process.name / process.parent.name gets them from the executable's file name, Windows
    or POSIX path [ecs-name]; a name the document has is never replaced."""
    document = _positive()
    del document["process"]["name"], document["process"]["parent"]["name"]
    event = normalize(document)
    assert (event["process.name"], event["process.parent.name"]) == ("cmd.exe", "w3wp.exe")

    linux = {"agent": {"type": "endpoint"}, "process": {"executable": "/usr/sbin/apache2", "name": "apache2-w"}}
    linux["process"]["parent"] = {"executable": "/usr/bin/bash"}
    event = normalize(linux)
    assert (event["process.name"], event["process.parent.name"]) == ("apache2-w", "bash")
    assert "host.os.type" not in event


def test_timestamp_becomes_iso_utc_and_nothing_else_changes() -> None:
    document = _positive()
    document["@timestamp"] = "2024-04-15T13:03:27.441+02:00"
    event = normalize(document)
    assert event["@timestamp"] == "2024-04-15T11:03:27.441000Z"
    assert {field: value for field, value in event.items() if field != "@timestamp"} == {
        field: value for field, value in flatten(document).items() if field != "@timestamp"
    }


def test_a_timestamp_whose_utc_moment_is_out_of_range_is_no_date() -> None:
    """``0001-01-01T00:00:00+01:00`` is a valid ISO 8601 text whose UTC moment falls in year 0, which Python's
    datetime cannot hold (``astimezone`` raises OverflowError): it is kept as written, as a text that is no
    date-time, never an error that makes the whole event unreadable."""
    document = _positive()
    document["@timestamp"] = "0001-01-01T00:00:00+01:00"
    event = normalize(document)
    assert event["@timestamp"] == "0001-01-01T00:00:00+01:00"
    assert event.get("event.kind") != "pipeline_error"


# --------------------------------------------------------------------------------------------------------------
# Recognition


def test_defend_documents_are_recognized_nested_or_dotted() -> None:
    for document in [
        *_lines(FIXTURES / "elastic_defend-positive.ndjson"),
        *_lines(FIXTURES / "elastic_defend-benign.ndjson"),
    ]:
        assert is_elastic_defend_document(document)
        assert is_elastic_defend_document(flatten(document))
    assert is_elastic_defend_document({"agent.type": "endpoint"})
    assert is_elastic_defend_document({"event": {"module": "endpoint"}})
    assert is_elastic_defend_document({"data_stream": {"dataset": "endpoint.events.process"}})
    assert is_elastic_defend_document({"event.dataset": "endpoint.events.network"})
    assert not is_elastic_defend_document({"event": {"dataset": "endpointish"}, "agent": "endpoint"})
    assert not is_elastic_defend_document({"agent": {"type": "endgame"}, "event": {"module": "endgame"}})


def _records_outside_defend() -> list[Any]:
    ignored: list[ReadProblem] = []  # README files: not records
    return [
        record.data
        for record in read_paths([str(SOURCES)], on_problem=ignored.append)
        if Path(record.origin.path).parent.name != ELASTIC_DEFEND_FAMILY
    ]


def test_no_other_family_is_taken_for_defend() -> None:
    """False for every record of the other families' fixtures (Winlogbeat 6/7/8 and Agent documents, Endgame,
    the EDR exports) and of the reference sources in ../shared."""
    others = _records_outside_defend()
    assert len(others) >= 10
    assert [document for document in others if is_elastic_defend_document(document)] == []
    ignored: list[ReadProblem] = []
    reference = [
        record.data for record in read_paths([str(shared_path("reference", "sources"))], on_problem=ignored.append)
    ]
    reference += [
        record.data for record in read_paths([str(shared_path("corpus", "endgame-eql"))], on_problem=ignored.append)
    ]
    assert len(reference) > 100
    assert [document for document in reference if is_elastic_defend_document(document)] == []


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
_KEYS = st.sampled_from(
    ["agent", "agent.type", "event", "event.module", "data_stream", "data_stream.dataset", "@timestamp", "process"]
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12) | _KEYS, _JSON, max_size=6))
def test_never_raises_on_arbitrary_objects(document: dict[str, Any]) -> None:
    """Attacker-written logs: recognition and normalization never raise."""
    is_elastic_defend_document(document)
    assert isinstance(normalize(document), dict)


# --------------------------------------------------------------------------------------------------------------
# The seed EQL rule over the fixtures


@pytest.mark.parametrize(
    ("name", "alerts"), [("elastic_defend-positive.ndjson", 1), ("elastic_defend-benign.ndjson", 0)]
)
def test_seed_rule_on_fixture(name: str, alerts: int) -> None:
    """One alert on w3wp.exe starting cmd.exe; none on explorer.exe -> cmd.exe, nor on a cmd.exe under w3wp.exe
    reported ``already_running`` (event.type ``info``, not ``start``)."""
    rules = RuleSet([seed_rule()])
    matched = [event for event in map(normalize, _lines(FIXTURES / name)) if rules.matching(event)]
    assert len(matched) == alerts
    if alerts:
        assert (matched[0]["process.parent.name"], matched[0]["process.name"]) == ("w3wp.exe", "cmd.exe")


@pytest.mark.parametrize(
    ("name", "alerts"), [("elastic_defend-positive.ndjson", 1), ("elastic_defend-benign.ndjson", 0)]
)
def test_hunt_on_fixture(name: str, alerts: int) -> None:
    """The same through ``shellwatch hunt``'s pipeline (reader, dispatch, rule set)."""
    found = list(hunt([str(FIXTURES / name)], RuleSet([seed_rule()]), workers=1))
    assert len(found) == alerts
    if alerts:
        process = found[0]["process"]
        assert (process["parent"]["name"], process["name"]) == ("w3wp.exe", "cmd.exe")
