"""``shellwatch hunt``: logs in, Kibana-shaped alerts out -- the main job.

Alerts go to stdout (or ``-o FILE``) in the chosen format and nothing else does; progress, problems and the closing
summary go to stderr. Exit status: 0 when the hunt ran (alerts or not), 1 with ``--fail-on-alert`` when there are
alerts, 2 on usage errors or when no rule could be loaded, 3 when nothing at all could be read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from shellwatch.alerts.exceptions import ExceptionListError
from shellwatch.cli.display import make_console, safe_text, stderr_is_terminal
from shellwatch.cli.rule_selection import load_selected_rules, rules_option
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import DEFAULT_PROCESS_MEMORY
from shellwatch.normalize.dispatch import SOURCES, UNKNOWN
from shellwatch.output.csv_file import write_csv
from shellwatch.output.json_lines import write_json_array, write_ndjson
from shellwatch.output.table import AlertTable, print_rule_summary
from shellwatch.pipeline import ExceptionSpec, HuntStats, hunt, parse_time
from shellwatch.sources.record import ReadProblem

FORMATS = ("table", "ndjson", "json", "csv")
EXIT_ALERTS = 1
EXIT_NO_RULES = 2
EXIT_NOTHING_READ = 3
MAX_LISTED_PROBLEMS = 20
"""Problems named one by one on stderr while hunting; the rest are counted in the summary."""


class TimeBound(click.ParamType):  # type: ignore[type-arg]
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Progress:
    """A progress bar over input bytes on stderr, drawn only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        if enabled:
            self.bar = Progress(
                TextColumn("hunting"),
                BarColumn(),
                TextColumn(
                    "{task.fields[files]} files, {task.fields[records]:,} records, {task.fields[alerts]} alerts"
                ),
                TimeElapsedColumn(),
                console=make_console(stderr=True),
                transient=True,
                # No refresh thread: a second thread would force the slow forkserver start of hunt's workers.
                auto_refresh=False,
            )

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task("hunt", total=None, files="0/?", records=0, alerts=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def update(self, stats: HuntStats) -> None:
        if self.bar is None or self.task is None:
            return
        self.bar.update(
            self.task,
            total=stats.input_bytes or None,
            completed=stats.bytes_done,
            files=f"{stats.inputs_done}/{stats.inputs}",
            records=stats.records,
            alerts=stats.alerts,
        )
        self.bar.refresh()


COLUMNAR_WORTH_BYTES = 8 << 20
"""Only a file at least this large can go to the columnar path (:data:`shellwatch.columnar.COLUMNAR_MIN_BYTES`,
checked here before DuckDB is imported, so a small hunt never pays for loading it)."""


def _hunter(paths: Sequence[str]) -> Callable[..., Iterator[dict[str, Any]]]:
    """The hunt to run: :func:`shellwatch.columnar.hunt` when some input is a file large enough for the columnar
    path to win (it decides per hunt, and hands everything else to the streaming hunt), else the streaming hunt."""
    if any(Path(path).is_file() and Path(path).stat().st_size >= COLUMNAR_WORTH_BYTES for path in paths):
        from shellwatch import columnar

        return columnar.hunt
    return hunt


def _print_summary(console: Console, stats: HuntStats, rule_count: int) -> None:
    rate = f"{stats.records_per_second:,.0f} records/s" if stats.seconds > 0 else ""
    console.print(
        Text(
            f"{stats.inputs} files, {stats.records:,} records ({stats.events_in_window:,} in the time window), "
            f"{rule_count} rules, {stats.workers} worker(s), {stats.seconds:.2f} s, {rate}; {stats.alerts} alerts"
            + (f" ({stats.duplicates} duplicate matches skipped)" if stats.duplicates else "")
        ),
        soft_wrap=True,
    )
    if stats.by_source:
        sources = ", ".join(f"{family} {count:,}" for family, count in stats.by_source.most_common())
        console.print(Text(f"events by source: {sources}"), soft_wrap=True)
    unrecognized = stats.by_source.get(UNKNOWN, 0)
    if unrecognized:
        where = f" (first at {safe_text(stats.unrecognized_at[0])})" if stats.unrecognized_at else ""
        console.print(
            Text(
                f"{unrecognized:,} records of no known source{where}: matched as read, flattened; "
                "--source names their source"
            ),
            soft_wrap=True,
        )
    if stats.excluded_by_rule:
        silenced = ", ".join(f"{safe_text(name)} {count:,}" for name, count in stats.excluded_by_rule.most_common())
        console.print(
            Text(f"{sum(stats.excluded_by_rule.values()):,} matches silenced by exceptions: {silenced}"),
            soft_wrap=True,
        )
    if stats.suppressed_by_rule:
        folded = ", ".join(f"{safe_text(name)} {count:,}" for name, count in stats.suppressed_by_rule.most_common())
        console.print(
            Text(f"{sum(stats.suppressed_by_rule.values()):,} matches folded into suppressed alerts: {folded}"),
            soft_wrap=True,
        )
    if stats.aggregated_by_rule:
        quiet = ", ".join(f"{safe_text(name)} {count:,}" for name, count in stats.aggregated_by_rule.most_common())
        console.print(
            Text(
                f"{sum(stats.aggregated_by_rule.values()):,} matches of new_terms/threshold rules made no alert "
                f"of their own (terms not new, or counted in a bucket): {quiet}"
            ),
            soft_wrap=True,
        )
    if stats.problems:
        reasons = stats.problem_reasons()
        console.print(Text(f"{len(stats.problems)} parts of the input skipped:"), soft_wrap=True)
        for reason, count in reasons.most_common(10):
            console.print(Text(f"  {count:>6}  {safe_text(reason)}"), soft_wrap=True)
        if len(reasons) > 10:
            console.print(Text(f"  ... and {len(reasons) - 10} other reasons"), soft_wrap=True)


def _pairs(values: Sequence[str], option: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, separator, target = value.partition("=")
        if not separator or not name or not target:
            raise click.BadParameter(f"{value!r} is not {what}", param_hint=option)
        pairs.append((name, target))
    return pairs


def exception_spec(
    paths: Sequence[str], exceptions_for: Sequence[str], value_lists: Sequence[str]
) -> ExceptionSpec | None:
    """The exception lists of the command line, loaded once here so that a bad file stops the hunt before it
    starts, with every problem named."""
    attach: dict[str, list[str]] = {}
    for rule, list_id in _pairs(exceptions_for, "--exceptions-for", "RULE=LIST_ID"):
        attach.setdefault(rule, []).append(list_id)
    lists = _pairs(value_lists, "--value-list", "ID=FILE")
    if not paths:
        if attach or lists:
            raise click.UsageError("--exceptions-for and --value-list need --exceptions FILE")
        return None
    spec = ExceptionSpec(tuple(paths), tuple(lists), tuple((rule, tuple(ids)) for rule, ids in attach.items()))
    try:
        spec.load()
    except ExceptionListError as error:
        raise click.UsageError(
            "exception lists could not be loaded:\n" + "\n".join(f"  {safe_text(p)}" for p in error.problems)
        ) from error
    return spec


def exception_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The exception-list options (``--exceptions``, ``--exceptions-for``, ``--value-list``), for the commands
    that apply them; read them with :func:`exception_spec`."""
    command = click.option(
        "--value-list",
        "value_lists",
        multiple=True,
        metavar="ID=FILE",
        help="The values of value list ID (one per line), for 'is in list' exception entries; repeatable.",
    )(command)
    command = click.option(
        "--exceptions-for",
        "exceptions_for",
        multiple=True,
        metavar="RULE=LIST_ID",
        help="Apply exception list LIST_ID to RULE (a rule id, a rule name, or * for every rule); repeatable.",
    )(command)
    return click.option(
        "--exceptions",
        "exception_paths",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help="Kibana exception-list export (NDJSON); repeatable. Lists apply to the rules that reference them "
        "(exceptions_list) and to those named with --exceptions-for.",
    )(command)


def reading_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options on how records are read (``--source``, ``--process-memory``), for the commands that read
    logs."""
    command = click.option(
        "--process-memory",
        type=click.IntRange(min=0),
        default=DEFAULT_PROCESS_MEMORY,
        show_default=True,
        help="Processes (and devices) a normalizer remembers per input, to name a CrowdStrike event's parent or a "
        "Defender device's operating system.",
    )(command)
    return click.option(
        "--source",
        type=click.Choice(sorted(SOURCES)),
        default=None,
        help="Read every record as this source instead of recognizing each one. "
        + "; ".join(f"{name}: {description}" for name, description in SOURCES.items())
        + ".",
    )(command)


def _open_output(stack: ExitStack, output: Path | None, binary: bool) -> IO[Any]:
    if output is None:
        return sys.stdout.buffer if binary else sys.stdout
    try:
        return stack.enter_context(open(output, "wb" if binary else "w", encoding=None if binary else "utf-8"))
    except OSError as exc:
        raise click.FileError(str(output), hint=exc.strerror or str(exc)) from exc


@click.command("hunt")
@click.argument("paths", nargs=-1, required=True)
@rules_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format. Default: table on a terminal, ndjson otherwise.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write alerts to FILE.")
@click.option("--from", "start", type=TimeBound(), help="Only events at or after this ISO 8601 time.")
@click.option("--to", "end", type=TimeBound(), help="Only events before this ISO 8601 time.")
@click.option("--fail-on-alert", is_flag=True, help="Exit with status 1 when there are alerts (for scripts).")
@reading_options
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to read with (default: all cores; small inputs are read in-process).",
)
@exception_options
def hunt_command(
    paths: Sequence[str],
    rule_paths: Sequence[Path],
    output_format: str | None,
    output: Path | None,
    start: datetime | None,
    end: datetime | None,
    fail_on_alert: bool,
    source: str | None,
    process_memory: int,
    workers: int | None,
    exception_paths: Sequence[str],
    exceptions_for: Sequence[str],
    value_lists: Sequence[str],
) -> None:
    """Hunt PATHS (EVTX, event XML, JSON/NDJSON, .gz/.zip, folders, - for stdin) with the rules.

    Without --rules the bundled pack runs: Elastic's "Web Shell Detection: Script Process Child of Common Web
    Processes" (EQL) and the Sigma rule for suspicious processes spawned by web servers.
    """
    loaded = load_selected_rules(rule_paths)
    if not loaded.rules:
        click.echo("shellwatch: no rule could be loaded; nothing to hunt with", err=True)
        sys.exit(EXIT_NO_RULES)
    rules = RuleSet(loaded.rules)
    exceptions = exception_spec(exception_paths, exceptions_for, value_lists)
    if output_format is None:
        output_format = "table" if output is None and sys.stdout.isatty() else "ndjson"

    err = make_console(stderr=True)
    listed = 0

    def on_problem(problem: ReadProblem) -> None:
        nonlocal listed
        listed += 1
        if listed <= MAX_LISTED_PROBLEMS:
            err.print(Text(f"shellwatch: warning: {safe_text(str(problem))}"), soft_wrap=True)
        elif listed == MAX_LISTED_PROBLEMS + 1:
            err.print(Text("shellwatch: further problems are counted in the summary"), soft_wrap=True)

    stats = HuntStats()
    with ExitStack() as stack:
        progress = stack.enter_context(_Progress(stderr_is_terminal()))
        alerts: Iterator[dict[str, Any]] = _hunter(paths)(
            list(paths),
            rules,
            start=start,
            end=end,
            stats=stats,
            on_problem=on_problem,
            on_progress=progress.update,
            workers=workers,
            source=source,
            process_memory=process_memory,
            exceptions=exceptions,
        )
        if output_format == "ndjson":
            write_ndjson(alerts, _open_output(stack, output, binary=True))
        elif output_format == "json":
            write_json_array(alerts, _open_output(stack, output, binary=True))
        elif output_format == "csv":
            write_csv(alerts, _open_output(stack, output, binary=False))
        else:
            table = AlertTable()
            for alert in alerts:
                table.add(alert)
            progress.stop()
            out = make_console()
            if output is not None:
                out = Console(
                    file=_open_output(stack, output, binary=False), markup=False, emoji=False, highlight=False
                )
            table.print(out)
            print_rule_summary(out, stats.alerts_by_rule)

    _print_summary(err, stats, len(rules))
    if stats.records == 0 and stats.problems:
        sys.exit(EXIT_NOTHING_READ)
    if fail_on_alert and stats.alerts:
        sys.exit(EXIT_ALERTS)
