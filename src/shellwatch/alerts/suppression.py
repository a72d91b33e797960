"""Alert suppression as Kibana's detection engine does it: a rule's ``alert_suppression`` setting and its state.

A rule with ``alert_suppression`` creates one alert per group of matching events instead of one per event. The
group is the values of the ``group_by`` fields (1 to 3 of them); the kept alert is the group's first event's, and
``kibana.alert.suppression.{terms,start,end,docs_count}`` say what it stands for. Without ``duration`` groups live
for one rule execution; with it, a group lives for that long from the moment its alert was created, across runs.
Events missing a group-by field are grouped under ``null`` (``missing_fields_strategy: suppress``, the default) or
alerted one by one (``doNotSuppress``).

The algorithm follows Kibana's ``alertWithSuppression`` (security_solution rule_types/utils/
``bulk_create_suppressed_alerts_in_memory`` and ``alert_with_suppression``): an offered alert whose event already
made an alert is a duplicate; one whose event is not later than the end of an earlier run's still-live group was
already counted in that run (the look-back overlap) and is dropped; otherwise it folds into the live group alert or
creates a new one. :class:`Suppressor` holds that state for one rule, in memory, and serializes it to a dict.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

MAX_GROUP_BY_FIELDS = 3
"""Kibana's limit: "Suppress alerts by: enter 1-3 field names" (docs-content suppress-detection-alerts.md,
and the rule schema's ``AlertSuppressionGroupBy`` array, minSize 1, maxSize 3)."""

DURATION_UNITS: Mapping[str, int] = {"s": 1, "m": 60, "h": 3600}
"""Units of ``alert_suppression.duration`` (Kibana's ``AlertSuppressionDurationUnit``: s, m, h) in seconds."""

MISSING_FIELDS_STRATEGIES = ("suppress", "doNotSuppress")

PER_VALUE_RULE_TYPES = frozenset({"query", "saved_query", "threshold", "sigma"})
"""Rule types whose multi-valued group-by fields make one group per value (Kibana groups custom query and
threshold rules with a terms aggregation; a Sigma rule runs in Kibana as a custom query). Every other type (eql,
new_terms, threat_match, esql, machine_learning) groups by the whole, sorted array."""

DEFAULT_SPACE_ID = "default"

Strategy = Literal["suppress", "doNotSuppress"]
DecisionKind = Literal["created", "folded", "unsuppressed", "duplicate", "already_suppressed", "dropped_max_signals"]


class SuppressionError(ValueError):
    """A rule's ``alert_suppression`` setting is invalid; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SuppressionSettings:
    """A validated ``alert_suppression`` setting."""

    group_by: tuple[str, ...]
    duration_seconds: int | None = None
    """None: suppress per rule execution; else the suppression window, from the group alert's creation."""
    missing_fields_strategy: Strategy = "suppress"
    per_value: bool = False
    """True for rule types that make a group per value of a multi-valued field (see PER_VALUE_RULE_TYPES)."""

    def to_kibana(self) -> dict[str, Any]:
        """The setting as Kibana's rule API writes it."""
        out: dict[str, Any] = {"group_by": list(self.group_by), "missing_fields_strategy": self.missing_fields_strategy}
        if self.duration_seconds is not None:
            out["duration"] = _duration_kibana(self.duration_seconds)
        return out


