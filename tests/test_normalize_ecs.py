"""ECS documents: passed through flattened, with only host.os.type and process names completed.

host.os.type: Elastic's Windows pipelines never set it, Winlogbeat's add_host_metadata does
(../shared/reference/sources/MAPPING.md §0), so a Windows event log document without it gets "windows".
process.name: ECS defines it as the executable's file name (https://www.elastic.co/guide/en/ecs/current/
ecs-process.html#field-process-name), which the pipelines derive from the path when the source lacks it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.ecs import flatten, flatten_fields
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.dispatch import normalize_with_family, source_family
from shellwatch.normalize.ecs_document import normalize_elastic_defend_document
from shellwatch.sources.record import Origin, RawRecord


def _json(document: dict[str, Any]) -> RawRecord:
    return RawRecord(document, "json", Origin("docs.ndjson", line=1))


def ingested_winlogbeat_document() -> dict[str, Any]:
    return {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "agent": {"type": "winlogbeat"},
        "event": {"category": ["process"], "type": ["start"], "module": "sysmon", "code": "1"},
        "process": {
            "executable": "C:\\Windows\\System32\\cmd.exe",
            "parent": {"executable": "C:\\x\\w3wp.exe"},
        },
        "user": {"name": "as-ingested"},
        "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_data": {"User": "D\\other"}},
    }


def test_ingested_winlogbeat_document_is_completed_not_remapped() -> None:
    family, event = normalize_with_family(_json(ingested_winlogbeat_document()))
    assert family == "winlogbeat"
    assert event["host.os.type"] == "windows"
    assert event["process.name"] == "cmd.exe"
    assert event["process.parent.name"] == "w3wp.exe"
    # Already ingested (event.module set): the pipeline's mapping is not applied a second time.
    assert event["user.name"] == "as-ingested"
    assert event["winlog.event_data.User"] == "D\\other"


def test_existing_fields_are_kept() -> None:
    document = ingested_winlogbeat_document()
    document["host"] = {"os": {"type": "linux"}}
    document["process"]["name"] = "renamed.exe"
    event = normalize_with_family(_json(document))[1]
    assert event["host.os.type"] == "linux"
    assert event["process.name"] == "renamed.exe"


def test_dotted_documents_are_the_same_documents() -> None:
    dotted = {
        "@timestamp": "2024-05-01T12:00:00+02:00",
        "winlog.channel": "Security",
        "event.category": ["process"],
        "process.executable": "C:\\Windows\\System32\\whoami.exe",
    }
    family, event = normalize_with_family(_json(dotted))
    assert family == "winlogbeat"
    assert event["@timestamp"] == "2024-05-01T10:00:00Z"
    assert event["process.name"] == "whoami.exe"
    assert event["host.os.type"] == "windows"


def test_other_ecs_documents_get_no_windows_defaults() -> None:
    document = {
        "@timestamp": 1714557600000,
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"executable": "/usr/bin/bash", "args": ["bash", "-c", "id"]},
        "host": {"name": "web1"},
    }
    family, event = normalize_with_family(_json(document))
    assert family == "ecs"
    assert "host.os.type" not in event
    assert event["process.name"] == "bash"
    assert event["process.args"] == ["bash", "-c", "id"]
    assert event["@timestamp"] == "2024-05-01T10:00:00.000Z"


def test_unknown_json_is_flattened_as_is() -> None:
    document = {
        "timestamp": 131509374020000000,
        "process_name": "cmd.exe",
        "nested": {"a": [{"b": 1}, {"b": 2}]},
    }
    family, event = normalize_with_family(_json(document))
    assert family == "unknown" == source_family(_json(document))
    assert event == {"timestamp": 131509374020000000, "process_name": "cmd.exe", "nested.a.b": [1, 2]}


def test_collected_winlogbeat_document_gets_the_pipeline_mapping_only() -> None:
    """A Winlogbeat document that skipped the ingest pipeline is mapped by the provider's pipeline rules,
    and those rules alone name the process: sysmon.yml sets no name for a path without a backslash."""
    document = {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "event": {"code": "1", "kind": "event", "provider": "Microsoft-Windows-Sysmon"},
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "provider_name": "Microsoft-Windows-Sysmon",
            "event_id": "1",
            "record_id": 7,
            "user": {"identifier": "S-1-5-18"},
            "event_data": {"Image": "System", "ParentImage": "C:\\Windows\\explorer.exe", "User": "D\\u"},
        },
    }
    family, event = normalize_with_family(_json(document))
    assert family == "winlogbeat"
    assert event["event.category"] == ["process"]
    assert event["process.executable"] == "System"
    assert "process.name" not in event
    assert event["process.parent.name"] == "explorer.exe"
    assert (event["user.name"], event["user.id"]) == ("u", "S-1-5-18")
    assert event["winlog.record_id"] == "7"


def _collected_sysmon_document() -> dict[str, Any]:
    """A Sysmon 1 document as Winlogbeat 8 writes it without an ingest pipeline."""
    return {
        "@timestamp": "2024-05-01T10:00:00.250Z",
        "agent": {"type": "winlogbeat", "version": "8.12.2"},
        "event": {"code": "1", "kind": "event", "created": "2024-05-01T10:00:01.000Z"},
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "provider_name": "Microsoft-Windows-Sysmon",
            "event_id": "1",
            "event_data": {"UtcTime": "2024-05-01 10:00:00.247", "Image": "C:\\Windows\\System32\\cmd.exe"},
        },
    }


def test_collected_document_keeps_the_shippers_event_created() -> None:
    """The sysmon pipeline sets event.created from winlog.time_created only (elastic/integrations
    packages/windows/data_stream/sysmon_operational/elasticsearch/ingest_pipeline/default.yml @ 029004a3): without
    it, Winlogbeat's own event.created stays; with it, it wins; with neither, there is none."""
    document = _collected_sysmon_document()
    event = normalize_with_family(_json(document))[1]
    assert (event["@timestamp"], event["event.created"]) == ("2024-05-01T10:00:00.247Z", "2024-05-01T10:00:01.000Z")

    document["winlog"]["time_created"] = "2024-05-01T10:00:00.250Z"
    assert normalize_with_family(_json(document))[1]["event.created"] == "2024-05-01T10:00:00.250Z"

    del document["winlog"]["time_created"], document["event"]["created"]
    assert "event.created" not in normalize_with_family(_json(document))[1]


