"""``shellwatch rules list``: a table of the rules that load, one row per rule; then how many Sigma filters the load
applied (and, on stderr, filters that filtered nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.table import Table

from shellwatch.cli.display import cell, make_console, safe_text
from shellwatch.cli.rule_selection import load_selected_rules, rules_option
from shellwatch.rules.loader import bundled_pack_path
from shellwatch.rules.model import Rule
from shellwatch.rules.sigma_filters import sigma_filter_report


def _type_label(rule: Rule) -> str:
    return rule.type if rule.type == rule.language else f"{rule.type}/{rule.language}"


SHORT_ID_LENGTH = 8
"""Characters of the rule_id shown: enough for ``shellwatch rules show`` (which takes an id prefix)."""


def _attack_ids(rule: Rule) -> str:
    # A technique filed under several tactics is listed once.
    return " ".join(dict.fromkeys(rule.tactic_ids + rule.technique_ids))


def source_label(rule: Rule) -> str:
    """Where a rule comes from, short: ``(bundled) file`` or a path relative to the working directory."""
    path = Path(rule.source.path)
    pack = bundled_pack_path()
    if path.parent == pack:
        label = f"(bundled) {path.name}"
    else:
        try:
            label = str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            label = str(path)
    return label if rule.source.index == 0 else f"{label}#{rule.source.index}"


@click.command("list")
@rules_option
def list_rules(rule_paths: Sequence[Path]) -> None:
    """Table of rules: id (first 8 characters), name, type/language, severity, risk, ATT&CK ids, source."""
    result = load_selected_rules(rule_paths)
    table = Table(title=None, show_lines=False, expand=False)
    for header in ("ID", "Name", "Type", "Severity", "Risk", "ATT&CK", "Source"):
        table.add_column(header, overflow="fold", justify="right" if header == "Risk" else "left")
    for rule in result.rules:
        table.add_row(
            cell(rule.rule_id[:SHORT_ID_LENGTH]),
            cell(rule.name),
            cell(_type_label(rule)),
            cell(rule.severity),
            cell(rule.risk_score),
            cell(_attack_ids(rule)),
            cell(source_label(rule)),
        )
    console = make_console()
    console.print(table)
    console.print(cell(f"{len(result.rules)} rules"))
    report = sigma_filter_report(result)
    if report.applications:
        filtered = {rule_id for application in report.applications for rule_id in application.rule_ids}
        console.print(cell(f"{len(report.applications)} Sigma filters, applied to {len(filtered)} rules"))
    for warning in report.warnings:
        click.echo(f"shellwatch: warning: {safe_text(warning)}", err=True)
