"""The hunt data flow: paths in, alerts out, with the counts a responder reads at the end.

Readers (sources/) yield raw records, normalizers (normalize/) turn them into flat ECS events, the rule set
(engine/) says which rules match, and each match becomes a Kibana-shaped alert (alerts/). Nothing here knows about
formats or terminals: problems go to a callback, alerts to the caller, counts into :class:`HuntStats`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shellwatch.alerts.document import build_alert, rule_fields
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.dispatch import normalize_with_family
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import ReadProblem


@dataclass(slots=True)
class HuntStats:
    """What a hunt read and found."""

    files: set[str] = field(default_factory=set)
    records: int = 0
    events_in_window: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    alerts_by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(rule name, severity) -> alerts."""
    problems: list[ReadProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        """Records read per second of wall time."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def problem_reasons(self) -> Counter[str]:
        """Skipped parts of the input, counted by reason (without the position)."""
        return Counter(p.reason for p in self.problems)


def parse_time(text: str) -> datetime:
    """A --from/--to bound: ISO 8601 date or date-time; naive values are taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-03-14T09:00:00Z)") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    value = event.get("@timestamp")
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def hunt(
    paths: Sequence[str],
    rules: RuleSet,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    stats: HuntStats | None = None,
    on_problem: Callable[[ReadProblem], None] | None = None,
    on_record: Callable[[HuntStats], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Read ``paths`` and yield one alert per (rule, matching event), in input order then rule order.

    ``start``/``end`` keep only events whose @timestamp lies in [start, end); events without a readable timestamp
    are kept. ``on_record`` is called every 1,000 records (progress display).
    """
    stats = stats if stats is not None else HuntStats()
    detected_at = datetime.now(UTC)
    fields_by_rule = {c.rule.rule_id: rule_fields(c.rule) for c in rules.compiled}
    window = start is not None or end is not None

    def problem(p: ReadProblem) -> None:
        stats.problems.append(p)
        if on_problem is not None:
            on_problem(p)

    began = time.perf_counter()
    try:
        for record in read_paths(paths, on_problem=problem):
            stats.records += 1
            stats.files.add(record.origin.path)
            if on_record is not None and stats.records % 1000 == 0:
                stats.seconds = time.perf_counter() - began
                on_record(stats)
            family, event = normalize_with_family(record)
            stats.by_source[family] += 1
            if window:
                moment = _event_time(event)
                if moment is not None and (
                    (start is not None and moment < start) or (end is not None and moment >= end)
                ):
                    continue
            stats.events_in_window += 1
            for rule in rules.matching(event):
                stats.alerts += 1
                stats.alerts_by_rule[(rule.name, rule.severity)] += 1
                yield build_alert(
                    rule,
                    event,
                    origin=record.origin,
                    detected_at=detected_at,
                    rule_fields_cache=fields_by_rule[rule.rule_id],
                )
    finally:
        stats.seconds = time.perf_counter() - began
