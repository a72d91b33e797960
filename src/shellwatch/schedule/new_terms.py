"""Kibana's new_terms rule type: a value combination of ``new_terms_fields`` alerts the first time it appears.

What one run does (elastic/kibana, ``x-pack/solutions/security/plugins/security_solution/server/lib/
detection_engine/rule_types/new_terms/``: ``create_new_terms_alert_type.ts``, ``build_new_terms_aggregation.ts``,
``multi_terms_composite.ts``, ``utils.ts``, ``wrap_new_terms_alerts.ts``, ``README.md``):

- Phase 1 collects the value combinations of the matching events in the run's window ``[from, to]`` with a
  composite aggregation: one ``terms`` source per field, so a multi-valued field contributes each of its values
  and several multi-valued fields their cross product; an event missing any of the fields (or holding only nulls)
  has no combination (``missing_bucket`` is off). Buckets come in key order, ascending, field by field.
- Phase 2 searches ``[history_window_start, to]`` (``history_window_start`` is date math resolved with ``now`` =
  ``to``) for those combinations and keeps those whose earliest matching event is strictly later than ``from``
  (``bucket_selector``: ``params.first_seen_value > params.start_time``): a combination seen at or before ``from``
  inside the history window is not new. ``validateHistoryWindowStart`` rejects a history start not earlier than
  ``from``.
- Phase 3 fetches, per new combination, the earliest matching event (``top_hits`` size 1, sorted by the
  aggregatable timestamp: the override field, else ``@timestamp``). That event is the alert's source; the alert
  carries ``kibana.alert.new_terms`` = the combination's values, in field order; its id is a hash of the source
  document, the rule and the values, so one event holding two new combinations makes two alerts, and a later run
  that finds the same first event again makes the same id (skipped as a duplicate).
- Alerts are bulk-created until max_signals new alerts exist (``maxAlerts: maxSignals - createdSignalsCount``):
  existing ids do not use up the budget, so runs replay with the ``search_after`` strategy.

Combinations per event are capped at :data:`MAX_COMBINATIONS` (the first ones in key order). Kibana 8.4-8.8 built
multi-field combinations in a runtime field whose script stopped after 100 (``emitLimit``, Elasticsearch's limit on
values a runtime field may emit); today's composite aggregation has no cap of its own, but an attacker-written event
with three 1,000-valued fields must not cost 10^9 combinations here.

History as state. Kibana searches its index on every run; shellwatch keeps, per rule and combination, the times it
has seen the combination as *bursts*: ``(first_seen, last_seen)`` rows whose sightings are never more than ``D`` =
``from - history_window_start`` apart (6d 23h 51m for ``now-7d`` with ``from: now-9m``). "Some sighting lies in
``[history_start, from]``" then holds exactly when a burst has ``first_seen <= from`` and ``last_seen >=
history_start`` (a burst reaching back past ``history_start`` has, by its construction, a sighting less than ``D``
after the last one before ``history_start``). A busy combination is one row; a combination seen again after a week
of silence starts a second. Bursts ending before every history window a later run can search are pruned. The
store is fed every matching event, whatever its time and in any order, so the answer equals Kibana's search over an
index holding the same events; they differ only where the index and the store hold different events:

- an event that arrives (is read) after the run that needed it: Kibana's search would not have seen it either if it
  had been indexed as late; the store sees it from the run after it is read, as the index would;
- history older than what the store was given: Kibana's first run sees up to ``history_window_start`` of indexed
  data, ``watch`` only what it has read since its state was created (hand it the older logs first);
- index retention (ILM deleting old indices) or deleted documents, which the store does not forget;
- field mapping details Elasticsearch applies and the store does not: ``ignore_above`` (keyword values longer than
  1,024 characters are not indexed, so such an event has no combination in Kibana) and keyword coercion (the number
  ``1`` and the string ``"1"`` are one term in a keyword field, two here);
- changing a rule's fields or history window: Kibana searches afresh, the store starts a new scope.
"""

from __future__ import annotations

import hashlib
import sqlite3
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice, product
from typing import Any, NamedTuple, Protocol

import orjson

from shellwatch.alerts.document import rule_uuid
from shellwatch.ecs import flatten_fields, values_of
from shellwatch.rules.model import Rule, duration_seconds
from shellwatch.schedule.runs import (
    MAX_RULE_GAP_RATIO,
    EventClock,
    RuleSchedule,
    SearchStrategy,
    TimedEvents,
    Window,
    WindowResult,
    lookback_of,
)

