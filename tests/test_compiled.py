"""The compiled hot path: a regular install compiles :data:`shellwatch.HOT_PATH_MODULES` with mypyc (setup.py), an
editable one runs them as Python. The whole suite runs against both in CI (.ci/run), so results are the same either
way; these tests check that the build compiles what it says."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import shellwatch

ROOT = Path(__file__).resolve().parents[1]


def _setup_compiled_paths() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(path) for path in value]
    raise AssertionError("setup.py has no COMPILED list")


def test_setup_compiles_the_hot_path_modules() -> None:
    paths = _setup_compiled_paths()
    names = [path.removeprefix("src/").removesuffix(".py").replace("/", ".") for path in paths]
    assert names == list(shellwatch.HOT_PATH_MODULES)
    for path in paths:
        assert (ROOT / path).is_file(), path


def test_compiled_modules_are_loaded_where_the_install_compiled_them() -> None:
    """CI sets SHELLWATCH_EXPECT_COMPILED=1 for the run against a regular install: a build that silently fell back
    to Python would leave the compiled path untested."""
    compiled = shellwatch.compiled_modules()
    if os.environ.get("SHELLWATCH_EXPECT_COMPILED") != "1":
        pytest.skip("not the run against a compiled install (SHELLWATCH_EXPECT_COMPILED unset)")
    assert compiled == list(shellwatch.HOT_PATH_MODULES)
    for name in compiled:
        module = __import__(name, fromlist=["_"])
        assert module.__file__ is not None and not module.__file__.endswith(".py")


def test_compiled_modules_call_str_lower_unbound() -> None:
    """mypyc compiles ``text.lower()`` to its own primitive, which lowers a capital sigma at the end of a word to
    ``σ``, where Python's ``str.lower`` gives the final form ``ς`` (Unicode's Final_Sigma casing context): compiled,
    ``"AΣ".lower()`` is ``"aσ"``; ``str.lower("AΣ")`` stays Python's call and gives ``"aς"`` compiled or not
    (checked over every code point and its neighbours: sigma is the only difference). The compiled modules call
    ``str.lower(text)``, so that a case-insensitive comparison means the same in both installs."""
    offenders = []
    for path in _setup_compiled_paths():
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "lower"
                and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "str")
            ):
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_a_final_sigma_is_lowered_as_python_does_by_the_rule_index() -> None:
    """``process.name : "*aς*"`` matches ``AΣ`` (EQL's ``:`` compares case-insensitively, as Python's
    ``str.lower``): the rule index, compiled in a regular install, offers the rule as a candidate."""
    from shellwatch.engine.compile_python import compile_predicate
    from shellwatch.engine.rule_index import RuleIndex
    from shellwatch.query.eql import parse_eql

    queries = [parse_eql(f'process where process.name : "*a{letter}*"') for letter in ("ς", "σ", "b", "c")]
    event = {"event.category": ["process"], "process.name": "AΣ"}
    matching = [position for position, query in enumerate(queries) if compile_predicate(query)(event)]
    assert matching == [0]
    assert RuleIndex(queries).candidates(event) == matching
