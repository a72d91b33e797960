"""The watch loop: ingest what the inputs gained, run the rules that are due, deliver the outbox; repeat.

Each step commits before the next begins, in the order :mod:`shellwatch.watch.state` explains, so the process can
be killed at any instant (and stopped by a signal between two steps) without losing or duplicating an alert:

* ingest: for each input, one chunk of new records is matched and ONE transaction stores the input's new position
  with the chunk's matches (``pending``);
* run: a rule whose interval has elapsed takes its pending matches (the events ingested since its previous run),
  creates at most max_signals alerts (the rest are reported as dropped, as Kibana drops what a run cannot create),
  never an id already produced, and ONE transaction records the run, the rule type's state (new_terms history,
  threshold signal history, suppression groups) and puts its alert batch in each sink's outbox;
* deliver: each sink is handed the batches waiting for it; a batch leaves a sink's outbox once the sink returned.

What a run makes of its pending matches depends on the rule: one alert per match (query, EQL, Sigma), one per value
combination new in the history window (new_terms, :mod:`.new_terms`; matches also feed the history as they are
ingested, in the chunk's transaction), one per group reaching the threshold in each window (threshold,
:mod:`.threshold`); a rule with ``alert_suppression`` then folds its alerts by group (:mod:`.suppression`).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from shellwatch.alerts.document import build_alert, rule_fields
from shellwatch.alerts.exceptions import ExceptionLists
from shellwatch.alerts.hunt_suppression import event_time
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import DEFAULT_PROCESS_MEMORY
from shellwatch.rules.model import Rule
from shellwatch.schedule.new_terms import new_terms_alert
from shellwatch.schedule.runs import DEFAULT_ALERTS_MAX, TIMESTAMP, epoch_millis
from shellwatch.sinks.base import ALERT_ID, AlertSink, SinkError, revision_batch
from shellwatch.sources.record import ReadProblem
from shellwatch.watch.follow import Follower, InputCatalog
from shellwatch.watch.matching import RecordMatcher
from shellwatch.watch.new_terms import NewPair, WatchedNewTerms
from shellwatch.watch.schedule import GapNotice, RuleClock
from shellwatch.watch.state import PendingMatch, RuleRunRecord, WatchState
from shellwatch.watch.suppression import WatchedSuppression
from shellwatch.watch.threshold import WatchedThreshold


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchSettings:
    """How a watcher polls and runs."""

    poll: float = 2.0
    """Seconds between two looks at the inputs when nothing new came."""
    run_every: float | None = None
    """Run every rule every this many seconds instead of its own interval (its additional look-back kept)."""
    source: str | None = None
    """Read every record as this source (see ``hunt --source``); None recognizes each record."""
    process_memory: int = DEFAULT_PROCESS_MEMORY
    alerts_max: int = DEFAULT_ALERTS_MAX
    """Kibana's ``xpack.alerting.rules.run.alerts.max``: no run creates more alerts, whatever its max_signals."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSummary:
    """What one rule run did."""

    rule: Rule
    started: datetime
    events: int
    """Events ingested (all inputs) since the rule's previous run."""
    matches: int
    created: int
    duplicates: int
    dropped: int
    """New alerts not created: the run reached max_signals."""
    gap: GapNotice | None
    updated: int = 0
    """Alerts of earlier runs delivered again with a larger suppression docs_count (alert suppression)."""
    suppressed: int = 0
    """Matches folded into a group's alert, or already counted by an earlier run's group (alert suppression)."""
    late: int = 0
    """threshold: events read after every window holding them was searched (Kibana would not count them)."""


@dataclass(slots=True)
class WatchTotals:
    """What a watcher did in this process."""

    events: int = 0
    chunks: int = 0
    runs: int = 0
    alerts: int = 0
    dropped: int = 0
    delivered: int = 0
    """Batches a sink took: written, acknowledged, or kept in its spool to be sent later (see the sink's summary)."""
    gaps: list[GapNotice] = field(default_factory=list)


