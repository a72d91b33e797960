"""``shellwatch rules show RULE``: one rule's metadata, ATT&CK mapping, investigation guide, exceptions, the Sigma
filters applied to it, and its compiled query."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from shellwatch.cli.display import cell, make_console, safe_text
from shellwatch.cli.hunt import exception_options, exception_spec
from shellwatch.cli.rule_selection import load_selected_rules, rules_option
from shellwatch.cli.rules_list import source_label
from shellwatch.query.render import render_ir
from shellwatch.rules.model import Rule
from shellwatch.rules.sigma_filters import SigmaFilter, sigma_filter_report


def find_rules(rules: Sequence[Rule], wanted: str) -> list[Rule]:
    """Rules with rule_id ``wanted``; else whose id starts with it; else named exactly that; else whose name contains
    it (any case): a rule's full name picks it even when another rule's name extends it."""
    lowered = wanted.lower()
    exact = [rule for rule in rules if rule.rule_id.lower() == lowered]
    if exact:
        return exact
    prefixed = [rule for rule in rules if rule.rule_id.lower().startswith(lowered)]
    if prefixed:
        return prefixed
    named = [rule for rule in rules if rule.name.lower() == lowered]
    if named:
        return named
    return [rule for rule in rules if lowered in rule.name.lower()]


def _metadata_table(rule: Rule) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows: list[tuple[str, object]] = [
        ("rule_id", rule.rule_id),
        ("name", rule.name),
        ("description", rule.description),
        ("type / language", f"{rule.type} / {rule.language}"),
        ("severity", rule.severity),
        ("risk_score", rule.risk_score),
        ("version", rule.version),
        ("status", rule.status),
        ("interval / from", f"{rule.interval} / {rule.from_}"),
        ("max_signals", rule.max_signals),
        ("index", list(rule.index)),
        ("logsource", [f"{key}: {value}" for key, value in rule.logsource.items()]),
        ("author", list(rule.author)),
        ("license", rule.license),
        ("tags", list(rule.tags)),
        ("references", list(rule.references)),
        ("false_positives", list(rule.false_positives)),
        ("timestamp_override", rule.timestamp_override),
        ("building_block_type", rule.building_block_type),
        ("exceptions_list", len(rule.exceptions_list) if rule.exceptions_list else None),
        ("source", source_label(rule)),
    ]
    for key, value in rows:
        if value in (None, "", []):
            continue
        table.add_row(Text(key), cell(value, keep_newlines=key == "false_positives"))
    return table


def _attack_text(rule: Rule) -> Text:
    text = Text()
    for threat in rule.threat:
        text.append(safe_text(f"{threat.tactic.id} {threat.tactic.name}"), style="bold")
        text.append(safe_text(f"  {threat.tactic.reference}") + "\n")
        for technique in threat.techniques:
            text.append(safe_text(f"  {technique.id} {technique.name}") + "\n")
            for sub in technique.subtechniques:
                text.append(safe_text(f"    {sub.id} {sub.name}") + "\n")
    return text


def _filter_lines(sigma_filter: SigmaFilter) -> list[str]:
    """One applied filter: its title and id (when it has one), then where it is and its condition (its detection
    is part of the compiled query below)."""
    heading = (
        sigma_filter.title if sigma_filter.filter_id is None else f"{sigma_filter.title}  ({sigma_filter.filter_id})"
    )
    return [heading, f"  {sigma_filter.where}", f"  condition: {sigma_filter.detection.get('condition')}"]


def _heading(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


@click.command("show")
@click.argument("rule_ref", metavar="RULE")
@rules_option
@click.option(
    "--markdown/--plain",
    default=False,
    help="Render the investigation guide as Markdown (default: plain text, as written).",
)
@exception_options
def show_rule(
    rule_ref: str,
    rule_paths: Sequence[Path],
    markdown: bool,
    exception_paths: Sequence[str],
    exceptions_for: Sequence[str],
    value_lists: Sequence[str],
) -> None:
    """Show RULE (a rule_id, an id prefix, or part of a name): metadata, ATT&CK, guide, compiled query."""
    result = load_selected_rules(rule_paths)
    rules = result.rules
    found = find_rules(rules, rule_ref)
    if not found:
        raise click.ClickException(f"no rule matches {safe_text(rule_ref)!r}")
    if len(found) > 1:
        names = "\n".join(f"  {safe_text(rule.rule_id)}  {safe_text(rule.name)}" for rule in found)
        raise click.ClickException(f"{len(found)} rules match {safe_text(rule_ref)!r}; give more of the id:\n{names}")
    rule = found[0]
    console = make_console()
    console.print(Text(safe_text(rule.name), style="bold"))
    console.print(_metadata_table(rule))
    if rule.threat:
        console.print(_heading("ATT&CK"))
        console.print(_attack_text(rule), end="")
    if rule.note:
        console.print(_heading("Investigation guide"))
        if markdown:
            # Markdown source is not rich markup; controls are escaped first; links are not made clickable.
            console.print(Markdown(safe_text(rule.note, keep_newlines=True), hyperlinks=False))
        else:
            console.print(cell(rule.note, keep_newlines=True))
    spec = exception_spec(exception_paths, exceptions_for, value_lists)
    if spec is not None or rule.exceptions_list:
        console.print(_heading("Exceptions"))
        if spec is not None:
            lines = spec.load().for_rule(rule).describe()
        else:
            lines = [
                "referenced (give the exported lists with --exceptions to see their items): "
                + ", ".join(str(entry.get("list_id", entry.get("id", "?"))) for entry in rule.exceptions_list)
            ]
        for line in lines:
            console.print(cell(line, keep_newlines=False))
    applied = sigma_filter_report(result).for_rule(rule.rule_id)
    if applied:
        console.print(_heading("Sigma filters"))
        for sigma_filter in applied:
            for line in _filter_lines(sigma_filter):
                console.print(cell(line, keep_newlines=False))
    console.print(_heading("Query"))
    console.print(cell(rule.query.strip("\n"), keep_newlines=True))
    console.print(_heading("Compiled (IR)"))
    console.print(cell(render_ir(rule.ir, width=max(40, console.width - 2)), keep_newlines=True))
