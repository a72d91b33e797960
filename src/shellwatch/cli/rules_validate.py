"""``shellwatch rules validate PATH...``: every rule under PATH is ok, unsupported (which feature) or an
error.

A rule is ok when it loads, its query compiles to the IR and the IR compiles to a predicate (what ``hunt``
runs). Sigma rules whose log source is only partly mapped stay ok, with the gap in the reason: their fields
still match the events that carry them. Files are validated in worker processes when there are many of them
(parsing dominates: ~9 ms per EQL query, ~1 ms per Sigma rule); results keep file order.

Output: one line per rule (``--format text``) or one JSON object per rule per line (``--format json``: keys
``path``, ``rule_id``, ``name``, ``language``, ``status``, ``reason``, nothing else on stdout), then a summary
-- on stdout for text, on stderr for JSON. Exit status 1 when any rule or file is an error; unsupported rules
alone are not an error.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shellwatch.cli.display import make_console, safe_text, stderr_is_terminal
from shellwatch.query.errors import UnsupportedQuery
from shellwatch.rules.loader import PARALLEL_FROM_FILES, iter_rule_files, load_rule_file
from shellwatch.rules.outcome import LoadOutcome, Status


@dataclass(frozen=True, slots=True)
class ValidationRecord:
    """The validation outcome of one rule (or one unreadable file), small enough to pass between processes."""

    path: str
    where: str
    rule_id: str | None
    name: str | None
    language: str | None
    status: Status
    reason: str

    def to_json(self) -> dict[str, str | None]:
        """The ``--format json`` object."""
        return {
            "path": self.path,
            "rule_id": self.rule_id,
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "reason": self.reason,
        }


def _positioned_reason(outcome: LoadOutcome, status: Status, reason: str) -> str:
    # The JSON record has no position field: where a file holds several rules or the parser names a line, an
    # error's reason says so.
    if status != "error":
        return reason
    prefix = []
    if outcome.index is not None and outcome.index > 0:
        prefix.append(f"document {outcome.index}")
    if outcome.line is not None:
        prefix.append(f"line {outcome.line}")
    return f"{', '.join(prefix)}: {reason}" if prefix else reason


def _record(outcome: LoadOutcome, status: Status, reason: str) -> ValidationRecord:
    return ValidationRecord(
        path=outcome.path,
        where=outcome.where,
        rule_id=outcome.rule_id,
        name=outcome.name,
        language=outcome.language,
        status=status,
        reason=_positioned_reason(outcome, status, reason),
    )


def validate_file(path: Path) -> list[ValidationRecord]:
    """Load one file and compile each loaded rule's IR to a predicate; never raises for bad content."""
    from shellwatch.engine.compile_python import compile_predicate

    records: list[ValidationRecord] = []
    for outcome in load_rule_file(path):
        status: Status = outcome.status
        reason = outcome.reason
        if outcome.rule is not None:
            try:
                compile_predicate(outcome.rule.ir)
            except UnsupportedQuery as exc:
                status, reason = "unsupported", str(exc)
            except (ValueError, TypeError, RecursionError) as exc:
                status, reason = "error", f"cannot compile the query: {exc}"
        records.append(_record(outcome, status, reason))
    return records


def validate_paths(paths: Sequence[Path], jobs: int, progress: bool) -> Iterator[ValidationRecord]:
    """Validation records of every rule file under ``paths``, in file order."""
    files = list(iter_rule_files(paths))
    if jobs > 1 and len(files) >= PARALLEL_FROM_FILES:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            # map() starts the workers before the progress bar starts its refresh thread: forking a process
            # that runs threads is unsafe.
            batches = pool.map(validate_file, files, chunksize=8)
            yield from _with_progress(batches, len(files), progress)
    else:
        yield from _with_progress(map(validate_file, files), len(files), progress)


def _with_progress(batches: Iterator[list[ValidationRecord]], total: int, progress: bool) -> Iterator[ValidationRecord]:
    if not progress:
        for batch in batches:
            yield from batch
        return
    bar = Progress(
        TextColumn("validating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=make_console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("files", total=total)
        for batch in batches:
            bar.advance(task)
            yield from batch


def reason_key(record: ValidationRecord) -> str:
    """The reason's kind, for the summary: the reason's text before its first ':' (a feature or kind)."""
    reason = record.reason
    if record.status == "error" and (reason.startswith("document ") or reason.startswith("line ")):
        reason = reason.split(": ", 1)[-1]
    return reason.split(":", 1)[0].strip()


def _text_line(record: ValidationRecord) -> str:
    name = f"  {safe_text(record.name)}" if record.name else ""
    reason = f"  -- {safe_text(record.reason)}" if record.reason else ""
    return f"{record.status:<11} {safe_text(record.where)}{name}{reason}"


SUMMARY_REASONS = 12
"""Reasons listed per outcome in the summary; the rest are counted together."""


def summary_lines(records: Sequence[ValidationRecord]) -> list[str]:
    """Counts by outcome, then by reason within each outcome that has reasons (the most frequent first)."""
    by_status = Counter(record.status for record in records)
    lines = [
        f"{len(records)} rules: "
        + ", ".join(f"{by_status.get(status, 0)} {status}" for status in ("ok", "unsupported", "error"))
    ]
    for status in ("unsupported", "error", "ok"):
        reasons = Counter(reason_key(r) for r in records if r.status == status and r.reason)
        if not reasons:
            continue
        heading = "ok, with a note" if status == "ok" else status
        lines.append(f"{heading} by reason:")
        ranked = reasons.most_common()
        lines.extend(f"  {count:>6}  {safe_text(reason)}" for reason, count in ranked[:SUMMARY_REASONS])
        rest = ranked[SUMMARY_REASONS:]
        if rest:
            lines.append(f"  {sum(c for _, c in rest):>6}  ({len(rest)} other reasons)")
    return lines


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a line per rule and a summary; json: one JSON object per rule per line (summary on stderr).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the number of CPUs).",
)
def validate(paths: Sequence[Path], output_format: Literal["text", "json"], jobs: int | None) -> None:
    """Check every rule file under PATH: ok, unsupported (which feature) or error (why, where)."""
    records: list[ValidationRecord] = []
    for record in validate_paths(paths, jobs or os.cpu_count() or 1, stderr_is_terminal()):
        records.append(record)
        if output_format == "json":
            click.echo(json.dumps(record.to_json(), ensure_ascii=False))
        else:
            click.echo(_text_line(record))
    summary = summary_lines(records)
    for line in summary:
        click.echo(line, err=output_format == "json")
    if any(record.status == "error" for record in records):
        raise SystemExit(1)
