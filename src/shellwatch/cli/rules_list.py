"""``shellwatch rules list``: a table of the rules that load, one row per rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.table import Table

from shellwatch.cli.display import cell, make_console
from shellwatch.cli.rule_selection import load_selected_rules, rules_option
from shellwatch.rules.model import Rule


def _type_label(rule: Rule) -> str:
    return rule.type if rule.type == rule.language else f"{rule.type}/{rule.language}"


def _attack_ids(rule: Rule) -> str:
    return " ".join(rule.tactic_ids + rule.technique_ids)


@click.command("list")
@rules_option
def list_rules(rule_paths: Sequence[Path]) -> None:
    """Table of rules: id, name, type/language, severity, risk, ATT&CK ids, source file."""
    result = load_selected_rules(rule_paths)
    table = Table(title=None, show_lines=False, expand=False)
    for header, overflow in (
        ("ID", "fold"),
        ("Name", "fold"),
        ("Type", "fold"),
        ("Severity", "fold"),
        ("Risk", "fold"),
        ("ATT&CK", "fold"),
        ("Source", "fold"),
    ):
        table.add_column(header, overflow=overflow, justify="right" if header == "Risk" else "left")
    for rule in result.rules:
        table.add_row(
            cell(rule.rule_id),
            cell(rule.name),
            cell(_type_label(rule)),
            cell(rule.severity),
            cell(rule.risk_score),
            cell(_attack_ids(rule)),
            cell(str(rule.source)),
        )
    console = make_console()
    console.print(table)
    console.print(cell(f"{len(result.rules)} rules"))
