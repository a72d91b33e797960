"""Kibana's threshold rule type: matching events grouped by up to five fields, one alert per group that reaches a count
(and, optionally, a number of distinct values of another field), remembering which groups it already alerted on.

What one run does with its window ``[from, to]`` (elastic/kibana, ``x-pack/solutions/security/plugins/
security_solution/server/lib/detection_engine/rule_types/threshold/``):

- ``threshold.ts`` + ``utils.ts`` ``getSignalHistory``: the rule's *signal history* (per group: its terms and the
  original time of its last alert) keeps only entries whose last alert is later than ``from``; ``get_threshold_
  bucket_filters.ts`` turns each entry into ``must_not: [timestamp <= last AND term(field, "value") ...]``, so a
  group alerted before counts only its events after that alert's time. The filter applies to whole events: an
  event whose multi-valued field holds an alerted value is left out of every group it belongs to.
- ``find_threshold_signals.ts`` + ``build_threshold_aggregation.ts``: with fields, a composite aggregation, one
  ``terms`` source per field (multi-valued fields give the cross product, a missing field no group), pages of
  10,000 in key order, keeps buckets with ``doc_count >= value`` and, when a cardinality condition is set,
  ``cardinality(field) >= value`` (only the first condition is used); ``max_timestamp``/``min_timestamp`` are the
  max/min of the aggregatable timestamp. Buckets past max_signals are cut before any alert is written, with the
  "max alerts" warning. Without fields, one bucket: the search's ``hits.total.value``, which Elasticsearch counts
  up to 10,000 when ``track_total_hits`` is left unset (``build_events_query.ts`` leaves it unset), and the
  cardinality of the whole window.
- ``bulk_create_threshold_signals.ts``: an alert per bucket whose source is a synthetic document: ``@timestamp`` =
  the bucket's max timestamp (so ``kibana.alert.original_time`` is it), the bucket's key fields, and
  ``kibana.alert.threshold_result`` = ``{terms: [{field, value}], count, from: min timestamp, cardinality:
  [{field, value}]}``; its id is ``calculateThresholdSignalUuid`` = uuidv5(rule_id + startedAt ISO + fields joined
  by "," + the key's values sorted and joined by ",", namespace 0684ec03-...), so each run makes new ids.
- ``build_signal_history.ts``: after the run, every *created* alert updates its group's entry (hash of its sorted
  ``field:value`` terms) with its original time.

The signal history lives in a :class:`ThresholdStore` (in memory, or in ``watch``'s SQLite database, where Kibana
keeps it in the rule's task state); pruning drops what Kibana's ``getSignalHistory`` drops.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import orjson

from shellwatch.alerts.document import build_alert
from shellwatch.ecs import flatten_fields
from shellwatch.rules.model import Rule
from shellwatch.schedule.new_terms import Term, combinations, composite_order, term_values
from shellwatch.schedule.runs import (
    TIMESTAMP,
    EventClock,
    RuleSchedule,
    SearchStrategy,
    TimedEvents,
    Window,
    WindowResult,
)

MAX_FIELDS = 5
"""Kibana's limit on ``threshold.field``."""

TOTAL_HITS_COUNTED = 10_000
"""Elasticsearch's default ``track_total_hits``: a search counts its hits exactly up to this many."""

THRESHOLD_NAMESPACE = uuid.UUID("0684ec03-7201-4ee0-8ee0-3a3f6b2479b2")
"""``calculateThresholdSignalUuid``'s uuidv5 namespace."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class CardinalityCondition:
    field: str
    value: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ThresholdSettings:
    """Kibana's ``threshold`` object, normalized as Kibana normalizes it (``field`` always a list)."""

    fields: tuple[str, ...]
    value: int
    cardinality: tuple[CardinalityCondition, ...] = ()

    def __post_init__(self) -> None:
        if len(self.fields) > MAX_FIELDS:
            raise ValueError(f"threshold groups by at most {MAX_FIELDS} fields, not {len(self.fields)}")
        if self.value < 1:
            raise ValueError(f"threshold value {self.value} must be at least 1")
        for condition in self.cardinality:
            if condition.value < 0:
                raise ValueError(f"cardinality value {condition.value} must not be negative")

    @classmethod
    def from_mapping(cls, threshold: Mapping[str, Any]) -> ThresholdSettings:
        """From a rule's ``threshold``: ``field`` a string or a list (empty strings dropped), ``value``,
        ``cardinality`` a list of ``{field, value}``."""
        raw_field = threshold.get("field", [])
        names = [raw_field] if isinstance(raw_field, str) else list(raw_field or [])
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"threshold field {raw_field!r} is not a field name or a list of them")
        value = threshold.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"threshold value {value!r} is not an integer")
        conditions: list[CardinalityCondition] = []
        for entry in threshold.get("cardinality") or ():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("field"), str):
                raise ValueError(f"threshold cardinality entry {entry!r} needs a field and a value")
            limit = entry.get("value")
            if not isinstance(limit, int) or isinstance(limit, bool):
                raise ValueError(f"threshold cardinality value {limit!r} is not an integer")
            conditions.append(CardinalityCondition(field=entry["field"], value=limit))
        return cls(fields=tuple(n for n in names if n), value=value, cardinality=tuple(conditions))

    @classmethod
    def from_rule(cls, rule: Rule) -> ThresholdSettings:
        if rule.threshold is None:
            raise ValueError(f"rule {rule.rule_id} has no threshold")
        return cls.from_mapping(rule.threshold)

    @property
    def condition(self) -> CardinalityCondition | None:
        """The cardinality condition Kibana applies (only the first of the list)."""
        return self.cardinality[0] if self.cardinality else None