def _duration_kibana(seconds: int) -> dict[str, Any]:
    for unit in ("h", "m", "s"):
        if seconds % DURATION_UNITS[unit] == 0:
            return {"value": seconds // DURATION_UNITS[unit], "unit": unit}
    raise AssertionError("unreachable: every whole number of seconds is a duration in s")


def suppression_settings(raw_rule: Mapping[str, Any]) -> SuppressionSettings | None:
    """The ``alert_suppression`` of a rule mapping (a TOML ``[rule]`` table or Kibana rule JSON), or None.

    Raises :class:`SuppressionError` when the setting is present but does not follow Kibana's rule schema.
    """
    raw = raw_rule.get("alert_suppression")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SuppressionError("alert_suppression must be a table/object")
    rule_type = raw_rule.get("type")
    group_by = raw.get("group_by")
    if rule_type == "threshold" and group_by is None:
        # A threshold rule groups by threshold.field; its alert_suppression carries the duration only.
        threshold = raw_rule.get("threshold")
        group_by = threshold.get("field", []) if isinstance(threshold, Mapping) else []
        if isinstance(group_by, str):
            group_by = [group_by]
        if raw.get("duration") is None:
            raise SuppressionError("alert_suppression of a threshold rule needs a duration")
    elif group_by is None:
        raise SuppressionError("alert_suppression.group_by is required")
    if not isinstance(group_by, list) or not all(isinstance(f, str) and f.strip() for f in group_by):
        raise SuppressionError("alert_suppression.group_by must be a list of field names")
    if rule_type != "threshold" and not 1 <= len(group_by) <= MAX_GROUP_BY_FIELDS:
        raise SuppressionError(
            f"alert_suppression.group_by has {len(group_by)} fields; Kibana allows 1 to {MAX_GROUP_BY_FIELDS}"
        )
    strategy = raw.get("missing_fields_strategy", "suppress")
    if strategy not in MISSING_FIELDS_STRATEGIES:
        raise SuppressionError(
            f"alert_suppression.missing_fields_strategy {strategy!r} is not one of "
            + ", ".join(MISSING_FIELDS_STRATEGIES)
        )
    return SuppressionSettings(
        group_by=tuple(group_by),
        duration_seconds=_duration_seconds(raw.get("duration")),
        missing_fields_strategy=strategy,
        per_value=rule_type in PER_VALUE_RULE_TYPES,
    )


def _duration_seconds(raw: Any) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SuppressionError("alert_suppression.duration must be {value, unit}")
    value, unit = raw.get("value"), raw.get("unit")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SuppressionError(f"alert_suppression.duration.value {value!r} must be a whole number >= 1")
    if unit not in DURATION_UNITS:
        raise SuppressionError(f"alert_suppression.duration.unit {unit!r} is not one of s, m, h")
    return value * DURATION_UNITS[str(unit)]


# --- reading the group-by values of an alert ----------------------------------------------------------------


def _robust_get(document: Mapping[str, Any], path: str) -> Any:
    """A dotted field from a document whose keys may be nested, dotted or both (Kibana's ``robustGet``)."""
    if path in document:
        return document[path]
    parts = path.split(".")
    for i in range(1, len(parts)):
        child = document.get(".".join(parts[:i]))
        if isinstance(child, Mapping):
            found = _robust_get(child, ".".join(parts[i:]))
            if found is not None:
                return found
    return None


def _field_values(alert: Mapping[str, Any], path: str) -> list[Any]:
    """The non-null values of a group-by field of the alert's source event, as Elasticsearch's fields API lists them.

    The alert rewrote ``event.kind`` to "signal"; the source event's ``event.*`` values are kept under
    ``kibana.alert.original_event``, and suppression reads the source event.
    """
    value = None
    if path.startswith("event."):
        original = alert.get("kibana.alert.original_event")
        if isinstance(original, Mapping):
            value = _robust_get(original, path[len("event.") :])
    if value is None:
        value = _robust_get(alert, path)
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def _sort_key(value: Any) -> tuple[str, Any]:
    # Values of one field share a type in practice; the type name keeps mixed arrays sortable.
    return (type(value).__name__, value if isinstance(value, (str, int, float)) else orjson.dumps(value, default=str))


Term = dict[str, Any]


def group_terms(alert: Mapping[str, Any], settings: SuppressionSettings) -> list[list[Term]] | None:
    """The suppression terms of every group the alert belongs to, or None when it is not to be suppressed.

    Whole-array rule types give one group whose values are the sorted arrays (``[{"field": "host.name", "value":
    ["web-01"]}]``); per-value rule types give one group per combination of values, each value a scalar. A missing
    field is ``null`` under "suppress"; under "doNotSuppress" an alert missing any field gets None.
    """
    per_field: list[list[Any]] = []
    for path in settings.group_by:
        values = _field_values(alert, path)
        if not values and settings.missing_fields_strategy == "doNotSuppress":
            return None
        per_field.append(values)
    if not settings.per_value:
        return [
            [
                {"field": path, "value": sorted(values, key=_sort_key) if values else None}
                for path, values in zip(settings.group_by, per_field, strict=True)
            ]
        ]
    choices = [_unique(values) if values else [None] for values in per_field]
    return [
        [{"field": path, "value": value} for path, value in zip(settings.group_by, combination, strict=True)]
        for combination in itertools.product(*choices)
    ]


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)


def instance_id(terms: list[Term], rule_uuid: str, space_id: str = DEFAULT_SPACE_ID) -> str:
    """``kibana.alert.instance.id`` of a group: a hash of its terms, the rule and the space, as Kibana derives it."""
    return hashlib.sha256(_canonical([terms, rule_uuid, space_id])).hexdigest()


# --- the suppressor -----------------------------------------------------------------------------------------


def iso_moment(moment: datetime) -> str:
    """A moment as Kibana writes alert times: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one offered alert (per group it belongs to).

    ``created``: a new alert ``alert_uuid`` (with suppression fields); ``folded``: counted into the live group
    alert ``alert_uuid``; ``unsuppressed``: a plain alert (doNotSuppress and a group-by field missing);
    ``duplicate``: the event already made alert ``alert_uuid``; ``already_suppressed``: the event was counted by
    an earlier run's group (look-back overlap); ``dropped_max_signals``: the run's new-alert limit was reached.
    """

    kind: DecisionKind
    alert_uuid: str
    instance_id: str | None = None


