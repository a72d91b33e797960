"""Build of shellwatch: everything is declared in pyproject.toml; this file only adds the compiled hot path.

The modules a hunt spends its time in per record (:data:`COMPILED`: EVTX reading and triage, the per-class
prefilter, the Windows normalizers, the rule index and the rule set's matching loop, the pattern and closure code the
rules' predicates call, the JSON reader and the JSON document triage) are compiled to C with mypyc (part of mypy) in
a regular install: the same typed Python source, run without the interpreter loop. The predicates' own source,
generated when the rules are compiled, stays Python. Each compiled module is an optional extension: without a C
compiler, or with ``SHELLWATCH_PURE_PYTHON=1`` in the environment, the install goes on and the modules run as
Python, with the same results.

What mypyc compiles differently from CPython must not change a result, and the whole test suite runs against both
installs in CI. One such difference is known: mypyc's primitive for ``text.lower()`` lowers a word-final capital
sigma to ``σ`` where Python gives ``ς``; the compiled modules call ``str.lower(text)`` instead, which
tests/test_compiled.py enforces.

An editable install (``pip install -e``) compiles nothing, so that an edit to a source file takes effect at once
instead of being shadowed by a stale compiled copy. ``shellwatch.compiled_modules()`` tells which modules run
compiled.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

# engine/functions.py (EQL function calls) is left out: the rule sets measured (bench/bench_scale.py) spend next to
# nothing in it.
COMPILED = [
    "src/shellwatch/triage.py",
    "src/shellwatch/sources/evtx_file.py",
    "src/shellwatch/prefilter.py",
    "src/shellwatch/engine/ruleset.py",
    "src/shellwatch/engine/rule_index.py",
    "src/shellwatch/engine/patterns.py",
    "src/shellwatch/engine/literals.py",
    "src/shellwatch/engine/compile_python.py",
    "src/shellwatch/normalize/dispatch.py",
    "src/shellwatch/normalize/event_class.py",
    "src/shellwatch/normalize/windows_event.py",
    "src/shellwatch/normalize/sysmon.py",
    "src/shellwatch/normalize/security.py",
    "src/shellwatch/normalize/providers.py",
    "src/shellwatch/normalize/demand.py",
    "src/shellwatch/normalize/conversions.py",
    "src/shellwatch/normalize/timestamps.py",
    "src/shellwatch/normalize/pipeline_values.py",
    "src/shellwatch/document_triage.py",
    "src/shellwatch/sources/json_records.py",
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


class _BuildPyWithoutStaleExtensions(build_py):
    """Copies the Python sources, and removes from the build folder the compiled modules this build does not make.

    pip builds in the source tree, whose ``build/`` keeps the extensions of the previous build: the shim of a module
    since dropped from :data:`COMPILED` would otherwise go into the wheel beside its source, be imported instead of
    it, and fail (the shared library no longer holds the module).
    """

    def run(self) -> None:
        if not getattr(self, "editable_mode", False):
            self._remove_stale_extensions()
        super().run()

    def _remove_stale_extensions(self) -> None:
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        made = {
            Path(self.build_lib, *extension.name.split(".")).with_name(extension.name.split(".")[-1] + suffix)
            for extension in self.distribution.ext_modules or ()
        }
        root = Path(self.build_lib)
        for path in [*root.glob("shellwatch*" + suffix), *root.glob("shellwatch/**/*" + suffix)]:
            if path not in made:
                path.unlink()


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


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": _BuildExtUnlessEditable, "build_py": _BuildPyWithoutStaleExtensions},
)
