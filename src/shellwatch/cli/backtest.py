"""``shellwatch backtest``: what Kibana would have raised, run by run, had the rules been running over these logs.

The logs are hunted once (:func:`shellwatch.pipeline.hunt`, exceptions applied as Kibana applies them, in the
search); each rule's matches are then replayed on the rule's own schedule (:mod:`shellwatch.schedule.runs`):
interval, look-back, max_signals, timestamp_override, duplicates in the overlap, gaps. With exception lists, the
replay is made with and without them, so the counts show what the tuning silences.

The replay sees the rule's matching events, not every event in a window: a run's "matches" column counts the
matching events its window held. new_terms rules (:mod:`shellwatch.schedule.new_terms`) alert per window on the
value combinations first seen in it within their history window; threshold rules (:mod:`shellwatch.schedule.
threshold`) on the groups that reach their count, with their signal history; each gets a line saying so.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shellwatch.cli.display import make_console, safe_text
from shellwatch.cli.hunt import EXIT_NO_RULES, TimeBound, exception_options, exception_spec
from shellwatch.cli.rule_selection import load_selected_rules, rules_option
from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import ExceptionSpec, HuntStats, hunt
from shellwatch.rules.model import Rule
from shellwatch.schedule.new_terms import NewTermsSearch
from shellwatch.schedule.runs import Replay, RuleSchedule, Totals, alert_candidate, replay, replay_search
from shellwatch.schedule.suppressed import SuppressedReplay, replay_suppression
from shellwatch.schedule.threshold import ThresholdSearch
from shellwatch.sources.record import ReadProblem


def _replays(
    paths: Sequence[str],
    rules: RuleSet,
    start: datetime | None,
    end: datetime | None,
    exceptions: ExceptionSpec | None,
    workers: int | None,
    on_problem: Any,
) -> tuple[dict[str, RuleReplay], HuntStats]:
    stats = HuntStats()
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    # Every event is read: a run's window reaches back before --start.
    matches = hunt(
        list(paths), rules, stats=stats, on_problem=on_problem, workers=workers, exceptions=exceptions, per_match=True
    )
    for alert in matches:
        by_rule[str(alert["kibana.alert.rule.rule_id"])].append(alert)
    replays: dict[str, RuleReplay] = {}
    for rule in rules.rules:
        alerts = by_rule.get(rule.rule_id)
        if alerts:
            replays[rule.rule_id] = replay_rule(rule, alerts, start, end)
    return replays, stats


class RuleReplay:
    """A rule's replay and, for new_terms and threshold rules, a line on what their searches found."""

    def __init__(self, result: Replay, note: str | None = None, suppressed: SuppressedReplay | None = None) -> None:
        self.result = result
        self.note = note
        self.suppressed = suppressed

    @property
    def totals(self) -> Totals:
        return self.result.totals


def replay_rule(
    rule: Rule, alerts: Sequence[dict[str, Any]], start: datetime | None, end: datetime | None
) -> RuleReplay:
    """Replay one rule's hunt alerts (its matching events) on its schedule, as its rule type searches."""
    schedule = RuleSchedule.from_rule(rule)
    if rule.type == "new_terms":
        terms = NewTermsSearch(rule, alerts, schedule)
        result = replay_search(schedule, terms, terms.times, start, end, untimed=terms.untimed)
        settings = terms.state.settings
        note = (
            f"  new_terms on {', '.join(settings.fields)}, history {rule.history_window_start}: "
            f"{terms.combinations:,} distinct combinations among the matching events, "
            f"{result.totals.created:,} alerted as new"
        )
        return RuleReplay(result, note)
    if rule.type == "threshold":
        groups = ThresholdSearch(rule, alerts, schedule)
        result = replay_search(schedule, groups, groups.times, start, end, untimed=groups.untimed)
        threshold = groups.state.settings
        by = ", ".join(threshold.fields) if threshold.fields else "(no field: one group)"
        condition = threshold.condition
        cardinality = f", cardinality({condition.field}) >= {condition.value}" if condition else ""
        note = (
            f"  threshold count >= {threshold.value} by {by}{cardinality}: {groups.reached:,} groups reached it "
            f"over the windows, {result.totals.created:,} alerted"
        )
        return RuleReplay(result, note)
    result = replay(schedule, (alert_candidate(a, schedule) for a in alerts), start, end)
    suppressed = replay_suppression(rule, result, alerts)
    if suppressed is None:
        return RuleReplay(result)
    grouping = suppressed.settings
    scope = "per rule execution" if grouping.duration_seconds is None else f"for {grouping.duration_seconds} s"
    note = (
        f"  with its alert suppression by {', '.join(grouping.group_by)} ({scope}): "
        f"{suppressed.created:,} alerts created, {suppressed.folded:,} matches folded into them, "
        f"{sum(run.updated for run in suppressed.runs):,} updates of alerts of earlier runs"
    )
    return RuleReplay(result, note, suppressed)