def js_string(value: Term) -> str:
    """A value as JavaScript's template literal writes it (what Kibana's term filters and ids are made of)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def terms_hash(terms: Sequence[tuple[str, Term]]) -> str:
    """``getThresholdTermsHash``: SHA-256 of the terms sorted by field, as ``field:value`` joined by ","."""
    text = ",".join(f"{field}:{js_string(value)}" for field, value in sorted(terms, key=lambda t: t[0]))
    return hashlib.sha256(text.encode()).hexdigest()


def threshold_alert_uuid(rule_id: str, started_at: int, fields: Sequence[str], values: Sequence[Term]) -> str:
    """``calculateThresholdSignalUuid``: uuidv5 of rule_id, the run's start (ISO), the fields and the key's values
    (JavaScript's default sort: as strings, by UTF-16 code units)."""
    key = ",".join(sorted((js_string(v) for v in values), key=lambda s: s.encode("utf-16-be", "surrogatepass")))
    return str(uuid.uuid5(THRESHOLD_NAMESPACE, f"{rule_id}{iso_millis(started_at)}{','.join(fields)}{key}"))


def iso_millis(millis: int) -> str:
    """Epoch milliseconds as JavaScript's ``toISOString``."""
    moment = _EPOCH + timedelta(milliseconds=millis)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------------------------
# Signal history


class ThresholdRecord(NamedTuple):
    """One group's entry in the signal history."""

    terms: tuple[tuple[str, Term], ...]
    last_signal: int
    """``lastSignalTimestamp``: the original time (the bucket's max timestamp) of the group's latest alert."""


class ThresholdStore(Protocol):
    """A threshold rule's signal history per scope (a rule with its fields), keyed by :func:`terms_hash`."""

    def history(self, scope: str) -> dict[str, ThresholdRecord]: ...

    def remember(self, scope: str, records: Iterable[ThresholdRecord]) -> None:
        """Set each group's entry (a later alert's time replaces an earlier one's)."""
        ...

    def prune(self, scope: str, keep_after: int) -> int:
        """Drop entries whose last alert is not later than ``keep_after``; how many were dropped."""
        ...


class MemoryThresholdStore:
    """:class:`ThresholdStore` in memory (hunt, backtest)."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, ThresholdRecord]] = {}

    def history(self, scope: str) -> dict[str, ThresholdRecord]:
        return dict(self._records.get(scope, {}))

    def remember(self, scope: str, records: Iterable[ThresholdRecord]) -> None:
        held = self._records.setdefault(scope, {})
        for record in records:
            key = terms_hash(record.terms)
            old = held.get(key)
            if old is None or record.last_signal > old.last_signal:
                held[key] = record

    def prune(self, scope: str, keep_after: int) -> int:
        held = self._records.get(scope, {})
        stale = [k for k, r in held.items() if r.last_signal <= keep_after]
        for key in stale:
            del held[key]
        return len(stale)


class SqliteThresholdStore:
    """:class:`ThresholdStore` in a caller's SQLite database, written within the caller's transactions (never
    committed here)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS threshold_signal_history ("
            " scope TEXT NOT NULL, terms_hash TEXT NOT NULL, terms TEXT NOT NULL, last_signal INTEGER NOT NULL,"
            " PRIMARY KEY (scope, terms_hash)) WITHOUT ROWID"
        )

    def history(self, scope: str) -> dict[str, ThresholdRecord]:
        rows = self._db.execute(
            "SELECT terms_hash, terms, last_signal FROM threshold_signal_history WHERE scope = ?", (scope,)
        )
        return {key: ThresholdRecord(tuple((f, v) for f, v in orjson.loads(terms)), last) for key, terms, last in rows}

    def remember(self, scope: str, records: Iterable[ThresholdRecord]) -> None:
        self._db.executemany(
            "INSERT INTO threshold_signal_history (scope, terms_hash, terms, last_signal) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (scope, terms_hash) DO UPDATE SET last_signal = excluded.last_signal"
            " WHERE excluded.last_signal > threshold_signal_history.last_signal",
            [
                (scope, terms_hash(r.terms), orjson.dumps([list(t) for t in r.terms]).decode(), r.last_signal)
                for r in records
            ],
        )

    def prune(self, scope: str, keep_after: int) -> int:
        cursor = self._db.execute(
            "DELETE FROM threshold_signal_history WHERE scope = ? AND last_signal <= ?", (scope, keep_after)
        )
        return cursor.rowcount


# ---------------------------------------------------------------------------------------------------------------
# Buckets


class ThresholdEvent(NamedTuple):
    """A matching event as the threshold rule reads it: its effective time and the fields it groups and counts."""

    effective: int
    seq: int
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class ThresholdBucket:
    """A group that reached the threshold in one window."""

    terms: tuple[tuple[str, Term], ...]
    count: int
    cardinality: int | None
    """Distinct values of the cardinality field, when the rule has a cardinality condition."""
    min_time: int
    max_time: int

    def result(self, settings: ThresholdSettings) -> dict[str, Any]:
        """``kibana.alert.threshold_result`` as Kibana writes it."""
        result: dict[str, Any] = {
            "terms": [{"field": f, "value": v} for f, v in self.terms],
            "count": self.count,
            "from": iso_millis(self.min_time),
        }
        condition = settings.condition
        if condition is not None:
            result["cardinality"] = [{"field": condition.field, "value": self.cardinality}]
        return result


def threshold_buckets(
    settings: ThresholdSettings,
    events: Iterable[ThresholdEvent],
    history: Mapping[str, ThresholdRecord] | None = None,
) -> list[ThresholdBucket]:
    """Every bucket of ``events`` (one window's matching events) that reaches the threshold, in key order, after the
    signal history's exclusions."""
    fields = settings.fields
    condition = settings.condition
    last_by_hash = {key: record.last_signal for key, record in (history or {}).items()}
    counts: dict[tuple[Term, ...], list[Any]] = {}
    for event in events:
        groups = combinations(event.values, fields) if fields else ((),)
        if not groups:
            continue
        if last_by_hash and any(
            last_by_hash.get(terms_hash(tuple(zip(fields, g, strict=True))), -1) >= event.effective
            for g in _string_groups(event.values, fields)
        ):
            continue
        distinct = term_values(event.values, condition.field) if condition is not None else ()
        for group in groups:
            held = counts.get(group)
            if held is None:
                counts[group] = [1, set(distinct), event.effective, event.effective]
            else:
                held[0] += 1
                held[1].update(distinct)
                held[2] = min(held[2], event.effective)
                held[3] = max(held[3], event.effective)
    buckets: list[ThresholdBucket] = []
    for group, (count, distinct_values, first, last) in counts.items():
        if not fields:
            count = min(count, TOTAL_HITS_COUNTED)
        cardinality = len(distinct_values) if condition is not None else None
        if count < settings.value:
            continue
        if condition is not None and (cardinality or 0) < condition.value:
            continue
        buckets.append(
            ThresholdBucket(
                terms=tuple(zip(fields, group, strict=True)),
                count=count,
                cardinality=cardinality,
                min_time=first,
                max_time=last,
            )
        )
    buckets.sort(key=lambda b: composite_order(tuple(v for _, v in b.terms)))
    return buckets


def _string_groups(values: Mapping[str, Any], fields: Sequence[str]) -> tuple[tuple[Term, ...], ...]:
    """The event's groups with values as the term filter compares them (strings), for the history lookup."""
    return tuple(tuple(js_string(v) for v in g) for g in combinations(values, fields))


# ---------------------------------------------------------------------------------------------------------------
# One rule's runs


def scope_of(rule: Rule, settings: ThresholdSettings) -> str:
    return f"{rule.rule_id}|{','.join(settings.fields)}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ThresholdFinding:
    """A window's buckets (cut to max_signals) with their alert ids, and how many reached the threshold."""

    buckets: tuple[ThresholdBucket, ...]
    alert_ids: tuple[str, ...]
    reached: int


class ThresholdState:
    """One threshold rule's signal history in a store, and the search of one window with it.

    Per window, oldest first: :meth:`search` with the window's matching events, write the alerts that are new,
    then :meth:`created` with the buckets whose alerts were written.
    """

    def __init__(self, rule: Rule, store: ThresholdStore, settings: ThresholdSettings | None = None) -> None:
        self.rule = rule
        self.settings = settings if settings is not None else ThresholdSettings.from_rule(rule)
        self.store = store
        self.scope = scope_of(rule, self.settings)

    def search(
        self, window_events: Iterable[ThresholdEvent], low: int, high: int, started: int, limit: int | None
    ) -> ThresholdFinding:
        """The window's buckets after the signal history's exclusions, cut to ``limit`` (max_signals; ``None``
        keeps them all, for a caller that cuts them itself)."""
        self.store.prune(self.scope, low)
        history = self.store.history(self.scope)
        in_window = (e for e in window_events if low <= e.effective <= high)
        buckets = threshold_buckets(self.settings, in_window, history)
        kept = tuple(buckets if limit is None else buckets[:limit])
        ids = tuple(
            threshold_alert_uuid(self.rule.rule_id, started, self.settings.fields, [v for _, v in b.terms])
            for b in kept
        )
        return ThresholdFinding(buckets=kept, alert_ids=ids, reached=len(buckets))

    def created(self, buckets: Iterable[ThresholdBucket]) -> None:
        # Kibana records the terms as the alert holds them and compares them as strings in the term filter.
        self.store.remember(
            self.scope,
            (ThresholdRecord(tuple((f, js_string(v)) for f, v in b.terms), b.max_time) for b in buckets),
        )


def threshold_alert(
    rule: Rule, settings: ThresholdSettings, bucket: ThresholdBucket, *, started_at: int, detected_at: datetime
) -> dict[str, Any]:
    """The alert document of a bucket, shaped as Kibana writes it."""
    source: dict[str, Any] = {TIMESTAMP: iso_millis(bucket.max_time)}
    source.update(bucket.terms)
    alert_id = threshold_alert_uuid(rule.rule_id, started_at, settings.fields, [v for _, v in bucket.terms])
    document = build_alert(rule, source, origin=None, detected_at=detected_at)
    document["kibana.alert.uuid"] = alert_id
    document["kibana.alert.threshold_result"] = bucket.result(settings)
    document["kibana.alert.ancestors"] = [{"id": alert_id, "type": "event", "index": ",".join(rule.index), "depth": 0}]
    return document


def event_from_alert(
    alert: Mapping[str, Any], settings: ThresholdSettings, clock: EventClock, seq: int
) -> ThresholdEvent | None:
    """A hunt alert as a threshold event; ``None`` without a usable timestamp."""
    effective = clock.alert_effective(alert)
    if effective is None:
        return None
    wanted = list(settings.fields)
    if settings.condition is not None:
        wanted.append(settings.condition.field)
    return ThresholdEvent(effective, seq, flatten_fields(alert, wanted))


class ThresholdSearch:
    """The replay's :class:`~shellwatch.schedule.runs.RuleSearch` for a threshold rule over a hunt's alerts."""

    strategy: SearchStrategy = "aggregation"

    def __init__(
        self,
        rule: Rule,
        alerts: Iterable[Mapping[str, Any]],
        schedule: RuleSchedule,
        store: ThresholdStore | None = None,
    ) -> None:
        self.state = ThresholdState(rule, store if store is not None else MemoryThresholdStore())
        clock = EventClock(schedule)
        settings = self.state.settings
        self.matches = TimedEvents(alerts, lambda alert, seq: event_from_alert(alert, settings, clock, seq))
        self.untimed = self.matches.untimed
        self.times = self.matches.times
        self.found: dict[str, tuple[ThresholdBucket, int]] = {}
        self._pending: dict[str, ThresholdBucket] = {}
        self.reached = 0

    def search(self, window: Window) -> WindowResult:
        in_window = self.matches.in_window(window)
        # Every bucket is returned: the replay cuts them at max_signals ("aggregation") and reports the rest.
        finding = self.state.search(in_window, window.low, window.high, window.started_at, None)
        self.reached += finding.reached
        self._pending = dict(zip(finding.alert_ids, finding.buckets, strict=True))
        for alert_id, bucket in self._pending.items():
            self.found.setdefault(alert_id, (bucket, window.started_at))
        return WindowResult(matches=len(in_window), found=list(finding.alert_ids))

    def created(self, window: Window, alert_ids: Sequence[str]) -> None:
        self.state.created(self._pending[a] for a in alert_ids)

    def alert(self, alert_id: str, detected_at: datetime) -> dict[str, Any]:
        bucket, started = self.found[alert_id]
        return threshold_alert(
            self.state.rule, self.state.settings, bucket, started_at=started, detected_at=detected_at
        )
