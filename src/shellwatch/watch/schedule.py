"""When a watched rule runs, and what Kibana would say about the time between two of its runs.

A rule runs every ``interval`` (``--run-every`` overrides it for every rule); its first run is at once, and a run
that starts late schedules the next one an interval after it actually started, as Kibana's task manager does.

Gaps: Kibana measures ``(start - previous start) - (to - from)`` (``getGapBetweenRuns``); when positive it searches
up to four catch-up windows, one interval each, and reports what they do not cover as a gap
(:mod:`shellwatch.schedule.runs` models the same, for backtests). A watched rule's run reads every event ingested
since its previous run from the stored read positions, whatever its timestamp, so the time the watcher was down is
searched in full: the gap is reported, with Kibana's figures, and reported as filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shellwatch.rules.model import Rule, duration_seconds
from shellwatch.schedule.runs import MAX_RULE_GAP_RATIO, GapReport, lookback_of


@dataclass(frozen=True, slots=True)
class RuleClock:
    """A rule's interval and look-back, in milliseconds."""

    interval_ms: int
    lookback_ms: int

    @classmethod
    def of(cls, rule: Rule, run_every: float | None = None) -> RuleClock:
        """The rule's own schedule, or every ``run_every`` seconds with the rule's additional look-back kept."""
        interval_ms = duration_seconds(rule.interval) * 1000
        lookback_ms = int(lookback_of(rule.from_) / timedelta(milliseconds=1))
        if run_every is None:
            return cls(interval_ms, lookback_ms)
        every_ms = max(1, round(run_every * 1000))
        return cls(every_ms, max(0, lookback_ms - interval_ms) + every_ms)

    def due(self, last_run_ms: int | None, now_ms: int) -> bool:
        """Whether a run is due at ``now_ms`` after a last run at ``last_run_ms`` (never run: at once)."""
        return last_run_ms is None or now_ms - last_run_ms >= self.interval_ms

    def gap(self, rule: Rule, last_run_ms: int | None, now_ms: int) -> GapNotice | None:
        """What Kibana would say about a run at ``now_ms`` after one at ``last_run_ms``; None when no gap."""
        if last_run_ms is None:
            return None
        gap_ms = (now_ms - last_run_ms) - self.lookback_ms
        if gap_ms <= 0:
            return None
        catch_up = min(math.ceil(gap_ms / self.interval_ms), MAX_RULE_GAP_RATIO)
        remaining = max(gap_ms - catch_up * self.interval_ms, 0)
        previous = _moment(last_run_ms)
        kibana = (
            GapReport(run_index=0, start=previous, end=previous + timedelta(milliseconds=remaining))
            if remaining
            else None
        )
        return GapNotice(
            rule_id=rule.rule_id,
            rule_name=rule.name,
            previous_run=previous,
            started=_moment(now_ms),
            gap=timedelta(milliseconds=gap_ms),
            catch_up_windows=catch_up,
            kibana_gap=kibana,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class GapNotice:
    """A rule's run came later than its look-back covers: Kibana's view of it, and how the watcher fills it."""

    rule_id: str
    rule_name: str
    previous_run: datetime
    started: datetime
    gap: timedelta
    """Kibana's gap between runs: the time since the previous run beyond the look-back."""
    catch_up_windows: int
    """Extra windows (one interval each, four at most) Kibana would have searched for the missed runs."""
    kibana_gap: GapReport | None
    """The gap Kibana would report after its catch-up windows (None: they would have covered it)."""

    def message(self) -> str:
        kibana = (
            f"Kibana would report a gap of {self.kibana_gap.duration} ({self.kibana_gap.message()})"
            if self.kibana_gap is not None
            else f"Kibana would cover it with {self.catch_up_windows} catch-up window(s)"
        )
        return (
            f"rule {self.rule_name!r}: {self.started - self.previous_run} since its previous run "
            f"({self.previous_run.isoformat()}), {self.gap} beyond its look-back; {kibana}. "
            "Filled: this run reads every event ingested since the previous run, from the stored read positions."
        )


def _moment(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)
