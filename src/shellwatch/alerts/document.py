"""The alert document: a matched event plus ``kibana.alert.*``, shaped like Kibana's security alerts.

Kibana writes security alerts with the source event's fields as they were (nested) and its own fields as dotted keys
(``"kibana.alert.rule.name": ...``); ``event.kind`` becomes ``"signal"`` and the source's ``event.*`` fields are kept
under ``kibana.alert.original_event.*``. shellwatch writes the same shape so that the documents can be indexed into
``.alerts-security.alerts-*`` or read by anything that reads Kibana alerts.

Identity is deterministic, as in Kibana, where an alert's id is a hash of the source document's identity and the
rule: hunting the same logs twice yields the same ``kibana.alert.uuid`` values, and the same event read from two
copies of a log (same host, channel, record id and time) yields one alert id, not two.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from shellwatch.alerts.reason import alert_reason
from shellwatch.ecs import unflatten
from shellwatch.rules.model import Rule
from shellwatch.sources.record import Origin

RULE_UUID_NAMESPACE = uuid.UUID("5b0c6f0e-8d4e-5d3a-9a51-7c1f0e3b2a90")
"""Namespace of ``kibana.alert.rule.uuid``: Kibana's is the rule's saved-object id, here derived from its rule_id."""

_RULE_CATEGORY = {
    "eql": ("Event Correlation Rule", "siem.eqlRule"),
    "query": ("Custom Query Rule", "siem.queryRule"),
    "new_terms": ("New Terms Rule", "siem.newTermsRule"),
    "threshold": ("Threshold Rule", "siem.thresholdRule"),
    "sigma": ("Sigma Rule", "shellwatch.sigmaRule"),
}


def rule_uuid(rule: Rule) -> str:
    """``kibana.alert.rule.uuid`` of a rule: stable for a rule_id."""
    return _rule_uuid_of(rule.rule_id)


@functools.lru_cache(maxsize=8192)
def _rule_uuid_of(rule_id: str) -> str:
    # Every alert names its rule's uuid twice (the rule's fields and the alert's id): a rule set's are kept.
    return str(uuid.uuid5(RULE_UUID_NAMESPACE, rule_id))


_ISO_SECOND = len("2024-03-14T09:12:01")


def event_identity(event: Mapping[str, Any], origin: Origin | None = None) -> str:
    """A stable identity of a source event, standing in for Elasticsearch's ``_index`` + ``_id``.

    The document's own ``_id`` when it carries one; else a Windows event's (computer, channel, record id, second
    written), which is the same whichever export of the log it was read from; else a hash of the event's content
    with where it was read (two identical lines in one file are two events).
    """
    doc_id = event.get("_id")
    if isinstance(doc_id, str) and doc_id:
        return f"id:{doc_id}"
    record_id = event.get("winlog.record_id")
    computer = event.get("winlog.computer_name") or event.get("host.name")
    channel = event.get("winlog.channel")
    if record_id is not None and computer and channel:
        # A cleared log numbers its events from 1 again: the second the event was written tells a new event from
        # the earlier one that had its number, while every rendering of one event (EVTX, XML, Winlogbeat, each
        # with its own sub-second precision) gives the same second.
        written = event.get("@timestamp")
        second = written[:_ISO_SECOND] if isinstance(written, str) else ""
        return f"winlog:{computer}|{channel}|{record_id}|{second}"
    content = orjson.dumps(dict(event), option=orjson.OPT_SORT_KEYS, default=str)
    where = f"{origin.path}|{origin.line}" if origin is not None else ""
    return "sha256:" + hashlib.sha256(content + where.encode()).hexdigest()


def alert_uuid(rule: Rule, identity: str) -> str:
    """``kibana.alert.uuid``: a SHA-256 of the source event's identity and the rule, as Kibana derives it."""
    return hashlib.sha256(f"{identity}\x00{rule_uuid(rule)}".encode()).hexdigest()


_EVENT_PREFIX_LENGTH = len("event.")


