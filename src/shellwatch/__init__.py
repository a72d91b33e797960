"""shellwatch: Elastic EQL and Sigma detection rules over Windows event logs and EDR exports."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

HOT_PATH_MODULES = ("shellwatch.triage", "shellwatch.sources.evtx_file")
"""The modules a regular install compiles with mypyc (setup.py): those every EVTX record passes through."""


def compiled_modules() -> list[str]:
    """The modules of :data:`HOT_PATH_MODULES` that run compiled in this install (none in an editable install, or
    where no C compiler was at hand)."""
    return [name for name in HOT_PATH_MODULES if not _is_python_source(importlib.import_module(name).__file__)]


def _is_python_source(path: str | None) -> bool:
    return path is None or path.endswith(".py")
