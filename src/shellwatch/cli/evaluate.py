"""``shellwatch eval``: run rules (a rule set, one EQL query or one Sigma file) over NDJSON ECS events.

``--format ndjson`` prints each matching event exactly as it was read (its original line), once however many
rules match, and nothing else on stdout; ``--format table`` prints a table of matches (rule, @timestamp, host,
parent -> child, command line) and a count. Problems with the input (a broken JSON line, an unreadable file)
are warnings on stderr naming the file and line, and evaluation goes on; the exit status is 0. Bad arguments
(an invalid ``--eql`` query, no rule source or more than one) are usage errors, exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click
from rich.table import Table

from shellwatch.cli.display import cell, make_console, safe_text
from shellwatch.cli.ndjson_events import BadLine, read_events
from shellwatch.cli.rule_selection import load_selected_rules, report_not_loaded
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.rules.outcome import LoadResult

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class RunnableRule:
    """A rule and its compiled predicate."""

    rule: Rule
    predicate: Predicate


def _warn(message: str) -> None:
    click.echo(f"shellwatch: warning: {message}", err=True)


def eql_query_rule(query: str) -> Rule:
    """A rule for an ``--eql`` query given on the command line; raises click.BadParameter if it cannot run."""
    from shellwatch.query.eql import parse_eql

    try:
        ir = parse_eql(query)
    except (QueryError, UnsupportedQuery) as exc:
        raise click.BadParameter(safe_text(str(exc)), param_hint="'--eql'") from None
    return Rule(
        rule_id="eql-query",
        name="--eql query",
        description="EQL query given on the command line",
        type="eql",
        language="eql",
        query=query,
        ir=ir,
        source=RuleSource(path="<command line>"),
    )


def sigma_file_rules(path: Path) -> LoadResult:
    """The rules of a Sigma file, whatever its extension."""
    from shellwatch.rules.loader import with_sigma_filters
    from shellwatch.rules.sigma_yaml import load_sigma_yaml

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{safe_text(path)}: cannot read: {safe_text(exc)}") from None
    return with_sigma_filters(load_sigma_yaml(text, str(path)))


def compile_rules(rules: Sequence[Rule]) -> list[RunnableRule]:
    """Each rule with its predicate; a rule the engine cannot run is skipped with a warning."""
    from shellwatch.engine.compile_python import compile_predicate

    runnable: list[RunnableRule] = []
    for rule in rules:
        try:
            runnable.append(RunnableRule(rule, compile_predicate(rule.ir)))
        except UnsupportedQuery as exc:
            _warn(f"{safe_text(rule.source)}: rule {safe_text(rule.name)!r} not run: {safe_text(exc)}")
    return runnable


def _first(event: Mapping[str, Any], *paths: str) -> Any:
    for path in paths:
        value = event.get(path)
        if value not in (None, "", []):
            return value
    return None


def _process_pair(event: Mapping[str, Any]) -> str:
    parent = _first(event, "process.parent.name", "process.parent.executable")
    child = _first(event, "process.name", "process.executable")
    return f"{safe_text(parent) or '?'} -> {safe_text(child) or '?'}"


def _select_rules(rule_paths: Sequence[Path], eql_query: str | None, sigma_paths: Sequence[Path]) -> list[Rule]:
    chosen = sum((bool(rule_paths), eql_query is not None, bool(sigma_paths)))
    if chosen != 1:
        raise click.UsageError("give exactly one of --rules, --eql or --sigma")
    if eql_query is not None:
        return [eql_query_rule(eql_query)]
    if rule_paths:
        return list(load_selected_rules(rule_paths).rules)
    rules: list[Rule] = []
    for path in sigma_paths:
        result = sigma_file_rules(path)
        report_not_loaded(result)
        rules.extend(result.rules)
    return rules


@click.command("eval")
@click.option(
    "--rules",
    "rule_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Rule file or folder (repeatable).",
)
@click.option("--eql", "eql_query", metavar="QUERY", help="One EQL query.")
@click.option(
    "--sigma",
    "sigma_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Sigma rule file (repeatable).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "ndjson"]),
    default="table",
    show_default=True,
    help="table: matches as a table and a count; ndjson: each matching event's original line.",
)
@click.argument(
    "event_paths",
    metavar="EVENTS.ndjson...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
def eval_command(
    rule_paths: Sequence[Path],
    eql_query: str | None,
    sigma_paths: Sequence[Path],
    output_format: Literal["table", "ndjson"],
    event_paths: Sequence[Path],
) -> None:
    """Print the events in EVENTS.ndjson (ECS documents, one per line) that the rules match."""
    runnable = compile_rules(_select_rules(rule_paths, eql_query, sigma_paths))
    if not runnable:
        _warn("no rule to run")

    stdout = sys.stdout.buffer
    table = Table()
    for header in ("Rule", "@timestamp", "Host", "Parent -> Child", "Command line"):
        table.add_column(header, overflow="fold")
    matched_events = 0
    matches = 0
    for path in event_paths:
        try:
            for item in read_events(path):
                if isinstance(item, BadLine):
                    _warn(f"{safe_text(item.path)}:{item.line}: {safe_text(item.reason)}")
                    continue
                hits = [entry.rule for entry in runnable if entry.predicate(item.event)]
                if not hits:
                    continue
                matched_events += 1
                matches += len(hits)
                if output_format == "ndjson":
                    stdout.write(item.raw + b"\n")
                    continue
                for rule in hits:
                    table.add_row(
                        cell(rule.name),
                        cell(item.event.get("@timestamp")),
                        cell(_first(item.event, "host.name", "host.hostname")),
                        cell(_process_pair(item.event)),
                        cell(item.event.get("process.command_line")),
                    )
        except OSError as exc:
            _warn(f"{safe_text(path)}: cannot read: {safe_text(exc.strerror or exc)}")
    if output_format == "table":
        console = make_console()
        if matches:
            console.print(table)
        console.print(cell(f"{matched_events} matching events ({matches} rule matches)"))
    else:
        stdout.flush()
