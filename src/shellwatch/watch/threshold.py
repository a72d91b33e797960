"""Threshold rules in ``watch``: Kibana's run windows replayed in event time, with the signal history in the state
database.

A threshold rule counts the matching events of a time window, ``[to - lookback, to]``; a watched rule's run, which
reads what was ingested since its previous run, has no such window of its own. The watcher therefore keeps the
rule's matching events (the grouped and counted fields and their time, nothing else) and searches them the way
Kibana's runs would have searched an index holding them: windows end on multiples of the rule's interval in event
time (``to = k * interval`` since the epoch, ``from = to - lookback``, both bounds inclusive), each window is searched
once, oldest first, with :class:`~shellwatch.schedule.threshold.ThresholdState` (composite buckets, count and
cardinality conditions, buckets cut to max_signals before any alert is written, and the signal history, so a group
alerted in one window counts only its later events in the next). Kibana's ``startedAt`` of a window is its ``to``,
which makes the alert ids (``calculateThresholdSignalUuid``) deterministic across a kill.

When is a window complete? While inputs still deliver chunks, the event clock is the newest event time read
(events arrive roughly in time order, so a window ending before it has received its events); once every input is
read to its end, it is the wall clock, as for Kibana. Both are capped by the wall clock, so a forged future
timestamp cannot close windows early; such an event waits until its window ends. An event whose every window was
searched before it was read is *late*: Kibana would not search it either (its timestamp lies behind every later
run's look-back); the run reports how many.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shellwatch.rules.model import Rule, duration_seconds
from shellwatch.schedule.runs import EventClock, RuleSchedule, lookback_of
from shellwatch.schedule.threshold import (
    SqliteThresholdStore,
    ThresholdEvent,
    ThresholdState,
    threshold_alert,
)
from shellwatch.watch.state import PendingMatch


@dataclass(slots=True)
class ThresholdRun:
    """What one run of a watched threshold rule did."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    windows: int = 0
    """Windows searched (only windows holding events are searched: an empty one finds nothing)."""
    reached: int = 0
    """Buckets that reached the threshold, before max_signals."""
    dropped: int = 0
    """Buckets cut by max_signals."""
    late: int = 0
    """Events read after every window holding them was searched."""
    untimed: int = 0
    """Events with no usable timestamp (no range filter lets them through)."""


class WatchedThreshold:
    """One threshold rule's kept events, searched-up-to mark and signal history in the watch database."""

    def __init__(self, rule: Rule, connection: sqlite3.Connection) -> None:
        self.rule = rule
        self.state = ThresholdState(rule, SqliteThresholdStore(connection))
        self.interval = duration_seconds(rule.interval) * 1000
        self.lookback = int(lookback_of(rule.from_).total_seconds() * 1000)
        self._clock = EventClock(RuleSchedule.from_rule(rule))
        settings = self.state.settings
        self._fields = list(settings.fields) + ([settings.condition.field] if settings.condition else [])
        self._db = connection
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS watch_threshold_event (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " scope TEXT NOT NULL, effective INTEGER NOT NULL, event_values BLOB NOT NULL)"
        )
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS watch_threshold_event_time ON watch_threshold_event (scope, effective)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS watch_threshold_cursor (scope TEXT PRIMARY KEY, searched_to INTEGER NOT NULL)"
        )

    @property
    def scope(self) -> str:
        return self.state.scope

    def searched_to(self) -> int | None:
        """The end of the last window searched (event time, epoch ms), or None before the first."""
        row = self._db.execute(
            "SELECT searched_to FROM watch_threshold_cursor WHERE scope = ?", (self.scope,)
        ).fetchone()
        return None if row is None else int(row[0])

    def run(
        self,
        pending: Sequence[PendingMatch],
        *,
        now_ms: int,
        inputs_idle: bool,
        limit: int,
        detected_at: datetime,
    ) -> ThresholdRun:
        """Keep the pending events, search every window that is complete, remember the buckets alerted
        (inside the run's transaction). ``limit``: alerts a window may create (max_signals)."""
        outcome = ThresholdRun()
        cursor = self.searched_to()
        # The first window that can still be searched ends one interval after the last one searched.
        earliest_open = None if cursor is None else cursor + self.interval - self.lookback
        rows = []
        for match in pending:
            effective = self._clock.effective(match.event)
            if effective is None:
                outcome.untimed += 1
            elif earliest_open is not None and effective < earliest_open:
                outcome.late += 1
            else:
                values = {name: match.event[name] for name in self._fields if name in match.event}
                rows.append((self.scope, effective, orjson.dumps(values)))
        self._db.executemany(
            "INSERT INTO watch_threshold_event (scope, effective, event_values) VALUES (?, ?, ?)", rows
        )
        newest_row = self._db.execute(
            "SELECT max(effective) FROM watch_threshold_event WHERE scope = ?", (self.scope,)
        ).fetchone()
        if newest_row is None or newest_row[0] is None:
            return outcome
        clock = now_ms if inputs_idle else min(int(newest_row[0]), now_ms)
        last_end = clock // self.interval * self.interval
        events = self._events_up_to(last_end)
        times = [event.effective for event in events]
        for end in self._window_ends(times, cursor, last_end):
            low = end - self.lookback
            in_window = events[bisect_left(times, low) : bisect_right(times, end)]
            finding = self.state.search(in_window, low, end, end, limit)
            outcome.windows += 1
            outcome.reached += finding.reached
            outcome.dropped += finding.reached - len(finding.buckets)
            for bucket in finding.buckets:
                outcome.alerts.append(
                    threshold_alert(self.rule, self.state.settings, bucket, started_at=end, detected_at=detected_at)
                )
            self.state.created(finding.buckets)
        if cursor is None or last_end > cursor:
            self._db.execute("INSERT OR REPLACE INTO watch_threshold_cursor VALUES (?, ?)", (self.scope, last_end))
            # No window after last_end reaches back before this: those events can never be searched again.
            self._db.execute(
                "DELETE FROM watch_threshold_event WHERE scope = ? AND effective < ?",
                (self.scope, last_end + self.interval - self.lookback),
            )
        return outcome

    def _events_up_to(self, end: int) -> list[ThresholdEvent]:
        rows = self._db.execute(
            "SELECT id, effective, event_values FROM watch_threshold_event"
            " WHERE scope = ? AND effective <= ? ORDER BY effective, id",
            (self.scope, end),
        )
        return [ThresholdEvent(effective, seq, orjson.loads(values)) for seq, effective, values in rows]

    def _window_ends(self, times: Sequence[int], cursor: int | None, last_end: int) -> list[int]:
        """Ends of the windows after ``cursor`` and up to ``last_end`` that hold at least one event, oldest first."""
        ends: set[int] = set()
        for moment in times:
            # Windows [k*I - L, k*I] holding the moment: k*I from ceil(moment / I)*I to floor((moment + L) / I)*I.
            first = -(-moment // self.interval) * self.interval
            last = (moment + self.lookback) // self.interval * self.interval
            for end in range(first, min(last, last_end) + 1, self.interval):
                if cursor is None or end > cursor:
                    ends.add(end)
        return sorted(ends)