MAX_COMBINATIONS = 100
"""Value combinations one event may contribute (the first in key order)."""

Term = str | int | float | bool
Terms = tuple[Term, ...]


def _term_rank(value: Term) -> tuple[int, Any]:
    """Composite aggregation key order: numbers by value, strings by their UTF-8 bytes (a keyword's order)."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    return (1, value.encode("utf-8", "surrogatepass"))


def term_values(event: Mapping[str, Any], field: str) -> list[Term]:
    """The distinct scalar values of ``field`` in a flat event, in key order (as doc values hold them)."""
    seen: dict[Any, Term] = {}
    for value in values_of(event, field):
        if isinstance(value, str | int | float) and (not isinstance(value, float) or value == value):
            seen.setdefault((type(value) is bool, value), value)
    return sorted(seen.values(), key=_term_rank)


def combinations(event: Mapping[str, Any], fields: Sequence[str], limit: int = MAX_COMBINATIONS) -> tuple[Terms, ...]:
    """The value combinations of ``fields`` in a flat event, in key order: the cross product of each field's
    values, none when a field is missing, at most ``limit``."""
    per_field = [term_values(event, field) for field in fields]
    if not all(per_field):
        return ()
    return tuple(islice(product(*per_field), limit))


def terms_key(terms: Terms) -> str:
    """A combination as stored and hashed: its values as a JSON array (types kept)."""
    return orjson.dumps(list(terms)).decode()


def composite_order(terms: Terms) -> tuple[tuple[int, Any], ...]:
    """Sort key of a combination in the composite aggregation's order."""
    return tuple(_term_rank(value) for value in terms)


def new_terms_alert_uuid(rule: Rule, identity: str, terms: Terms) -> str:
    """``kibana.alert.uuid`` of a new_terms alert: a hash of the source event, the rule and the new values, as
    ``wrap_new_terms_alerts.ts`` derives it (``objectHash([_index, _id, _version, rule, newTerms])``)."""
    return hashlib.sha256(f"{identity}\x00{rule_uuid(rule)}\x00{terms_key(terms)}".encode()).hexdigest()


def new_terms_alert(alert: Mapping[str, Any], rule: Rule, terms: Terms) -> dict[str, Any]:
    """The new_terms alert for ``terms`` made from the alert :func:`~shellwatch.alerts.document.build_alert` built
    for its source event: its id re-derived with the values and ``kibana.alert.new_terms`` added."""
    document = dict(alert)
    document["kibana.alert.uuid"] = new_terms_alert_uuid(rule, alert_identity(alert), terms)
    document["kibana.alert.new_terms"] = list(terms)
    return document


def alert_identity(alert: Mapping[str, Any]) -> str:
    """The source event's identity recorded in an alert (its first ancestor's id)."""
    ancestors = alert.get("kibana.alert.ancestors")
    if isinstance(ancestors, list) and ancestors and isinstance(ancestors[0], Mapping):
        return str(ancestors[0].get("id"))
    return str(alert.get("kibana.alert.uuid"))


# ---------------------------------------------------------------------------------------------------------------
# The store of sightings


class NewTermsStore(Protocol):
    """Sightings of value combinations per scope (a rule with its fields and history window), as bursts.

    ``span`` is the D of the module docstring; a scope must always be given the same one. :meth:`seen` answers
    exactly only for ``end - start == span``.
    """

    def record(self, scope: str, sightings: Iterable[tuple[str, int]], span: int) -> None:
        """Add sightings (combination key, epoch milliseconds)."""
        ...

    def seen(self, scope: str, keys: Iterable[str], start: int, end: int) -> set[str]:
        """The keys among ``keys`` with a sighting in ``[start, end]``."""
        ...

    def prune(self, scope: str, before: int) -> int:
        """Forget bursts that ended before ``before``; how many were forgotten."""
        ...


def _bursts_of(times: Iterable[int], span: int) -> list[tuple[int, int]]:
    """Sorted times grouped into bursts whose consecutive sightings are at most ``span`` apart."""
    bursts: list[tuple[int, int]] = []
    for moment in sorted(times):
        if bursts and moment - bursts[-1][1] <= span:
            bursts[-1] = (bursts[-1][0], moment)
        else:
            bursts.append((moment, moment))
    return bursts