@dataclass(slots=True)
class _Group:
    """The live (latest) alert of one suppression group."""

    alert: dict[str, Any]
    created_at: datetime
    run_id: str

    @property
    def end(self) -> datetime:
        return _parse(self.alert["kibana.alert.suppression.end"])


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a rule execution writes: its new alerts (final) and the earlier alerts it updated (whole documents)."""

    created: list[dict[str, Any]]
    updated: list[dict[str, Any]]
    decisions: dict[str, int] = field(default_factory=dict)
    """How many offers ended in each decision kind."""


@dataclass(slots=True)
class _Run:
    run_id: str
    started_at: datetime
    window_start: datetime
    max_new_alerts: int | None
    created: list[dict[str, Any]] = field(default_factory=list)
    updated: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    ends_before: dict[str, datetime] = field(default_factory=dict)
    """Suppression end of earlier runs' group alerts before this run folded into them: what was already counted."""


class Suppressor:
    """Alert suppression state of one rule, fed one rule execution at a time.

    Per run: :meth:`begin_run`, then :meth:`offer` for each alert the run's search produced, in event-time order
    (the order Kibana's search returns them), then :meth:`end_run` for the documents to write. Between runs the
    state is :meth:`to_state` / :meth:`from_state`.
    """

    def __init__(self, settings: SuppressionSettings, *, rule_uuid: str, space_id: str = DEFAULT_SPACE_ID) -> None:
        self.settings = settings
        self.rule_uuid = rule_uuid
        self.space_id = space_id
        self._groups: dict[str, _Group] = {}
        self._alert_ids: dict[str, datetime] = {}
        """Alerts this rule created, with their creation time: an event that made one is a duplicate."""
        self._run: _Run | None = None

    # -- runs --

    def begin_run(
        self,
        run_id: str,
        *,
        started_at: datetime,
        search_from: datetime,
        max_new_alerts: int | None = None,
    ) -> None:
        """Open a rule execution at ``started_at`` that searches events from ``search_from`` (the run's ``from``).

        ``max_new_alerts`` is the rule's max_signals: with suppression, Kibana counts created alerts only (folded
        events do not use it up). The window in which an earlier group alert still takes events is ``now -
        duration``, or the run's ``from`` when suppressing per rule execution.
        """
        if self._run is not None:
            raise RuntimeError(f"run {self._run.run_id!r} is still open")
        duration = self.settings.duration_seconds
        window_start = search_from if duration is None else started_at - timedelta(seconds=duration)
        self._run = _Run(run_id, started_at, window_start, max_new_alerts)
        # Neither a group nor an alert id older than both the window and the search can ever match again.
        horizon = min(window_start, search_from)
        self._groups = {k: g for k, g in self._groups.items() if g.created_at >= horizon}
        self._alert_ids = {k: t for k, t in self._alert_ids.items() if t >= horizon}

    def offer(self, alert: Mapping[str, Any], event_time: datetime) -> tuple[Decision, ...]:
        """Offer the alert a plain run would create; ``event_time`` is the event's timestamp_override value, or
        its @timestamp, or the run's time (Kibana's primary / secondary / fallback timestamp).

        One decision per group the alert belongs to (one, unless a per-value rule type meets a multi-valued field).
        """
        run = self._require_run()
        base_uuid = str(alert["kibana.alert.uuid"])
        groups = group_terms(alert, self.settings)
        if groups is None:
            return (self._create_plain(run, alert, base_uuid),)
        decisions = []
        for terms in groups:
            uuid = group_alert_uuid(base_uuid, terms, self.settings, len(groups))
            decisions.append(self._offer_group(run, alert, uuid, terms, event_time))
        return tuple(decisions)

    def end_run(self) -> RunResult:
        """Close the run: the alerts it created (with final suppression fields) and earlier alerts it updated."""
        run = self._require_run()
        self._run = None
        return RunResult(created=run.created, updated=list(run.updated.values()), decisions=run.decisions)

    def close_alert(self, alert_uuid: str) -> None:
        """An analyst closed the alert: Kibana's default stops suppressing into it (the next event opens a new one)."""
        self._groups = {k: g for k, g in self._groups.items() if g.alert["kibana.alert.uuid"] != alert_uuid}

    # -- decisions --

    def _require_run(self) -> _Run:
        if self._run is None:
            raise RuntimeError("no run is open: call begin_run first")
        return self._run

    def _count(self, run: _Run, decision: Decision) -> Decision:
        run.decisions[decision.kind] = run.decisions.get(decision.kind, 0) + 1
        return decision

    def _room(self, run: _Run) -> bool:
        return run.max_new_alerts is None or len(run.created) < run.max_new_alerts

    def _create_plain(self, run: _Run, alert: Mapping[str, Any], uuid: str) -> Decision:
        if uuid in self._alert_ids:
            return self._count(run, Decision("duplicate", uuid))
        if not self._room(run):
            return self._count(run, Decision("dropped_max_signals", uuid))
        self._alert_ids[uuid] = run.started_at
        run.created.append(dict(alert))
        return self._count(run, Decision("unsuppressed", uuid))

    def _offer_group(
        self, run: _Run, alert: Mapping[str, Any], uuid: str, terms: list[Term], event_time: datetime
    ) -> Decision:
        group_id = instance_id(terms, self.rule_uuid, self.space_id)
        if uuid in self._alert_ids:
            return self._count(run, Decision("duplicate", uuid, group_id))
        live = self._groups.get(group_id)
        if live is not None and live.created_at < run.window_start:
            live = None
        # Kibana compares with the alert as stored before this run's bulk create, not as this run updates it.
        if live is not None and live.run_id != run.run_id and run.ends_before.get(group_id, live.end) >= event_time:
            return self._count(run, Decision("already_suppressed", live.alert["kibana.alert.uuid"], group_id))
        per_execution = self.settings.duration_seconds is None
        if live is not None and (not per_execution or live.run_id == run.run_id):
            run.ends_before.setdefault(group_id, live.end)
            self._fold(run, live, event_time)
            return self._count(run, Decision("folded", live.alert["kibana.alert.uuid"], group_id))
        if not self._room(run):
            return self._count(run, Decision("dropped_max_signals", uuid, group_id))
        document = dict(alert)
        moment = iso_moment(event_time)
        document.update(
            {
                "kibana.alert.uuid": uuid,
                "kibana.alert.instance.id": group_id,
                "kibana.alert.suppression.terms": terms,
                "kibana.alert.suppression.start": moment,
                "kibana.alert.suppression.end": moment,
                "kibana.alert.suppression.docs_count": 0,
            }
        )
        self._groups[group_id] = _Group(document, run.started_at, run.run_id)
        self._alert_ids[uuid] = run.started_at
        run.created.append(document)
        return self._count(run, Decision("created", uuid, group_id))

    def _fold(self, run: _Run, group: _Group, event_time: datetime) -> None:
        document = group.alert
        document["kibana.alert.suppression.docs_count"] += 1
        if event_time > group.end:
            document["kibana.alert.suppression.end"] = iso_moment(event_time)
        # The start moves only within the run that created the alert (Kibana's getUpdatedSuppressionBoundaries).
        if group.run_id == run.run_id and event_time < _parse(document["kibana.alert.suppression.start"]):
            document["kibana.alert.suppression.start"] = iso_moment(event_time)
        document["kibana.alert.last_detected"] = iso_moment(run.started_at)
        if group.run_id != run.run_id:
            run.updated[document["kibana.alert.uuid"]] = document

    # -- state --

    def to_state(self) -> dict[str, Any]:
        """The state between runs as JSON-compatible data."""
        if self._run is not None:
            raise RuntimeError(f"run {self._run.run_id!r} is still open")
        return {
            "version": 1,
            "rule_uuid": self.rule_uuid,
            "space_id": self.space_id,
            "groups": {
                key: {"alert": group.alert, "created_at": iso_moment(group.created_at), "run_id": group.run_id}
                for key, group in self._groups.items()
            },
            "alert_ids": {uuid: iso_moment(moment) for uuid, moment in self._alert_ids.items()},
        }

    @classmethod
    def from_state(cls, settings: SuppressionSettings, state: Mapping[str, Any]) -> Suppressor:
        """A suppressor restored from :meth:`to_state`.

        Groups are keyed by instance id, a hash of the group-by fields and values: after a change of the rule's
        group-by fields no old group matches, as in Kibana; a change of duration keeps the groups.
        """
        if state.get("version") != 1:
            raise ValueError(f"unknown suppression state version {state.get('version')!r}")
        suppressor = cls(settings, rule_uuid=str(state["rule_uuid"]), space_id=str(state["space_id"]))
        suppressor._groups = {
            key: _Group(dict(group["alert"]), _parse(group["created_at"]), str(group["run_id"]))
            for key, group in state["groups"].items()
        }
        suppressor._alert_ids = {uuid: _parse(moment) for uuid, moment in state["alert_ids"].items()}
        return suppressor


def group_alert_uuid(base_uuid: str, terms: list[Term], settings: SuppressionSettings, group_count: int) -> str:
    """The id of the alert an event makes in one of its ``group_count`` groups: the plain alert id, except for
    per-value rule types, whose custom-query suppression hashes the terms into the id (an event can open several
    groups)."""
    if group_count == 1 and not settings.per_value:
        return base_uuid
    return hashlib.sha256(base_uuid.encode() + b"\x00" + _canonical(terms)).hexdigest()
