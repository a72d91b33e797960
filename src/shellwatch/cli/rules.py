"""``shellwatch rules``: the rule commands (list, show, validate), each in its own module."""

from __future__ import annotations

import click

from shellwatch.cli.lazy_group import LazyGroup

RULE_COMMANDS: dict[str, str] = {
    "list": "shellwatch.cli.rules_list:list_rules",
    "show": "shellwatch.cli.rules_show:show_rule",
    "validate": "shellwatch.cli.rules_validate:validate",
}
"""Sub-command name -> ``"module:attribute"`` of its click command."""


@click.group(cls=LazyGroup, lazy_commands=RULE_COMMANDS)
def rules() -> None:
    """List, show and validate detection rules (Elastic TOML, Kibana JSON/NDJSON, Sigma YAML)."""
