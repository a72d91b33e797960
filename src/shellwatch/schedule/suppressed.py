"""A rule's ``alert_suppression`` replayed over its schedule: what each run would have created and updated.

The replay (:mod:`shellwatch.schedule.runs`) says which matches each run's searches found. A rule with alert
suppression hands those matches, in the search's order, to Kibana's suppression instead of creating one alert per
match (:class:`shellwatch.alerts.suppression.Suppressor`, one execution at a time: per-execution groups, duration
windows across runs, the look-back overlap's already-suppressed events, max_signals counting created alerts only).
What a run's searches found is every match in its windows: the ones the plain replay created, the duplicates it
skipped, and those it dropped at max_signals (with suppression, folded matches do not use up the limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shellwatch.alerts.document import rule_uuid
from shellwatch.alerts.hunt_suppression import settings_of
from shellwatch.alerts.suppression import SuppressionSettings, Suppressor
from shellwatch.rules.model import Rule
from shellwatch.schedule.runs import EventClock, Replay, alert_candidate


@dataclass(frozen=True, kw_only=True, slots=True)
class SuppressedRun:
    """One execution under suppression."""

    index: int
    started_at: datetime
    offered: int
    created: int
    updated: int
    folded: int
    """Matches counted into a group alert (this run's or an earlier one's)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SuppressedReplay:
    """Every execution's figures, and the alert documents as they stand after the last run."""

    settings: SuppressionSettings
    runs: tuple[SuppressedRun, ...]
    alerts: tuple[dict[str, Any], ...]

    @property
    def created(self) -> int:
        return sum(run.created for run in self.runs)

    @property
    def folded(self) -> int:
        return sum(run.folded for run in self.runs)


def replay_suppression(rule: Rule, replay: Replay, alerts: Sequence[Mapping[str, Any]]) -> SuppressedReplay | None:
    """Suppression over ``replay``'s runs, fed the rule's matches (``alerts``, one per matching event); None when
    the rule does not suppress."""
    settings = settings_of(rule)
    if settings is None:
        return None
    by_id = {str(alert["kibana.alert.uuid"]): alert for alert in alerts}
    clock = EventClock(replay.schedule)
    moments: dict[str, tuple[tuple[int, ...], datetime]] = {}
    for alert_id, alert in by_id.items():
        event = alert_candidate(alert, replay.schedule).event
        effective = clock.effective(event)
        moments[alert_id] = (clock.order(event), _datetime(effective) if effective is not None else _EPOCH)
    suppressor = Suppressor(settings, rule_uuid=rule_uuid(rule))
    current: dict[str, dict[str, Any]] = {}
    runs: list[SuppressedRun] = []
    for run in replay.runs:
        found = {a for search in run.searches for a in (*search.created, *search.duplicates, *search.dropped)}
        if not found:
            continue
        offered = sorted((a for a in found if a in by_id), key=lambda a: (moments[a][0], a))
        suppressor.begin_run(
            str(run.index),
            started_at=run.started_at,
            search_from=run.window_start,
            max_new_alerts=replay.schedule.max_signals,
        )
        for alert_id in offered:
            suppressor.offer(by_id[alert_id], moments[alert_id][1])
        result = suppressor.end_run()
        for document in (*result.created, *result.updated):
            current[str(document["kibana.alert.uuid"])] = document
        runs.append(
            SuppressedRun(
                index=run.index,
                started_at=run.started_at,
                offered=len(offered),
                created=len(result.created),
                updated=len(result.updated),
                folded=result.decisions.get("folded", 0),
            )
        )
    return SuppressedReplay(settings=settings, runs=tuple(runs), alerts=tuple(current.values()))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetime(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
