"""shellwatch: Elastic EQL and Sigma detection rules over Windows event logs and EDR exports."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

HOT_PATH_MODULES = (
    "shellwatch.triage",
    "shellwatch.sources.evtx_file",
    "shellwatch.prefilter",
    "shellwatch.engine.ruleset",
    "shellwatch.engine.rule_index",
    "shellwatch.engine.patterns",
    "shellwatch.engine.literals",
    "shellwatch.engine.compile_python",
    "shellwatch.normalize.dispatch",
    "shellwatch.normalize.event_class",
    "shellwatch.normalize.windows_event",
    "shellwatch.normalize.sysmon",
    "shellwatch.normalize.security",
    "shellwatch.normalize.providers",
    "shellwatch.normalize.demand",
    "shellwatch.normalize.conversions",
    "shellwatch.normalize.timestamps",
    "shellwatch.normalize.pipeline_values",
    "shellwatch.document_triage",
    "shellwatch.sources.json_records",
)
"""The modules a regular install compiles with mypyc (setup.py): those a hunt spends its time in per EVTX record
or JSON document."""


def compiled_modules() -> list[str]:
    """The modules of :data:`HOT_PATH_MODULES` that run compiled in this install (none in an editable install, or
    where no C compiler was at hand)."""
    return [name for name in HOT_PATH_MODULES if not _is_python_source(importlib.import_module(name).__file__)]


def _is_python_source(path: str | None) -> bool:
    return path is None or path.endswith(".py")
