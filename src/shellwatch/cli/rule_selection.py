"""The ``--rules PATH`` option shared by commands that work on a set of rules, and loading what it names."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from shellwatch.cli.display import safe_text
from shellwatch.rules.loader import load_bundled_rules, load_rules
from shellwatch.rules.outcome import LoadResult

F = TypeVar("F", bound=Callable[..., Any])

MAX_LISTED_ERRORS = 20
"""Rule errors named one by one on stderr before the rest are only counted."""


def rules_option(function: F) -> F:
    """``--rules PATH`` (repeatable): rule files or folders; the bundled pack when absent."""
    option = click.option(
        "--rules",
        "rule_paths",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help="Rule file or folder (repeatable). Default: the rule pack bundled with shellwatch.",
    )
    return option(function)


def load_selected_rules(rule_paths: Sequence[Path]) -> LoadResult:
    """The rules named by ``--rules``, or the bundled pack; what did not load is reported on stderr."""
    result = load_rules(rule_paths, jobs=os.cpu_count() or 1) if rule_paths else load_bundled_rules()
    report_not_loaded(result)
    return result


def report_not_loaded(result: LoadResult) -> None:
    """Errors one per line (up to :data:`MAX_LISTED_ERRORS`) and a count of unsupported rules, on stderr."""
    errors = result.errors
    for outcome in errors[:MAX_LISTED_ERRORS]:
        click.echo(f"shellwatch: error: {safe_text(outcome.where)}: {safe_text(outcome.reason)}", err=True)
    if len(errors) > MAX_LISTED_ERRORS:
        click.echo(f"shellwatch: ... and {len(errors) - MAX_LISTED_ERRORS} more rule errors", err=True)
    # Imported here: the filter report is needed only once rules have loaded.
    from shellwatch.rules.sigma_filters import sigma_filter_report

    for warning in sigma_filter_report(result).warnings:
        click.echo(f"shellwatch: warning: {safe_text(warning)}", err=True)
    unsupported = result.unsupported
    if unsupported:
        features = Counter(outcome.reason.split(":")[0] for outcome in unsupported)
        top = ", ".join(f"{safe_text(feature)} ({count})" for feature, count in features.most_common(3))
        click.echo(
            f"shellwatch: {len(unsupported)} rules use features shellwatch does not run yet: {top}"
            " -- see `shellwatch rules validate`",
            err=True,
        )
