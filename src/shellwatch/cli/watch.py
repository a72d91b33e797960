"""``shellwatch watch``: live detection over growing logs, with crash-safe state (see docs/watch.md).

Alerts go to the sinks (``-o FILE``: an NDJSON file; ``--webhook URL``: batches POSTed, spooled while the receiver
is away; with neither, ``alerts.ndjson`` in the state folder); notices,
problems and one line per rule run that created or dropped alerts go to stderr. Ctrl-C (SIGINT) or SIGTERM stops
after the current step, with the state committed and the sinks closed; the exit status is then 0. Exit status 2:
usage errors, no rule loaded, or a state folder or sink that cannot be used; 4: the state database failed while
watching (disk full, I/O error), what was committed before is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from shellwatch.cli.display import safe_text
from shellwatch.cli.hunt import (
    EXIT_NO_RULES,
    MAX_LISTED_PROBLEMS,
    exception_options,
    exception_spec,
    reading_options,
)
from shellwatch.cli.rule_selection import load_selected_rules, rules_option
from shellwatch.engine.ruleset import RuleSet
from shellwatch.sinks.base import AlertSink, SinkError
from shellwatch.sinks.ndjson_file import NdjsonFileSink
from shellwatch.sources.record import ReadProblem
from shellwatch.watch.runner import RunSummary, Watcher, WatchSettings
from shellwatch.watch.state import DATABASE_NAME, StateError, WatchState, default_state_dir

EXIT_UNUSABLE = 2
"""The state folder or a sink cannot be used at start (the status of usage errors too)."""
EXIT_STATE_FAILED = 4
"""The state database failed while watching (disk full, I/O error)."""
WEBHOOK_SPOOL = "webhook-spool"
"""The state folder's folder of webhook spools, one per receiver."""
RECEIVER_NOTE = "receiver"
"""A file in each webhook spool naming its receiver (redacted), for the messages about spools left behind."""

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
    """The spool folder of one webhook: under the state folder, one per receiver, so that batches spooled for one
    receiver are never sent to another. The receiver is the URL without credentials or query values
    (:func:`~shellwatch.sinks.webhook.receiver_identity`), as the outbox names the sink: a rotated token finds the
    batches spooled under the old one. ``ValueError`` when ``url`` is no http(s) URL."""
    from shellwatch.sinks.webhook import receiver_identity

    identity = receiver_identity(url)
    return state_dir / WEBHOOK_SPOOL / hashlib.sha256(identity.encode()).hexdigest()[:16]


def _note_receiver(spool_dir: Path, sink_name: str) -> None:
    """Name the receiver in its spool folder (redacted), so that a spool left behind can be told apart."""
    note = spool_dir / RECEIVER_NOTE
    with contextlib.suppress(OSError):
        if not note.exists():
            note.write_text(sink_name + "\n", encoding="utf-8")
            note.chmod(0o600)


def _batch_files(folder: Path) -> int:
    try:
        return sum(1 for path in folder.iterdir() if path.suffix == ".json" and not path.name.startswith("."))
    except OSError:
        return 0


def stranded_spools(state_dir: Path, in_use: Sequence[Path]) -> list[str]:
    """Messages about webhook spools in the state folder that hold batches but belong to no webhook of this run (a
    URL changed, a webhook no longer configured): nothing sends those batches until their receiver is named again."""
    root = state_dir / WEBHOOK_SPOOL
    try:
        folders = sorted(path for path in root.iterdir() if path.is_dir())
    except OSError:
        return []
    used = {path.resolve() for path in in_use}
    messages = []
    for folder in folders:
        if folder.resolve() in used:
            continue
        pending, rejected = _batch_files(folder / "pending"), _batch_files(folder / "rejected")
        if not pending and not rejected:
            continue
        try:
            receiver = (folder / RECEIVER_NOTE).read_text(encoding="utf-8").strip() or "an unknown webhook"
        except OSError:
            receiver = "a webhook URL of an earlier version"
        messages.append(
            f"warning: {folder} holds {pending} unsent and {rejected} rejected alert batches for {receiver}, "
            "not configured in this run: they are sent only when that receiver is named again with --webhook"
        )
    return messages


def build_sinks(
    outputs: Sequence[Path],
    state_dir: Path,
    webhooks: Sequence[str] = (),
    webhook_headers: Mapping[str, str] | None = None,
) -> list[AlertSink]:
    """The sinks the options name: an NDJSON file per ``-o`` and a webhook per ``--webhook``; the state folder's
    alert file when neither is named."""
    paths = list(outputs) or ([] if webhooks else [state_dir / DEFAULT_ALERT_FILE])
    sinks: list[AlertSink] = []
    try:
        for path in paths:
            sinks.append(NdjsonFileSink(path))
        for url in webhooks:
            # Imported here: http.client and ssl are needed only when a webhook is named.
            from shellwatch.sinks.webhook import WebhookSink

            try:
                spool_dir = webhook_spool_dir(state_dir, url)
                webhook = WebhookSink(url, spool_dir=spool_dir, headers=webhook_headers)
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="--webhook") from None
            sinks.append(webhook)
            _note_receiver(spool_dir, webhook.name)
    except BaseException:
        # The sinks built so far hold files and spool locks: released before the error is reported.
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _spool_summary(sinks: Sequence[AlertSink]) -> list[str]:
    """What webhook spools still hold at the end: batches to be sent on the next run, and batches the receiver
    refused for good, which only a person can act on."""
    from shellwatch.sinks.webhook import WebhookSink

    lines = []
    for sink in sinks:
        if not isinstance(sink, WebhookSink):
            continue
        spool = sink.spool
        if len(spool):
            lines.append(f"{sink.name}: {len(spool)} batches not yet delivered wait in {spool.pending_dir}")
        rejected = spool.rejected()
        if rejected:
            lines.append(
                f"{sink.name}: {len(rejected)} batches refused for good are kept in {spool.rejected_dir} "
                "(each with a .reason file); nothing sends them again"
            )
    return lines


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
@reading_options
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
        sys.exit(EXIT_UNUSABLE)
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
    failure: str | None = None
    exit_code = 0
    try:
        sinks = build_sinks(outputs, folder, webhooks, headers)
        for message in stranded_spools(folder, [webhook_spool_dir(folder, url) for url in webhooks]):
            _say(message)
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
        failure, exit_code = str(error), EXIT_UNUSABLE
    except sqlite3.Error as error:
        # Disk full, an I/O error: every step commits before the next, so what was committed stays consistent.
        failure = f"state database {folder / DATABASE_NAME} failed: {error}; stopped, committed work is kept"
        exit_code = EXIT_STATE_FAILED
    finally:
        for sink in sinks:
            sink.close()
        with contextlib.suppress(sqlite3.Error):
            state.close()
    for line in _spool_summary(sinks) if webhooks else ():
        _say(line)
    if failure is not None:
        _say(failure)
        sys.exit(exit_code)
    _say(
        f"stopped: {totals.events:,} events read, {totals.runs} rule runs, {totals.alerts} alerts created"
        + (f", {totals.dropped} dropped at max_signals" if totals.dropped else "")
        + f", {totals.delivered} batches handed to sinks"
    )