_SEARCH_WORDS = {
    "eql": "one EQL search",
    "search_after": "search_after paging",
    "aggregation": "one aggregation",
}


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _run_time(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M:%S")


def print_rule(out: Console, rule: Rule, replayed: RuleReplay, all_runs: bool) -> None:
    """A rule's runs (those with matches or gaps, or all) and its totals."""
    result = replayed.result
    schedule = result.schedule
    out.print(
        Text(
            f"{rule.name} — every {rule.interval}, from {rule.from_}, max_signals {schedule.max_signals}, "
            f"{_SEARCH_WORDS[schedule.search]} per window",
            style="bold",
        ),
        soft_wrap=True,
    )
    table = Table(show_edge=False, pad_edge=False)
    for heading in ("run (UTC)", "window", "matches", "created", "dupes", "dropped"):
        table.add_column(heading, justify="left" if heading in ("run (UTC)", "window") else "right", no_wrap=True)
    shown = 0
    for run in result.runs:
        if not all_runs and not run.events_searched and run.gap is None:
            continue
        shown += 1
        start_text = _when(run.window_start)
        if run.window_start.date() == run.started_at.date():
            start_text = run.window_start.strftime("%H:%M:%S")
        window = f"{start_text}-{run.window_end.strftime('%H:%M:%S')}"
        table.add_row(
            _run_time(run.started_at),
            window,
            str(run.events_searched),
            str(len(run.created)),
            str(len(run.duplicates)),
            str(len(run.dropped)),
        )
        if run.gap is not None:
            table.add_row("", Text(safe_text(run.gap.message()), style="yellow"), "", "", "", "")
    if shown:
        out.print(table)
    totals = result.totals
    out.print(
        Text(
            f"  {totals.runs:,} runs: {totals.matches:,} matching events, {totals.created:,} alerts created, "
            f"{totals.duplicates_skipped:,} duplicates skipped in the look-back overlap, {totals.dropped:,} dropped "
            f"at max_signals ({totals.dropped_picked_up:,} picked up by a later run, {totals.dropped_lost:,} lost), "
            f"{totals.gaps_reported:,} gaps, {totals.never_created:,} matches never alerted"
        ),
        soft_wrap=True,
    )
    if replayed.note is not None:
        out.print(Text(replayed.note), soft_wrap=True)


@click.command("backtest")
@click.argument("paths", nargs=-1, required=True)
@rules_option
@click.option("--start", type=TimeBound(), help="First run (ISO 8601; default: the first matching event).")
@click.option("--end", type=TimeBound(), help="Last run no later than this (ISO 8601; default: after the last match).")
@click.option("--all-runs", is_flag=True, help="List every run, not only those with matches or gaps.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Processes to read with (default: all cores)."
)
@exception_options
def backtest_command(
    paths: Sequence[str],
    rule_paths: Sequence[Path],
    start: datetime | None,
    end: datetime | None,
    all_runs: bool,
    workers: int | None,
    exception_paths: Sequence[str],
    exceptions_for: Sequence[str],
    value_lists: Sequence[str],
) -> None:
    """Replay PATHS as if each rule had been running on its own schedule: per run, its window, the matches in it,
    the alerts created, duplicates skipped and alerts dropped at max_signals; then totals per rule."""
    loaded = load_selected_rules(rule_paths)
    if not loaded.rules:
        click.echo("shellwatch: no rule could be loaded; nothing to replay", err=True)
        sys.exit(EXIT_NO_RULES)
    rules = RuleSet(loaded.rules)
    exceptions = exception_spec(exception_paths, exceptions_for, value_lists)
    err = make_console(stderr=True)

    def on_problem(problem: ReadProblem) -> None:
        err.print(Text(f"shellwatch: warning: {safe_text(str(problem))}"), soft_wrap=True)

    replays, stats = _replays(paths, rules, start, end, exceptions, workers, on_problem)
    before: dict[str, RuleReplay] = {}
    if exceptions is not None:
        before, _ = _replays(paths, rules, start, end, None, workers, lambda _problem: None)
    out = make_console()
    for rule in rules.rules:
        result = replays.get(rule.rule_id)
        if result is None and rule.rule_id not in before:
            out.print(Text(f"{rule.name}: no matching event", style="dim"), soft_wrap=True)
            continue
        if result is not None:
            print_rule(out, rule, result, all_runs)
        if exceptions is not None:
            without = before.get(rule.rule_id)
            created_without = without.totals.created if without is not None else 0
            created_with = result.totals.created if result is not None else 0
            out.print(
                Text(
                    f"  exceptions: {created_without:,} alerts without them, {created_with:,} with them "
                    f"({stats.excluded_by_rule.get(rule.name, 0):,} matches silenced)"
                ),
                soft_wrap=True,
            )
        out.print()
    err.print(Text(f"{stats.inputs} files, {stats.records:,} records, {len(rules)} rules"), soft_wrap=True)