def _ignore(_: Any) -> None:
    pass


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Watcher:
    """Follows ``paths``, runs ``rules`` on their schedules and delivers alerts to ``sinks``, with its state in
    ``state``. Call :meth:`run` (the loop) or the steps one by one (:meth:`ingest`, :meth:`run_rules`,
    :meth:`deliver`)."""

    def __init__(
        self,
        paths: Sequence[str],
        rules: RuleSet,
        state: WatchState,
        sinks: Sequence[AlertSink],
        *,
        settings: WatchSettings | None = None,
        exceptions: ExceptionLists | None = None,
        on_problem: Callable[[ReadProblem], None] = _ignore,
        on_notice: Callable[[str], None] = _ignore,
        on_run: Callable[[RunSummary], None] = _ignore,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self.settings = settings or WatchSettings()
        self.state = state
        self.sinks = list(sinks)
        self.totals = WatchTotals()
        self._on_problem = on_problem
        self._on_notice = on_notice
        self._on_run = on_run
        self._clock_ms = clock_ms
        self._rules: dict[str, Rule] = {}
        for rule in rules.rules:
            if rule.rule_id in self._rules:
                on_notice(f"rule {rule.name!r} has the rule_id of {self._rules[rule.rule_id].name!r}; not run")
                continue
            self._rules[rule.rule_id] = rule
        self._clocks = {rule_id: RuleClock.of(rule, self.settings.run_every) for rule_id, rule in self._rules.items()}
        self._rule_fields = {rule_id: rule_fields(rule) for rule_id, rule in self._rules.items()}
        connection = state.connection
        self._new_terms = {
            rule_id: WatchedNewTerms(rule, connection)
            for rule_id, rule in self._rules.items()
            if rule.type == "new_terms"
        }
        self._thresholds = {
            rule_id: WatchedThreshold(rule, connection)
            for rule_id, rule in self._rules.items()
            if rule.type == "threshold"
        }
        self._suppressions = {
            rule_id: suppression
            for rule_id, rule in self._rules.items()
            if (suppression := WatchedSuppression.of(rule, connection)) is not None
        }
        self._inputs_idle = False
        """Whether the last ingestion found nothing new: every input is read to its end."""
        self._matcher = RecordMatcher(rules, source=self.settings.source, exceptions=exceptions)
        self._catalog = InputCatalog(paths, state.positions(), on_problem, process_memory=self.settings.process_memory)
        for rule_id, count in state.pending_rules().items():
            if rule_id not in self._rules:
                on_notice(f"{count} matches wait for rule {rule_id}, which is not loaded: they wait until it is")
        names = {sink.name for sink in self.sinks}
        for sink_name, count in state.waiting_by_sink().items():
            if sink_name not in names:
                on_notice(f"{count} alert batches wait for {sink_name}, which is not configured in this run")

    @property
    def followers(self) -> list[Follower]:
        return self._catalog.followers

    # ------------------------------------------------------------------------------------------------ ingest

    def ingest(self, stop: Callable[[], bool] = lambda: False) -> int:
        """One chunk from each input that gained complete records (new inputs found first); chunks committed."""
        self._catalog.refresh()
        committed = 0
        for follower in list(self._catalog.followers):
            if stop():
                break
            chunk = follower.poll()
            if chunk is None:
                continue
            events, matches = self._matcher.matches(chunk.records, follower.context)
            with self.state.transaction():
                if follower.persistent:
                    former = self._catalog.renamed.pop(chunk.position.key, None)
                    if former is not None:
                        self.state.forget_position(former)
                    self.state.save_position(chunk.position)
                observed: dict[str, list[dict[str, Any]]] = {}
                for match in matches:
                    self.state.add_pending(match.alert_id, match.rule.rule_id, match.event, match.origin)
                    if match.rule.rule_id in self._new_terms:
                        observed.setdefault(match.rule.rule_id, []).append(match.event)
                for rule_id, matched in observed.items():
                    self._new_terms[rule_id].observe(matched)
                self.state.count_events(events)
            follower.advance(chunk.position)
            if chunk.note:
                self._on_notice(chunk.note)
            self.totals.events += events
            self.totals.chunks += 1
            committed += 1
        self._inputs_idle = committed == 0
        return committed

    # -------------------------------------------------------------------------------------------------- runs

    def run_rules(self, *, force: bool = False) -> list[RunSummary]:
        """Run every rule whose interval has elapsed (every rule with ``force``)."""
        now_ms = self._clock_ms()
        summaries = []
        for rule_id, rule in self._rules.items():
            last = self.state.last_run(rule_id)
            if not force and not self._clocks[rule_id].due(None if last is None else last[0], now_ms):
                continue
            summary = self._run(rule, now_ms, last, inputs_idle=force or self._inputs_idle)
            summaries.append(summary)
            self._on_run(summary)
        return summaries

    def _run(self, rule: Rule, now_ms: int, last: tuple[int, int] | None, *, inputs_idle: bool) -> RunSummary:
        started = datetime.fromtimestamp(now_ms / 1000, UTC)
        cap = min(rule.max_signals, self.settings.alerts_max)
        gap = self._clocks[rule.rule_id].gap(rule, None if last is None else last[0], now_ms)
        suppression = self._suppressions.get(rule.rule_id)
        with self.state.transaction():
            events_now = self.state.events_ingested()
            if suppression is None and rule.rule_id not in self._new_terms and rule.rule_id not in self._thresholds:
                found = self._plain_candidates(rule, started, cap)
            else:
                pending = self.state.pending_for(rule.rule_id)
                # As a Kibana search sorts its hits, the earliest events come first when max_signals cuts the run.
                pending.sort(key=_event_order(rule.timestamp_override))
                found = self._candidates(rule, pending, started, now_ms, cap, inputs_idle)
            fresh = [c for c in found.candidates if not self.state.is_produced(c.alert_id)]
            duplicates = found.duplicates + len(found.candidates) - len(fresh)
            dropped = found.dropped
            updated: list[dict[str, Any]] = []
            suppressed = 0
            produced: list[str] = []
            if suppression is None:
                room = len(fresh) if found.capped else cap
                alerts = [candidate.build() for candidate in fresh[:room]]
                dropped += len(fresh) - len(alerts)
            else:
                offers = []
                for candidate in fresh:
                    alert = candidate.build()
                    offers.append((alert, event_time(alert, rule) or started))
                result = suppression.run(
                    f"{now_ms}:{self.state.run_count(rule.rule_id)}",
                    offers,
                    started_at=started,
                    max_new_alerts=None if found.capped else cap,
                )
                alerts, updated = result.created, result.updated
                dropped += result.decisions.get("dropped_max_signals", 0)
                suppressed = result.decisions.get("folded", 0) + result.decisions.get("already_suppressed", 0)
                # Every offered match is handled, folded or not: one read again must not be offered again.
                produced.extend(c.alert_id for c in fresh)
            produced.extend(str(alert[ALERT_ID]) for alert in alerts)
            record = RuleRunRecord(
                rule_id=rule.rule_id,
                started_ms=now_ms,
                events=events_now - (last[1] if last is not None else 0),
                matches=found.matches,
                created=len(alerts),
                duplicates=duplicates,
                dropped=dropped,
                gap_ms=0 if gap is None else int(gap.gap.total_seconds() * 1000),
            )
            self.state.record_run(record, list(dict.fromkeys(produced)), events_now)
            if alerts or updated:
                self.state.enqueue(revision_batch([*alerts, *updated]), [sink.name for sink in self.sinks])
            self.state.clear_pending(rule.rule_id)
            if rule.rule_id in self._new_terms:
                self._new_terms[rule.rule_id].prune(now_ms)
        self.totals.runs += 1
        self.totals.alerts += len(alerts)
        self.totals.dropped += dropped
        if gap is not None:
            self.totals.gaps.append(gap)
            self._on_notice(gap.message())
        if found.late:
            self._on_notice(
                f"rule {rule.name!r}: {found.late} events read after every threshold window holding them was "
                "searched; not counted (Kibana would not search them either)"
            )
        return RunSummary(
            rule=rule,
            started=started,
            events=record.events,
            matches=record.matches,
            created=record.created,
            duplicates=duplicates,
            dropped=dropped,
            gap=gap,
            updated=len(updated),
            suppressed=suppressed,
            late=found.late,
        )

    def _plain_alert(self, rule: Rule, match: PendingMatch, started: datetime) -> dict[str, Any]:
        fields = self._rule_fields[rule.rule_id]
        alert = build_alert(rule, match.event, origin=match.origin, detected_at=started, rule_fields_cache=fields)
        # The id decided at ingestion is the one recorded as produced: it is the alert's, whatever.
        alert[ALERT_ID] = match.alert_id
        return alert

    def _plain_candidates(self, rule: Rule, started: datetime, cap: int) -> _Found:
        """A one-alert-per-match rule's run: its first ``cap`` new matches in event order, read page by page and
        kept ``cap`` at a time, so that memory is bounded by max_signals, not by the backlog."""
        matches = duplicates = fresh = 0

        def new_matches() -> Iterator[PendingMatch]:
            nonlocal matches, duplicates, fresh
            for match in self.state.iter_pending(rule.rule_id):
                matches += 1
                if self.state.is_produced(match.alert_id):
                    duplicates += 1
                    continue
                fresh += 1
                yield match

        # As a Kibana search sorts its hits, the earliest events come first when max_signals cuts the run.
        chosen = heapq.nsmallest(cap, new_matches(), key=_event_order(rule.timestamp_override))
        return _Found(
            [_Candidate(match.alert_id, partial(self._plain_alert, rule, match, started)) for match in chosen],
            dropped=fresh - len(chosen),
            capped=True,
            matches=matches,
            duplicates=duplicates,
        )

    def _candidates(
        self, rule: Rule, pending: list[PendingMatch], started: datetime, now_ms: int, cap: int, inputs_idle: bool
    ) -> _Found:
        """The alerts a run may create from all its pending matches (the rule types that need every match: new
        terms, threshold, suppression), by rule type, in the order they are created."""
        fields = self._rule_fields[rule.rule_id]

        watched_terms = self._new_terms.get(rule.rule_id)
        if watched_terms is not None:

            def first_of_terms(new: NewPair) -> dict[str, Any]:
                return new_terms_alert(
                    build_alert(rule, new.match.event, origin=new.match.origin, detected_at=started,
                                rule_fields_cache=fields),
                    rule,
                    new.terms,
                )  # fmt: skip

            finding = watched_terms.find(pending)
            return _Found(
                [_Candidate(new.alert_id, partial(first_of_terms, new)) for new in finding.new], matches=len(pending)
            )
        watched_threshold = self._thresholds.get(rule.rule_id)
        if watched_threshold is not None:
            outcome = watched_threshold.run(
                pending, now_ms=now_ms, inputs_idle=inputs_idle, limit=cap, detected_at=started
            )
            return _Found(
                [_Candidate(str(alert[ALERT_ID]), partial(dict, alert)) for alert in outcome.alerts],
                dropped=outcome.dropped,
                capped=True,
                late=outcome.late,
                matches=len(pending),
            )
        return _Found(
            [_Candidate(match.alert_id, partial(self._plain_alert, rule, match, started)) for match in pending],
            matches=len(pending),
        )

    # --------------------------------------------------------------------------------------------- delivery

    def deliver(self) -> int:
        """Hand every sink the batches waiting for it; batches acknowledged."""
        delivered = 0
        for sink in self.sinks:
            for batch in self.state.undelivered(sink.name):
                try:
                    sink.deliver(batch)
                except SinkError as error:
                    self._on_notice(f"{sink.name}: {error}; its batches wait in the outbox")
                    break
                self.state.mark_delivered(sink.name, batch.key)
                delivered += 1
        self.totals.delivered += delivered
        return delivered

    # -------------------------------------------------------------------------------------------------- loop

    def run(self, stop: threading.Event, *, once: bool = False) -> WatchTotals:
        """Watch until ``stop`` is set (a signal handler sets it; the current step finishes first).

        ``once``: read every input to its current end, run every rule, deliver, and return. With stdin among the
        inputs, the loop also ends once stdin has ended and every rule has run over what it brought.
        """
        self.deliver()  # what a previous process committed but could not deliver
        while not stop.is_set():
            progressed = self.ingest(stop.is_set)
            if stop.is_set():
                break
            reading_stdin = any(not f.persistent and not f.done for f in self.followers)
            stdin_ended = any(not f.persistent for f in self.followers) and not reading_stdin
            if once or (stdin_ended and len(self.followers) == 1):
                if progressed or reading_stdin:
                    if not progressed:
                        stop.wait(min(self.settings.poll, 0.05))
                    continue
                self.run_rules(force=True)
                self.deliver()
                # A single pass ends here: give what a sink spooled (a receiver that was away) one more chance.
                for sink in self.sinks:
                    sink.flush(ONCE_FLUSH_SECONDS)
                break
            self.run_rules()
            self.deliver()
            for sink in self.sinks:
                sink.flush(0.0)
            if not progressed:
                stop.wait(self.settings.poll)
        self.deliver()
        return self.totals


@dataclass(frozen=True, slots=True)
class _Candidate:
    """An alert a run may create: its id (known before the document is built) and how to build it."""

    alert_id: str
    build: Callable[[], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Found:
    """A run's candidate alerts, in creation order."""

    candidates: list[_Candidate]
    dropped: int = 0
    """Alerts the rule type already cut at max_signals (threshold buckets)."""
    capped: bool = False
    """Whether max_signals is already applied (threshold: per window, before duplicates are looked at)."""
    late: int = 0
    matches: int = 0
    """The run's pending matches."""
    duplicates: int = 0
    """Matches left out already because their alert id was produced before."""


ONCE_FLUSH_SECONDS = 5.0
"""How long a ``--once`` pass keeps retrying spooled batches before it leaves them for the next run."""


def _event_order(timestamp_override: str | None) -> Callable[[PendingMatch], tuple[bool, int, int]]:
    primary = timestamp_override or TIMESTAMP

    def order(match: PendingMatch) -> tuple[bool, int, int]:
        moment = epoch_millis(match.event.get(primary))
        if moment is None and primary != TIMESTAMP:
            moment = epoch_millis(match.event.get(TIMESTAMP))
        return (moment is None, moment or 0, match.seq)

    return order
