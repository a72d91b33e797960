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
from shellwatch.sources.reader import Input, list_inputs, read_input
from shellwatch.sources.record import ReadProblem


@dataclass(slots=True)
class HuntStats:
    """What a hunt read and found."""

    inputs: int = 0
    """Files (and stdin) named by the paths."""
    input_bytes: int = 0
    inputs_done: int = 0
    bytes_done: int = 0
    records: int = 0
    events_in_window: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    duplicates: int = 0
    """Matches skipped because an alert with the same id was already made (the same event read twice)."""
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
    on_progress: Callable[[HuntStats], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Read ``paths`` and yield one alert per (rule, matching event), in input order then rule order.

    As in Kibana, an alert id is made once: the same event read twice (two exports of one log) gives one alert.
    ``start``/``end`` keep only events whose @timestamp lies in [start, end); events without a readable timestamp
    are kept. ``on_progress`` is called after each input and every 4,096 records.
    """
    stats = stats if stats is not None else HuntStats()
    detected_at = datetime.now(UTC)
    fields_by_rule = {c.rule.rule_id: rule_fields(c.rule) for c in rules.compiled}
    window = start is not None or end is not None
    made: set[str] = set()

    def problem(p: ReadProblem) -> None:
        stats.problems.append(p)
        if on_problem is not None:
            on_problem(p)

    began = time.perf_counter()
    inputs: list[Input] = list_inputs(paths, on_problem=problem)
    stats.inputs = len(inputs)
    stats.input_bytes = sum(item.size or 0 for item in inputs)
    try:
        for item in inputs:
            for record in read_input(item, problem):
                stats.records += 1
                if on_progress is not None and not stats.records & 4095:
                    stats.seconds = time.perf_counter() - began
                    on_progress(stats)
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
                    alert = build_alert(
                        rule,
                        event,
                        origin=record.origin,
                        detected_at=detected_at,
                        rule_fields_cache=fields_by_rule[rule.rule_id],
                    )
                    alert_id = alert["kibana.alert.uuid"]
                    if alert_id in made:
                        stats.duplicates += 1
                        continue
                    made.add(alert_id)
                    stats.alerts += 1
                    stats.alerts_by_rule[(rule.name, rule.severity)] += 1
                    yield alert
            stats.inputs_done += 1
            stats.bytes_done += item.size or 0
            if on_progress is not None:
                stats.seconds = time.perf_counter() - began
                on_progress(stats)
    finally:
        stats.seconds = time.perf_counter() - began
