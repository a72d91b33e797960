"""new_terms rules in ``watch``: their history in the state database, measured in event time.

A watched rule's run reads the events ingested since its previous run, not a window of wall-clock time (see
:mod:`shellwatch.watch.schedule`), so a new_terms rule cannot take its history window from the run's clock: logs
read today may be a week old, and a backlog read in one run may span months. History is therefore measured on the
events' own time, the rule's aggregatable timestamp (``timestamp_override``, else ``@timestamp``, as Kibana's range
filter and ``min`` aggregation read it): **a value combination of ``new_terms_fields`` alerts on an event at time
``t`` when no matching event had it in ``[t - H, t)``**, with ``H = to - history_window_start`` (7 days for
``now-7d``). That is the meaning :func:`shellwatch.schedule.new_terms.first_appearances` gives a hunt; a scheduled
Kibana rule re-alerts after a silence of between ``H - from - interval`` and ``H`` depending on where its runs fall,
the watcher after exactly ``H``.

The history is :class:`~shellwatch.schedule.new_terms.SqliteNewTermsStore` in the watch database. Every matching
event is observed as it is read, in the transaction that stores the input's new read position, so the history and
the positions never disagree after a kill; a run asks the store, for each pending event and combination, whether a
sighting lies in ``[t - H, t - 1 ms]`` (a query at least as long as the store's burst span is exact). Events of one
run are taken in time order, and a combination already alerted by this run at the same millisecond is not alerted
again (ties go to the earlier input, as in a hunt).

Where this differs from Kibana, on purpose or by necessity:

- an event that arrives after a later event of its combination was alerted (out of order) alerts too when nothing
  precedes it within ``H``: the earlier alert cannot be withdrawn. Kibana would never search such an event, whose
  timestamp lies behind its run windows;
- two events of one combination at the same millisecond, read by different runs, may both alert;
- pruning keeps bursts that end up to ``2 H`` before the newest event time observed (capped by the wall clock, so
  a forged far-future timestamp cannot wipe the history): an event later than that lag finds no history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shellwatch.alerts.document import event_identity
from shellwatch.rules.model import Rule
from shellwatch.schedule.new_terms import (
    NewTermsEvent,
    NewTermsState,
    SqliteNewTermsStore,
    Terms,
    combinations,
    new_terms_alert_uuid,
    terms_key,
)
from shellwatch.schedule.runs import EventClock, RuleSchedule
from shellwatch.watch.state import PendingMatch

PRUNE_LAG_HISTORIES = 2
"""Bursts are kept while they end less than this many history spans before the newest observed event time."""


@dataclass(frozen=True, slots=True)
class NewPair:
    """A combination new at a pending event, and the id of the alert it makes."""

    match: PendingMatch
    terms: Terms
    alert_id: str
    effective: int


@dataclass(frozen=True, slots=True)
class NewTermsFinding:
    """What one run found among its pending events."""

    new: list[NewPair]
    repeats: int
    """(event, combination) pairs seen within the history window before: no alert."""
    without_terms: int
    """Events with no usable timestamp, or missing a new_terms field: Kibana's search never yields them."""


class WatchedNewTerms:
    """One new_terms rule's history in the watch database: observe at ingestion, find new pairs at each run."""

    def __init__(self, rule: Rule, connection: sqlite3.Connection) -> None:
        self.rule = rule
        self.history = NewTermsState(rule, SqliteNewTermsStore(connection))
        self.window = self.history.settings.history
        self._clock = EventClock(RuleSchedule.from_rule(rule))
        self._db = connection
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS watch_new_terms_newest (scope TEXT PRIMARY KEY, newest INTEGER NOT NULL)"
        )

    def sighting(self, event: Mapping[str, Any]) -> NewTermsEvent | None:
        """A flat event as the rule reads it; None without a timestamp or a value for every field."""
        effective = self._clock.effective(event)
        if effective is None:
            return None
        found = combinations(event, self.history.settings.fields)
        if not found:
            return None
        return NewTermsEvent(effective, 0, "", found, None)

    def observe(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Add matching events to the history (inside the transaction that stores their read position)."""
        sightings = [s for s in map(self.sighting, events) if s is not None]
        if not sightings:
            return
        self.history.observe(sightings)
        self._db.execute(
            "INSERT INTO watch_new_terms_newest VALUES (?, ?)"
            " ON CONFLICT (scope) DO UPDATE SET newest = max(newest, excluded.newest)",
            (self.history.scope, max(s.effective for s in sightings)),
        )

    def find(self, pending: Sequence[PendingMatch]) -> NewTermsFinding:
        """The pairs new at the pending events (all of them observed already), in event-time order."""
        timed: list[tuple[int, int, PendingMatch, NewTermsEvent]] = []
        without_terms = 0
        for match in pending:
            sighting = self.sighting(match.event)
            if sighting is None:
                without_terms += 1
            else:
                timed.append((sighting.effective, match.seq, match, sighting))
        timed.sort(key=lambda item: (item[0], item[1]))
        alerted_at: dict[str, int] = {}
        found: list[NewPair] = []
        repeats = 0
        store, scope = self.history.store, self.history.scope
        for effective, _, match, sighting in timed:
            identity = event_identity(match.event, match.origin)
            for terms in sighting.combinations:
                key = terms_key(terms)
                if alerted_at.get(key) == effective or store.seen(
                    scope, (key,), effective - self.window, effective - 1
                ):
                    repeats += 1
                    continue
                alerted_at[key] = effective
                found.append(NewPair(match, terms, new_terms_alert_uuid(self.rule, identity, terms), effective))
        return NewTermsFinding(found, repeats, without_terms)

    def prune(self, now_ms: int) -> int:
        """Forget bursts no event read from now on is expected to need; how many were forgotten."""
        row = self._db.execute(
            "SELECT newest FROM watch_new_terms_newest WHERE scope = ?", (self.history.scope,)
        ).fetchone()
        if row is None:
            return 0
        newest = min(int(row[0]), now_ms)
        return self.history.store.prune(self.history.scope, newest - PRUNE_LAG_HISTORIES * self.window)