def test_collected_document_event_code_is_a_string() -> None:
    """Winlogbeat 7.0-7.x wrote the event id as a number; the pipelines set event.code from winlog.event_id as a
    string (same pipeline, ``set event.code '{{winlog.event_id}}'``), the keyword Elasticsearch indexes."""
    document = _collected_sysmon_document()
    document["event"]["code"] = 1
    document["winlog"]["event_id"] = 1
    event = normalize_with_family(_json(document))[1]
    assert event["event.code"] == "1"
    assert event["event.category"] == ["process"]


def test_ingested_document_without_category_is_not_mapped_again() -> None:
    """``event.ingested`` marks a document the integrations' pipelines wrote (the Fleet final pipeline sets it on
    every document), even for an event id no categorization table lists: its fields are not mapped again."""
    document = {
        "@timestamp": "2024-05-06T22:41:19.338Z",
        "event": {"code": "4799", "ingested": "2024-05-06T22:41:24Z", "kind": "event"},
        "user": {"name": "as-ingested"},
        "winlog": {
            "channel": "Security",
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "event_id": "4799",
            "event_data": {"SubjectUserName": "other", "SubjectDomainName": "CORP"},
        },
    }
    event = normalize_with_family(_json(document))[1]
    assert event["user.name"] == "as-ingested"
    assert "user.domain" not in event
    assert event == {**flatten(document), "host.os.type": "windows"}


# ------------------------------------------------------------------------------------------------------------
# Reading only the demanded fields of a document


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "B", "", "w3wp.exe"]))
_keys = st.sampled_from(["process", "name", "parent", "process.name", "parent.name", "a", "a.b", "b", ""])
_documents = st.recursive(
    st.dictionaries(_keys, _json_scalars, max_size=3),
    lambda inner: st.dictionaries(
        _keys, st.one_of(_json_scalars, inner, st.lists(st.one_of(_json_scalars, inner), max_size=3)), max_size=4
    ),
    max_leaves=12,
)


def _as_values(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return sorted(json.dumps(item, sort_keys=True) for item in items)


@settings(max_examples=400, deadline=None)
@given(document=_documents, extra=st.lists(_keys, max_size=3))
def test_flatten_fields_gives_the_values_flatten_gives(document: dict[str, Any], extra: list[str]) -> None:
    """Every field of the flattened document, and a few that may not exist: the same values (any order), and the
    same fields present; nested objects, dotted keys and arrays of objects mixed."""
    full = flatten(copy.deepcopy(document))
    paths = [*full, *(".".join(extra[: n + 1]) for n in range(len(extra)))]
    some = flatten_fields(document, paths)
    for path in paths:
        assert (path in full) == (path in some), path
        if path in full:
            assert _as_values(full[path]) == _as_values(some[path]), path


def test_demanded_defend_fields_match_the_full_document() -> None:
    """An Elastic Defend document read for the seed rules' fields: the same values as the full normalization,
    names completed from executables included."""
    document = {
        "@timestamp": "2024-03-14T09:00:00Z",
        "agent": {"type": "endpoint"},
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"os": {"type": "windows"}},
        "process": {"executable": "C:\\Windows\\System32\\cmd.exe", "parent": {"executable": "C:\\w3wp.exe"}},
    }
    demand = FieldDemand(["process.name", "process.parent.name", "event.category", "host.os.type", "@timestamp"])
    full = normalize_elastic_defend_document(copy.deepcopy(document))
    some = normalize_elastic_defend_document(document, demand=demand)
    for field in demand.fields:
        assert some[field] == full[field], field
    assert some["process.parent.name"] == "w3wp.exe"
