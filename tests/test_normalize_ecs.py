"""ECS documents: passed through flattened, with only host.os.type and process names completed.

host.os.type: Elastic's Windows pipelines never set it, Winlogbeat's add_host_metadata does
(../shared/reference/sources/MAPPING.md §0), so a Windows event log document without it gets "windows".
process.name: ECS defines it as the executable's file name (https://www.elastic.co/guide/en/ecs/current/
ecs-process.html#field-process-name), which the pipelines derive from the path when the source lacks it.
"""

from __future__ import annotations

from typing import Any

from shellwatch.normalize.dispatch import normalize_with_family, source_family
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
