"""``shellwatch watch``: live detection over growing logs, with crash-safe state (see docs/watch.md).

Alerts go to the sinks (``-o FILE``: an NDJSON file; ``--webhook URL``: batches POSTed, spooled while the receiver
is away; with neither, ``alerts.ndjson`` in the state folder); notices,
problems and one line per rule run that created or dropped alerts go to stderr. Ctrl-C (SIGINT) or SIGTERM stops
after the current step, with the state committed and the sinks closed; the exit status is then 0. Exit status 2:
usage errors, no rule loaded, or a state folder that cannot be used.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from shellwatch.cli.display import safe_text
from shellwatch.cli.hunt import EXIT_NO_RULES, MAX_LISTED_PROBLEMS, exception_options, exception_spec
from shellwatch.cli.rule_selection import load_selected_rules, rules_option
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import DEFAULT_PROCESS_MEMORY
from shellwatch.normalize.dispatch import SOURCES
from shellwatch.sinks.base import AlertSink, SinkError
from shellwatch.sinks.ndjson_file import NdjsonFileSink
from shellwatch.sources.record import ReadProblem
from shellwatch.watch.runner import RunSummary, Watcher, WatchSettings
from shellwatch.watch.state import StateError, WatchState, default_state_dir

DEFAULT_ALERT_FILE = "alerts.ndjson"
"""The NDJSON sink's file in the state folder when no sink is named."""


def _say(text: str) -> None:
    click.echo(f"shellwatch: {safe_text(text)}", err=True)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the loop finishes its step) instead of interrupting the step."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def webhook_spool_dir(state_dir: Path, url: str) -> Path:
    """The spool folder of one webhook: under the state folder, one per URL, so that batches spooled for one
    receiver are never sent to another."""
    return state_dir / "webhook-spool" / hashlib.sha256(url.encode()).hexdigest()[:16]


def build_sinks(
    outputs: Sequence[Path],
    state_dir: Path,
    webhooks: Sequence[str] = (),
    webhook_headers: Mapping[str, str] | None = None,
) -> list[AlertSink]:
    """The sinks the options name: an NDJSON file per ``-o`` and a webhook per ``--webhook``; the state folder's
    alert file when neither is named."""
    paths = list(outputs) or ([] if webhooks else [state_dir / DEFAULT_ALERT_FILE])
    sinks: list[AlertSink] = [NdjsonFileSink(path) for path in paths]
    for url in webhooks:
        # Imported here: http.client and ssl are needed only when a webhook is named.
        from shellwatch.sinks.webhook import WebhookSink

        try:
            sinks.append(WebhookSink(url, spool_dir=webhook_spool_dir(state_dir, url), headers=webhook_headers))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--webhook") from None
    return sinks


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, colon, content = value.partition(":")
        if not colon or not name.strip():
            raise click.BadParameter(f"{value!r} is not NAME:VALUE", param_hint="--webhook-header")
        headers[name.strip()] = content.strip()
    return headers


@click.command("watch")
@click.argument("paths", nargs=-1, required=True)
@rules_option
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State folder: read positions, rule runs, alert ids, undelivered batches (SQLite). "
    f"Default: {default_state_dir()}.",
)
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Append alerts to this NDJSON file (repeatable). Default: {DEFAULT_ALERT_FILE} in the state folder.",
)
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    metavar="URL",
    help="POST alert batches as JSON to URL (repeatable), with an Idempotency-Key header; batches the receiver "
    "does not take are spooled in the state folder and sent later.",
)
@click.option(
    "--webhook-header",
    "webhook_headers",
    multiple=True,
    metavar="NAME:VALUE",
    help="A header to send with every webhook request (repeatable), e.g. an Authorization token.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    help="Seconds between looks at the inputs when nothing new came.",
)
@click.option(
    "--run-every",
    type=click.FloatRange(min=0.01),
    default=None,
    help="Run every rule every SECONDS instead of its own interval (its additional look-back is kept).",
)
@click.option("--once", is_flag=True, help="Read every input to its end, run every rule, deliver, exit.")
@click.option(
    "--source",
    type=click.Choice(sorted(SOURCES)),
    default=None,
    help="Read every record as this source instead of recognizing each one.",
)
@click.option(
    "--process-memory",
    type=click.IntRange(min=0),
    default=DEFAULT_PROCESS_MEMORY,
    show_default=True,
    help="Processes (and devices) a normalizer remembers per input.",
)
@exception_options
def watch_command(
    paths: Sequence[str],
    rule_paths: Sequence[Path],
    state_dir: Path | None,
    outputs: Sequence[Path],
    webhooks: Sequence[str],
    webhook_headers: Sequence[str],
    poll: float,
    run_every: float | None,
    once: bool,
    source: str | None,
    process_memory: int,
    exception_paths: Sequence[str],
    exceptions_for: Sequence[str],
    value_lists: Sequence[str],
) -> None:
    """Follow PATHS (growing NDJSON and EVTX files, folders that gain files, - for stdin), run each rule on its
    schedule over the events that arrive, and deliver the alerts; restarts lose and duplicate nothing."""
    loaded = load_selected_rules(rule_paths)
    if not loaded.rules:
        _say("no rule could be loaded; nothing to watch with")
        sys.exit(EXIT_NO_RULES)
    rules = RuleSet(loaded.rules)
    headers = _headers(webhook_headers)
    spec = exception_spec(exception_paths, exceptions_for, value_lists)
    folder = state_dir if state_dir is not None else default_state_dir()
    try:
        state = WatchState.open(folder)
    except StateError as error:
        _say(str(error))
        sys.exit(EXIT_NO_RULES)
    listed = 0

    def on_problem(problem: ReadProblem) -> None:
        nonlocal listed
        listed += 1
        if listed <= MAX_LISTED_PROBLEMS:
            _say(f"warning: {problem}")
        elif listed == MAX_LISTED_PROBLEMS + 1:
            _say("further problems are not listed")

    def on_run(summary: RunSummary) -> None:
        if summary.created or summary.dropped or summary.updated:
            dropped = f", {summary.dropped} dropped at max_signals" if summary.dropped else ""
            updated = f", {summary.updated} suppressed alerts updated" if summary.updated else ""
            _say(
                f"rule {summary.rule.name!r}: {summary.events} events since its previous run, "
                f"{summary.created} alerts{dropped}{updated}"
            )

    sinks: list[AlertSink] = []
    try:
        sinks = build_sinks(outputs, folder, webhooks, headers)
        watcher = Watcher(
            list(paths),
            rules,
            state,
            sinks,
            settings=WatchSettings(poll=poll, run_every=run_every, source=source, process_memory=process_memory),
            exceptions=spec.load() if spec is not None else None,
            on_problem=on_problem,
            on_notice=_say,
            on_run=on_run,
        )
        _say(f"watching {len(paths)} path(s) with {len(rules)} rules; state in {folder}; alerts to "
             + ", ".join(sink.name for sink in sinks))  # fmt: skip
        stop = threading.Event()
        with _stop_on_signals(stop):
            totals = watcher.run(stop, once=once)
    except SinkError as error:
        _say(str(error))
        sys.exit(EXIT_NO_RULES)
    finally:
        for sink in sinks:
            sink.close()
        state.close()
    _say(
        f"stopped: {totals.events:,} events read, {totals.runs} rule runs, {totals.alerts} alerts created"
        + (f", {totals.dropped} dropped at max_signals" if totals.dropped else "")
        + f", {totals.delivered} batches delivered"
    )