def _grouped(sightings: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = {}
    for key, moment in sightings:
        by_key.setdefault(key, []).append(moment)
    return by_key


class MemoryNewTermsStore:
    """:class:`NewTermsStore` in memory (hunt, backtest)."""

    def __init__(self) -> None:
        self._bursts: dict[str, dict[str, list[tuple[int, int]]]] = {}

    def record(self, scope: str, sightings: Iterable[tuple[str, int]], span: int) -> None:
        keys = self._bursts.setdefault(scope, {})
        for key, times in _grouped(sightings).items():
            bursts = keys.get(key, [])
            for first, last in _bursts_of(times, span):
                # Bursts closer than the span to this one (or overlapping it) become one with it.
                near = [b for b in bursts if b[0] - span <= last and b[1] + span >= first]
                bursts = [b for b in bursts if b not in near]
                insort(bursts, (min([first, *(b[0] for b in near)]), max([last, *(b[1] for b in near)])))
            keys[key] = bursts

    def seen(self, scope: str, keys: Iterable[str], start: int, end: int) -> set[str]:
        known = self._bursts.get(scope, {})
        return {k for k in keys if any(f <= end and l_ >= start for f, l_ in known.get(k, ()))}

    def prune(self, scope: str, before: int) -> int:
        known = self._bursts.get(scope, {})
        forgotten = 0
        for key in list(known):
            kept = [b for b in known[key] if b[1] >= before]
            forgotten += len(known[key]) - len(kept)
            if kept:
                known[key] = kept
            else:
                del known[key]
        return forgotten

    def bursts(self, scope: str, key: str) -> list[tuple[int, int]]:
        """The stored bursts of one combination (for inspection)."""
        return list(self._bursts.get(scope, {}).get(key, ()))


class SqliteNewTermsStore:
    """:class:`NewTermsStore` in a caller's SQLite database (``watch``'s state).

    Writes happen inside the caller's transaction and are never committed here, so the store's state and the
    caller's (read positions, alerts written) move together, even across a kill -9.
    """

    _CHUNK = 400

    # One index, the primary key: lookups are by (scope, terms); a second index on last_seen (for pruning, once a
    # run) would tempt the planner away from it for every lookup.

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS new_terms_seen ("
            " scope TEXT NOT NULL, terms TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
            " PRIMARY KEY (scope, terms, first_seen)) WITHOUT ROWID"
        )

    def record(self, scope: str, sightings: Iterable[tuple[str, int]], span: int) -> None:
        for key, times in _grouped(sightings).items():
            for first, last in _bursts_of(times, span):
                rows = self._db.execute(
                    "SELECT first_seen, last_seen FROM new_terms_seen"
                    " WHERE scope = ? AND terms = ? AND first_seen <= ? AND last_seen >= ?",
                    (scope, key, last + span, first - span),
                ).fetchall()
                if len(rows) == 1:
                    old_first, old_last = rows[0]
                    if old_first <= first and last <= old_last:
                        continue  # a repeat inside a known burst: nothing changes
                    self._db.execute(
                        "UPDATE new_terms_seen SET first_seen = ?, last_seen = ?"
                        " WHERE scope = ? AND terms = ? AND first_seen = ?",
                        (min(first, old_first), max(last, old_last), scope, key, old_first),
                    )
                    continue
                if rows:
                    first = min([first, *(r[0] for r in rows)])
                    last = max([last, *(r[1] for r in rows)])
                    self._db.executemany(
                        "DELETE FROM new_terms_seen WHERE scope = ? AND terms = ? AND first_seen = ?",
                        [(scope, key, r[0]) for r in rows],
                    )
                self._db.execute(
                    "INSERT INTO new_terms_seen (scope, terms, first_seen, last_seen) VALUES (?, ?, ?, ?)",
                    (scope, key, first, last),
                )

    def seen(self, scope: str, keys: Iterable[str], start: int, end: int) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for offset in range(0, len(wanted), self._CHUNK):
            chunk = wanted[offset : offset + self._CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT DISTINCT terms FROM new_terms_seen WHERE scope = ? AND terms IN ({marks})"
                " AND first_seen <= ? AND last_seen >= ?",
                (scope, *chunk, end, start),
            )
            found.update(r[0] for r in rows)
        return found

    def prune(self, scope: str, before: int) -> int:
        cursor = self._db.execute("DELETE FROM new_terms_seen WHERE scope = ? AND last_seen < ?", (scope, before))
        return cursor.rowcount


# ---------------------------------------------------------------------------------------------------------------
# One rule's runs


def _date_math_millis(text: str) -> int:
    """``now-7d`` -> 7 days in milliseconds (the distance back from ``now``)."""
    span = lookback_of(text)
    return span // timedelta(milliseconds=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class NewTermsSettings:
    """A new_terms rule's parameters as its runs use them, in milliseconds."""

    fields: tuple[str, ...]
    history: int
    """``to - history_window_start`` (7 days for ``now-7d``)."""
    lookback: int
    """``to - from``."""
    interval: int

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a new_terms rule needs new_terms_fields")
        if self.history <= self.lookback:
            raise ValueError(
                "History window size is smaller than rule interval + additional lookback, "
                "'historyWindowStart' must be earlier than 'from'"
            )

    @classmethod
    def from_rule(cls, rule: Rule) -> NewTermsSettings:
        if rule.history_window_start is None:
            raise ValueError(f"rule {rule.rule_id} has no history_window_start")
        return cls(
            fields=tuple(rule.new_terms_fields),
            history=_date_math_millis(rule.history_window_start),
            lookback=_date_math_millis(rule.from_),
            interval=duration_seconds(rule.interval) * 1000,
        )

    @property
    def span(self) -> int:
        """D: the length of the history searched before a window (``from - history_window_start``)."""
        return self.history - self.lookback


class NewTermsEvent(NamedTuple):
    """A matching event as the new_terms rule reads it."""

    effective: int
    """The aggregatable timestamp (epoch milliseconds): what the range filter and ``min``/``top_hits`` use."""
    seq: int
    """Input order, breaking ties between events at the same millisecond."""
    identity: str
    combinations: tuple[Terms, ...]
    source: Any
    """What the caller builds the alert from (an alert document, a flat event)."""


@dataclass(frozen=True, slots=True)
class NewTerm:
    """A combination new in a window, with the first matching event that has it."""

    terms: Terms
    alert_id: str
    event: NewTermsEvent


def scope_of(rule: Rule, settings: NewTermsSettings) -> str:
    """The store scope of a rule: its id, fields and history span (changing either starts a fresh history)."""
    return f"{rule.rule_id}|{','.join(settings.fields)}|{settings.span}"


class NewTermsState:
    """One new_terms rule's history in a store, and the search of one window against it.

    Live use (``watch``): :meth:`observe` every matching event as it is read (any order); at each run, for each
    window, :meth:`search` with the window's matching events; then :meth:`prune` with the run's start.
    """

    def __init__(self, rule: Rule, store: NewTermsStore, settings: NewTermsSettings | None = None) -> None:
        self.rule = rule
        self.settings = settings if settings is not None else NewTermsSettings.from_rule(rule)
        self.store = store
        self.scope = scope_of(rule, self.settings)

    def observe(self, events: Iterable[NewTermsEvent]) -> None:
        self.store.record(
            self.scope,
            ((terms_key(t), e.effective) for e in events for t in e.combinations),
            self.settings.span,
        )

    def search(self, window_events: Iterable[NewTermsEvent], low: int, high: int) -> list[NewTerm]:
        """The combinations new in ``[low, high]``, in composite key order, each with its first event.

        ``window_events`` are the window's matching events (others are ignored); all of them, and every matching
        event of the history window, must have been observed.
        """
        first: dict[str, tuple[Terms, NewTermsEvent]] = {}
        for event in window_events:
            if not low <= event.effective <= high:
                continue
            for terms in event.combinations:
                key = terms_key(terms)
                held = first.get(key)
                if held is None or (event.effective, event.seq) < (held[1].effective, held[1].seq):
                    first[key] = (terms, event)
        old = self.store.seen(self.scope, first, low - self.settings.span, low)
        found = [
            NewTerm(terms, new_terms_alert_uuid(self.rule, event.identity, terms), event)
            for key, (terms, event) in first.items()
            if key not in old
        ]
        found.sort(key=lambda n: composite_order(n.terms))
        return found

    def prune(self, started: int) -> int:
        """Forget what no later run can search: bursts ending before the oldest history a run after ``started``
        may reach (its catch-up windows go back at most MAX_RULE_GAP_RATIO intervals)."""
        horizon = started - self.settings.history - (MAX_RULE_GAP_RATIO + 1) * self.settings.interval
        return self.store.prune(self.scope, horizon)


def event_from_alert(
    alert: Mapping[str, Any], fields: Sequence[str], clock: EventClock, seq: int
) -> NewTermsEvent | None:
    """A hunt alert (:func:`~shellwatch.alerts.document.build_alert`) as a new_terms event; ``None`` when it has no
    usable timestamp (no range filter would let it through)."""
    effective = clock.alert_effective(alert)
    if effective is None:
        return None
    values = flatten_fields(alert, fields)
    return NewTermsEvent(effective, seq, alert_identity(alert), combinations(values, fields), alert)


class NewTermsSearch:
    """The replay's :class:`~shellwatch.schedule.runs.RuleSearch` for a new_terms rule over a hunt's alerts.

    Every matching event is put in the store first: a backtest's logs stand for an index that held them all.
    """

    strategy: SearchStrategy = "search_after"

    def __init__(
        self,
        rule: Rule,
        alerts: Iterable[Mapping[str, Any]],
        schedule: RuleSchedule,
        store: NewTermsStore | None = None,
    ) -> None:
        self.state = NewTermsState(rule, store if store is not None else MemoryNewTermsStore())
        clock = EventClock(schedule)
        fields = self.state.settings.fields
        self.matches = TimedEvents(alerts, lambda alert, seq: event_from_alert(alert, fields, clock, seq))
        self.untimed = self.matches.untimed
        self.times = self.matches.times
        self.combinations = len({terms_key(t) for e in self.matches.events for t in e.combinations})
        self.found: dict[str, NewTerm] = {}
        self.state.observe(self.matches.events)

    def search(self, window: Window) -> WindowResult:
        in_window = self.matches.in_window(window)
        found = self.state.search(in_window, window.low, window.high)
        for new in found:
            self.found.setdefault(new.alert_id, new)
        return WindowResult(matches=len(in_window), found=[n.alert_id for n in found])

    def created(self, window: Window, alert_ids: Sequence[str]) -> None:
        """new_terms keeps no state of its alerts: the history is the events."""

    def alert(self, alert_id: str) -> dict[str, Any]:
        """The alert document of an alert id a window found."""
        new = self.found[alert_id]
        return new_terms_alert(new.event.source, self.state.rule, new.terms)


# ---------------------------------------------------------------------------------------------------------------
# A hunt: no schedule


def first_appearances(
    rule: Rule,
    alerts: Iterable[Mapping[str, Any]],
    *,
    timestamp_override: str | None = None,
    on_untimed: Callable[[Mapping[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """A hunt's meaning of a new_terms rule: in time order, a combination alerts when no matching event had it
    in the preceding history span (``to - history_window_start``, 7 days for ``now-7d``).

    ``alerts`` are the rule's hunt alerts in any order (input order); the first event of each appearance becomes
    a new_terms alert (:func:`new_terms_alert`), yielded in time order once the input is exhausted. Ties at one
    millisecond go to the earlier input. The first appearance in the logs alerts: nothing older is known, as for a
    Kibana rule over an index holding only these logs. A scheduled Kibana rule re-alerts a combination after a
    silence of between ``history - from - interval`` and ``history``, depending on where the runs fall; the hunt
    takes the full history span. Alerts without a usable timestamp are passed to ``on_untimed`` (Kibana's range
    filter never lets such an event through).

    Memory: every sighting as (time, input position) per combination, plus the alerts still possibly first; an
    alert is dropped as soon as an earlier sighting within the span arrives, so a command line repeated every
    minute keeps one candidate, not thousands.
    """
    settings = NewTermsSettings.from_rule(rule)
    span = settings.history
    clock = EventClock(
        RuleSchedule(
            interval=timedelta(milliseconds=settings.interval),
            lookback=timedelta(milliseconds=settings.lookback),
            timestamp_override=timestamp_override if timestamp_override is not None else rule.timestamp_override,
        )
    )
    sightings: dict[str, list[tuple[int, int]]] = {}
    candidates: dict[str, dict[tuple[int, int], tuple[Terms, Mapping[str, Any]]]] = {}
    for seq, alert in enumerate(alerts):
        event = event_from_alert(alert, settings.fields, clock, seq)
        if event is None:
            if on_untimed is not None:
                on_untimed(alert)
            continue
        moment = (event.effective, seq)
        for terms in event.combinations:
            key = terms_key(terms)
            seen = sightings.setdefault(key, [])
            position = bisect_left(seen, moment)
            earlier_within = position > 0 and seen[position - 1][0] >= event.effective - span
            seen.insert(position, moment)
            pending = candidates.setdefault(key, {})
            if not earlier_within:
                pending[moment] = (terms, alert)
            # This sighting silences the later candidates it precedes by no more than the span.
            for later in [m for m in pending if moment < m and m[0] <= event.effective + span]:
                del pending[later]
    chosen = sorted(
        ((m, terms, alert) for pending in candidates.values() for m, (terms, alert) in pending.items()),
        key=lambda c: (c[0], composite_order(c[1])),
    )
    for _, terms, alert in chosen:
        yield new_terms_alert(alert, rule, terms)
