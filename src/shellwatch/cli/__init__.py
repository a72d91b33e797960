"""The ``shellwatch`` command line: one click group, each command in its own module.

To add a command, write it in ``shellwatch/cli/<name>.py`` and add one line to :data:`COMMANDS`.
"""

from __future__ import annotations

import click

from shellwatch import __version__
from shellwatch.cli.lazy_group import LazyGroup

COMMANDS: dict[str, str] = {
    "rules": "shellwatch.cli.rules:rules",
    "eval": "shellwatch.cli.evaluate:eval_command",
    "hunt": "shellwatch.cli.hunt:hunt_command",
    "backtest": "shellwatch.cli.backtest:backtest_command",
    "watch": "shellwatch.cli.watch:watch_command",
}
"""Command name -> ``"module:attribute"`` of its click command."""


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shellwatch")
def main() -> None:
    """Run Elastic EQL and Sigma detection rules over Windows event logs and EDR exports."""
