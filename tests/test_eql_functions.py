"""EQL functions with Elasticsearch's results.

Two references:
- ../shared/reference/eql-suite/test_string_functions.toml (the eql package's fold tests): every expression
  is evaluated by :func:`shellwatch.engine.functions.call_function`. Its ``case_insensitive`` sections were
  written for the old case-insensitive EQL, where Elasticsearch spells them with ``~``; they run with the
  ``~`` variant. ``match`` is not an Elasticsearch function and ``wildcard(...)`` is written ``like`` /
  ``like~`` in Elasticsearch (both noted below). Where Elasticsearch's implementation differs from the eql
  package, the test asserts Elasticsearch's value and names the source (``ES_DIFFERENCES``).
- the examples of https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-function-ref.html
  (elastic/elasticsearch docs/reference/query-languages/eql/eql-function-ref.md), checked end to end through
  the EQL front end's constant folding.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import eql
import pytest

from conftest import SHARED
from shellwatch.engine.functions import FunctionError, call_function, java_string
from shellwatch.query.eql import parse_eql
from shellwatch.query.errors import QueryError
from shellwatch.query.ir import FALSE, TRUE

FOLD_FILE = SHARED / "reference" / "eql-suite" / "test_string_functions.toml"

ES_DIFFERENCES: dict[str, Any] = {
    # StringUtils.between (x-pack/plugin/eql/.../util/StringUtils.java): "" when left or right is not found...
    'between("welcome to the planet", "welcome", "village")': "",
    'between("welcome to the planet", "goodbye", "planet")': "",
    'between("welcome to the planet", "welcome", "x", false)': "",
    'between("welcome to the planet", "welcome", "x", true)': "",
    # ... and the source itself when left or right is empty.
    'between("welcome to the planet", "", "x", true)': "welcome to the planet",
    'between("welcome to the planet", "", "", false)': "welcome to the planet",
    'between("welcome to the planet", "", "planet", false)': "welcome to the planet",
}


def _fold_cases() -> list[tuple[str, str, bool, Any]]:
    """(section, expression, insensitive, expected) for every fold test that Elasticsearch can run."""
    if not FOLD_FILE.exists():
        return []
    cases = []
    for section, body in tomllib.loads(FOLD_FILE.read_text()).items():
        if section == "match":
            continue  # not an Elasticsearch function (eql-syntax, "Differences from Endgame EQL syntax")
        insensitive = bool(body.get("case_insensitive"))
        for test in body.get("fold", {}).get("tests", []):
            expression = test["expression"]
            expected = ES_DIFFERENCES.get(expression.replace("'", '"'), test.get("expected"))
            cases.append((section, expression, insensitive, expected))
    return cases


FOLD_CASES = _fold_cases()


def _evaluate(expression: str, insensitive: bool) -> Any:
    # Elasticsearch syntax has double-quoted strings only: the file's 'x' literals are written "x".
    text = re.sub(r"'([^']*)'", lambda m: '"' + m.group(1) + '"', expression)
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions, eql.parser.skip_optimizations:
        call = eql.parse_expression(text)
    args = [_literal_value(arg) for arg in call.arguments]
    name = call.name.lower()
    if name == "wildcard":
        # wildcard(x, p...) is `x like (p...)` / `x like~ (p...)`: IR patterns escape backslashes.
        args = [args[0], *(p.replace("\\", "\\\\") for p in args[1:])]
    return call_function(name, args, insensitive)


def _literal_value(node: Any) -> Any:
    if isinstance(node, eql.ast.MathOperation):  # a negative number parses as 0 - n
        return -node.right.value
    return node.value


@pytest.mark.skipif(not FOLD_CASES, reason=f"{FOLD_FILE} is not available (../shared is absent)")
def test_fold_file_is_covered() -> None:
    assert len(FOLD_CASES) >= 90


@pytest.mark.parametrize(
    ("section", "expression", "insensitive", "expected"),
    FOLD_CASES,
    ids=[f"{c[0]}: {c[1]}" for c in FOLD_CASES],
)
def test_string_function_fold(section: str, expression: str, insensitive: bool, expected: Any) -> None:
    result = _evaluate(expression, insensitive)
    assert result == expected
    assert type(result) is type(expected)


def test_between_differences_are_elasticsearchs() -> None:
    """eql-function-ref between: ``between(file.path, "system32\\\\\\\\", ".exe")`` returns "" when the left
    text is missing (the eql package returned null)."""
    path = "C:\\Windows\\System32\\cmd.exe"
    assert call_function("between", [path, "System32\\", ".exe"]) == "cmd"
    assert call_function("between", [path, "system32\\", ".exe"]) == ""
    assert call_function("between", [path, "system32\\", ".exe"], True) == "cmd"
    assert call_function("between", [path, "\\", "\\", False]) == "Windows"
    assert call_function("between", [path, "\\", "\\", True]) == "Windows\\System32"
    assert call_function("between", ["", "System32\\", ".exe"]) == ""
    assert call_function("between", [None, "System32\\", ".exe"]) is None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("add(4, 5)", 9),
        ("add(4, 0.5)", 4.5),
        ("add(-2, -2)", -4),
        ("divide(4, 2)", 2),
        ("divide(4, 3)", 1),
        ("divide(4, -3)", -1),
        ("divide(0.5, 4)", 0.125),
        ("modulo(10, 6)", 4),
        ("modulo(10, -6)", 4),
        ("modulo(-10, -6)", -4),
        ("modulo(10, 0.5)", 0.0),
        ("multiply(0.5, 2)", 1.0),
        ("subtract(10.5, 0.5)", 10.0),
        ("subtract(-2, 4)", -6),
        ('concat("regsvr32.exe", " ", 42.5)', "regsvr32.exe 42.5"),
        ('concat("regsvr32.exe", " ", true)', "regsvr32.exe true"),
        ('concat("process is ", "regsvr32.exe")', "process is regsvr32.exe"),
        ('endsWith("regsvr32.exe", ".EXE")', False),
        ('endsWith~("regsvr32.exe", ".EXE")', True),
        ('endsWith("", "")', True),
        ('indexOf("subdomain.example.com", "d")', 3),
        ('indexOf("subdomain.example.com", ".", 10)', 17),
        ('indexOf("subdomain.example.com", ".", -6)', 9),
        ('indexOf("subdomain.example.com", "", 10)', 10),
        ('indexOf("subdomain.example.com", "", -6)', 0),
        ('indexOf("subdomain.example.com", ".", 30)', None),
        # the reference page says 4 here, but its own indexOf(url.domain, "d") gives 3: "d" is at 3 either way
        ('indexOf~("subdomain.example.com", "D")', 3),
        ('length("start explorer.exe")', 18),
        ('number("1337")', 1337),
        ('number("42.5")', 42.5),
        ('number("deadbeef", 16)', 3735928559),
        ('number("0xdeadbeef")', 3735928559),
        ('number("+1337")', 1337),
        ('number("  1337  ")', 1337),
        ('number("0xdeadbeef", null)', 3735928559),
        ('startsWith("regsvr32.exe", "Regsvr32")', False),
        ('startsWith~("regsvr32.exe", "Regsvr32")', True),
        ("string(42.5)", "42.5"),
        ('stringContains("start regsvr32.exe", "start ")', True),
        ('stringContains("", "")', False),
        ('substring("start regsvr32.exe", 6, 14)', "regsvr32"),
        ('substring("start regsvr32.exe", -4, -1)', ".ex"),
    ],
)
def test_function_reference_examples(expression: str, expected: Any) -> None:
    """eql-function-ref examples, through the front end's constant folding: ``<expr> == <expected>`` folds to
    true and ``<expr> != <expected>`` to false."""
    literal = "null" if expected is None else _eql_literal(expected)
    assert parse_eql(f"any where {expression} == {literal}") == TRUE
    assert parse_eql(f"any where {expression} != {literal}") == FALSE


def _eql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


@pytest.mark.parametrize(
    "expression",
    ['number("abc")', "divide(1, 0)", 'number("12", 40)', 'length("a", "b")'],
)
def test_function_errors_fail_the_query(expression: str) -> None:
    """Elasticsearch raises on bad constant arguments (EqlIllegalArgumentException): the query is invalid."""
    with pytest.raises(QueryError):
        parse_eql(f"any where {expression} == 1")


def test_errors_on_event_values_give_null() -> None:
    """On event data an argument of the wrong type is an error for that value: here null, so no match."""
    assert parse_eql("any where length(f) == 1") != TRUE
    with pytest.raises(FunctionError):
        call_function("length", [5])
    with pytest.raises(FunctionError):
        call_function("add", ["1", 2])
    with pytest.raises(FunctionError):
        call_function("cidrmatch", ["not an ip", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (42.5, "42.5"),
        (1e10, "1.0E10"),
        (1.5e-5, "1.5E-5"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (-0.0, "-0.0"),
        (True, "true"),
        (7, "7"),
    ],
)
def test_java_string(value: Any, text: str) -> None:
    """Java's Double.toString: decimal in [1e-3, 1e7), computerized scientific notation outside."""
    assert java_string(value) == text