@functools.lru_cache(maxsize=1024)
def _event_paths(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The ``event.*`` paths among an event's keys, in order: events of one kind share their keys, so this is
    worked out once per kind rather than every key looked at per alert."""
    return tuple(path for path in keys if path.startswith("event."))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rule_fields(rule: Rule) -> dict[str, Any]:
    """The ``kibana.alert.rule.*`` fields of a rule (the same for every alert of the rule)."""
    category, rule_type_id = _RULE_CATEGORY.get(rule.type, ("Custom Query Rule", f"siem.{rule.type}Rule"))
    fields: dict[str, Any] = {
        "kibana.alert.rule.author": list(rule.author),
        "kibana.alert.rule.building_block_type": rule.building_block_type,
        "kibana.alert.rule.category": category,
        "kibana.alert.rule.consumer": "siem",
        "kibana.alert.rule.description": rule.description,
        "kibana.alert.rule.enabled": True,
        "kibana.alert.rule.exceptions_list": [dict(e) for e in rule.exceptions_list],
        "kibana.alert.rule.false_positives": list(rule.false_positives),
        "kibana.alert.rule.from": rule.from_,
        "kibana.alert.rule.immutable": False,
        "kibana.alert.rule.indices": list(rule.index),
        "kibana.alert.rule.interval": rule.interval,
        "kibana.alert.rule.language": rule.language,
        "kibana.alert.rule.license": rule.license,
        "kibana.alert.rule.max_signals": rule.max_signals,
        "kibana.alert.rule.name": rule.name,
        "kibana.alert.rule.note": rule.note,
        "kibana.alert.rule.producer": "siem",
        "kibana.alert.rule.query": rule.query,
        "kibana.alert.rule.references": list(rule.references),
        "kibana.alert.rule.risk_score": rule.risk_score,
        "kibana.alert.rule.rule_id": rule.rule_id,
        "kibana.alert.rule.rule_type_id": rule_type_id,
        "kibana.alert.rule.severity": rule.severity,
        "kibana.alert.rule.tags": list(rule.tags),
        "kibana.alert.rule.threat": [t.to_kibana() for t in rule.threat],
        "kibana.alert.rule.timestamp_override": rule.timestamp_override,
        "kibana.alert.rule.to": "now",
        "kibana.alert.rule.type": rule.type,
        "kibana.alert.rule.uuid": rule_uuid(rule),
        "kibana.alert.rule.version": rule.version,
    }
    return fields


def build_alert(
    rule: Rule,
    event: Mapping[str, Any],
    *,
    origin: Origin | None,
    detected_at: datetime,
    rule_fields_cache: Mapping[str, Any] | None = None,
    identity: str | None = None,
) -> dict[str, Any]:
    """The alert document for ``rule`` matching ``event`` (a flat ECS event) read from ``origin``; ``identity``:
    :func:`event_identity` of the event and origin, when the caller has it already."""
    if identity is None:
        identity = event_identity(event, origin)
    source = {k: v for k, v in event.items() if k != "_id"} if "_id" in event else event
    document: dict[str, Any] = unflatten(source)
    original_event = {path[_EVENT_PREFIX_LENGTH:]: source[path] for path in _event_paths(tuple(source))}
    event_object = document.get("event")
    if not isinstance(event_object, dict):
        event_object = document["event"] = {}
    event_object["kind"] = "signal"

    detected = _iso(detected_at)
    document["@timestamp"] = detected
    document.update(rule_fields_cache if rule_fields_cache is not None else rule_fields(rule))
    document.update(
        {
            "kibana.alert.uuid": alert_uuid(rule, identity),
            "kibana.alert.original_time": event.get("@timestamp"),
            "kibana.alert.start": detected,
            "kibana.alert.last_detected": detected,
            "kibana.alert.status": "active",
            "kibana.alert.workflow_status": "open",
            "kibana.alert.severity": rule.severity,
            "kibana.alert.risk_score": rule.risk_score,
            "kibana.alert.reason": alert_reason(event, severity=rule.severity, rule_name=rule.name),
            "kibana.alert.depth": 1,
            "kibana.alert.building_block_type": rule.building_block_type,
            "kibana.alert.ancestors": [
                {"id": identity, "type": "event", "index": origin.path if origin else None, "depth": 0}
            ],
            "kibana.alert.original_event": original_event,
            "kibana.space_ids": ["default"],
        }
    )
    if origin is not None:
        document["shellwatch.origin"] = {"path": origin.path, "record_id": origin.record_id, "line": origin.line}
    return document
