"""Build of shellwatch: everything is declared in pyproject.toml; this file only adds the compiled hot path.

The modules every EVTX record passes through before it is decoded (:data:`COMPILED`) are compiled to C with mypyc
(part of mypy) in a regular install: the same typed Python source, run without the interpreter loop, which halves
what shellwatch spends per record beside the parser. Each compiled module is an optional extension: without a C
compiler, or with ``SHELLWATCH_PURE_PYTHON=1`` in the environment, the install goes on and the modules run as
Python, with the same results.

An editable install (``pip install -e``) compiles nothing, so that an edit to a source file takes effect at once
instead of being shadowed by a stale compiled copy. ``shellwatch.compiled_modules()`` tells which modules run
compiled.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "src/shellwatch/triage.py",
    "src/shellwatch/sources/evtx_file.py",
]

# The build environment holds mypy but not shellwatch's dependencies: their types are taken as Any, as the
# compiled modules need none of them to be exact.
_MYPYC_OPTIONS = ["--ignore-missing-imports", "--follow-imports=silent"]


class _BuildExtUnlessEditable(build_ext):
    """Builds the compiled modules, except for an editable install."""

    def run(self) -> None:
        if getattr(self, "editable_mode", False):
            return
        super().run()


def _extensions() -> list[Any]:
    if os.environ.get("SHELLWATCH_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # mypy is a build requirement; a build without isolation may lack it
        return []
    try:
        extensions = mypycify([*_MYPYC_OPTIONS, *COMPILED], opt_level="3", group_name="shellwatch")
    except (Exception, SystemExit) as error:  # mypyc reports a type error by exiting
        print(f"shellwatch: not compiling the hot path ({error!r}); it runs as Python")
        return []
    for extension in extensions:
        extension.optional = True  # no C compiler: the module stays Python
    return extensions


setup(ext_modules=_extensions(), cmdclass={"build_ext": _BuildExtUnlessEditable})
