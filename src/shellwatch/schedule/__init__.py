"""Rule scheduling as Kibana's detection engine does it: runs on an interval, look-back windows, max_signals,
deduplication of alerts across overlapping windows, and gaps between runs.

:mod:`shellwatch.schedule.runs` replays a rule's schedule over stored events (``shellwatch backtest``).
"""

from shellwatch.schedule.runs import (
    Candidate,
    GapReport,
    Replay,
    RuleSchedule,
    RunReport,
    SearchReport,
    Totals,
    Uncovered,
    alert_candidate,
    candidates,
    epoch_millis,
    replay,
)

__all__ = [
    "Candidate",
    "GapReport",
    "Replay",
    "RuleSchedule",
    "RunReport",
    "SearchReport",
    "Totals",
    "Uncovered",
    "alert_candidate",
    "candidates",
    "epoch_millis",
    "replay",
]
