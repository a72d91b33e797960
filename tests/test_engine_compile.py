"""The predicate compiler: generated code, closures and a reference evaluator written here must agree.

The reference below reads the IR's conventions (shellwatch.query.ir module docstring) literally, one node at a
time, with no attention to speed; Hypothesis draws IR trees and events (missing fields, ``None``, lists, mixed
types, unhashable list elements) and checks :func:`compile_predicate` and :func:`compile_closure` against it.
"""

from __future__ import annotations

import io
import ipaddress
import keyword
import operator
import re
import tokenize
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.engine.compile_python import compile_closure, compile_predicate
from shellwatch.query.errors import QueryError
from shellwatch.query.ir import (
    And,
    Call,
    Case,
    Cidr,
    Compare,
    Const,
    Equals,
    Exists,
    FieldRef,
    Keyword,
    Literal,
    Node,
    Not,
    Or,
    Predicate,
    Regex,
    Wildcard,
)
from test_engine_patterns import reference_match

# -- the reference -------------------------------------------------------------------------------------------


def ref_values(event: Mapping[str, Any], path: str) -> list[Any]:
    raw = event.get(path)
    if raw is None:
        return []
    if isinstance(raw, list):
        return [x for x in raw if x is not None]
    return [raw]


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def ref_equal(value: Any, literal: Any, insensitive: bool) -> bool:
    if isinstance(value, str) and isinstance(literal, str):
        return value.lower() == literal.lower() if insensitive else value == literal
    if isinstance(value, bool) and isinstance(literal, bool):
        return value == literal
    if is_number(value) and is_number(literal):
        return bool(value == literal)
    return False


ORDER = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt}


def ref_compare(a: Any, op: str, b: Any, insensitive: bool) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        if insensitive:
            a, b = a.lower(), b.lower()
        return bool(ORDER[op](a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and op in ("==", "!=") and bool(ORDER[op](a, b))
    if is_number(a) and is_number(b):
        return bool(ORDER[op](a, b))
    return False


def reference(node: Node, event: Mapping[str, Any]) -> bool:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, And):
        return all(reference(c, event) for c in node.children)
    if isinstance(node, Or):
        return any(reference(c, event) for c in node.children)
    if isinstance(node, Not):
        return not reference(node.child, event)
    if isinstance(node, Exists):
        return bool(ref_values(event, node.field))
    if isinstance(node, Equals):
        insensitive = node.case is Case.INSENSITIVE
        return any(
            ref_equal(v, lit, insensitive) for v in ref_values(event, node.field) for lit in node.values
        )
    if isinstance(node, Wildcard):
        insensitive = node.case is Case.INSENSITIVE

        def fold(s: str) -> str:
            return s.lower() if insensitive else s

        return any(
            isinstance(v, str) and reference_match(fold(p), fold(v))
            for v in ref_values(event, node.field)
            for p in node.patterns
        )
    if isinstance(node, Compare):
        assert isinstance(node.left, FieldRef) and isinstance(node.right, Literal)
        return any(
            ref_compare(v, node.op, node.right.value, node.case is Case.INSENSITIVE)
            for v in ref_values(event, node.left.name)
        )
    if isinstance(node, Regex):
        flags = re.IGNORECASE if node.case is Case.INSENSITIVE else 0
        compiled = re.compile(node.pattern, flags)
        search = compiled.fullmatch if node.anchored else compiled.search
        return any(isinstance(v, str) and search(v) for v in ref_values(event, node.field))
    if isinstance(node, Cidr):
        nets = [ipaddress.ip_network(n, strict=False) for n in node.networks]
        found = False
        for v in ref_values(event, node.field):
            try:
                ip = ipaddress.ip_address(v) if isinstance(v, str) else None
            except ValueError:
                ip = None
            found = found or (ip is not None and any(ip.version == n.version and ip in n for n in nets))
        return found
    raise AssertionError(f"reference does not handle {node!r}")


# -- strategies ----------------------------------------------------------------------------------------------

FIELDS = ["a", "b", "c.d"]
SCALARS = st.sampled_from(["x", "X", "xy", "xY", "1", "", "a*b", 1, 1.0, 2, -3.5, True, False])
PATTERNS = st.text(st.sampled_from("xXy*?\\"), max_size=5)
fields = st.sampled_from(FIELDS)
cases = st.sampled_from([Case.SENSITIVE, Case.INSENSITIVE])

leaves = st.one_of(
    st.builds(Const, st.booleans()),
    st.builds(Exists, fields),
    st.builds(Equals, fields, st.lists(SCALARS, max_size=4).map(tuple), cases),
    st.builds(Wildcard, fields, st.lists(PATTERNS, min_size=1, max_size=3).map(tuple), cases),
    st.builds(
        Compare,
        fields.map(FieldRef),
        st.sampled_from(["==", "!=", "<", "<=", ">"]),
        SCALARS.map(Literal),
        cases,
    ),
    st.builds(
        Regex,
        fields,
        st.sampled_from(["x.*", "[xy]+", "x|", "1"]),
        cases,
        st.booleans(),
    ),
    st.builds(Cidr, fields, st.sampled_from([("10.0.0.0/8",), ("::1/128", "192.168.1.0/24")])),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(And, st.lists(children, max_size=4).map(tuple)),
        st.builds(Or, st.lists(children, max_size=4).map(tuple)),
        st.builds(Not, children),
    ),
    max_leaves=12,
)
EVENT_VALUES = st.one_of(
    st.none(),
    SCALARS,
    st.sampled_from(["10.1.2.3", "192.168.1.9", "::1", "not-an-ip"]),
    st.lists(st.one_of(st.none(), SCALARS), max_size=3),
    st.just([["unhashable"]]),
    st.just({"nested": "object"}),
)
events = st.dictionaries(fields, EVENT_VALUES, max_size=3)


@settings(max_examples=600, deadline=None)
@given(trees, st.lists(events, min_size=1, max_size=5))
def test_compiled_predicates_agree_with_reference(node: Node, batch: list[dict[str, Any]]) -> None:
    fast = compile_predicate(node)
    closure = compile_closure(node)
    for event in batch:
        expected = reference(node, event)
        assert closure(event) is expected
        assert fast(event) is expected


# -- the generated source ------------------------------------------------------------------------------------

ALLOWED_NAMES = re.compile(r"[kvl]\d+|e|g|predicate|_shellwatch_predicate_factory")
ALLOWED_BUILTINS = {
    "str",
    "get",
    "list",
    "int",
    "Exception",
    "lower",
    "startswith",
    "endswith",
    "isdisjoint",
    "__class__",
}


def generated_source(predicate: Any) -> str:
    doc: str = predicate.__doc__
    return doc.split("source:\n", 1)[1]


def test_generated_source_holds_no_rule_text() -> None:
    """The module's invariant: rule values never appear in the source; only generated identifiers do."""
    hostile = "x'); __import__('os').system('echo pwned') #"
    node = And(
        (
            Equals(hostile, (hostile, 4, "\n\"'"), Case.INSENSITIVE),
            Wildcard('f"ield', (hostile + "*", "*" + hostile, "a?c"), Case.SENSITIVE),
            Not(Exists("}{")),
            Or((Equals("g", (hostile,)), Compare(FieldRef(hostile), "<", Literal(hostile)))),
        )
    )
    predicate = compile_predicate(node)
    source = generated_source(predicate)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    assert not [t for t in tokens if t.type == tokenize.STRING], "the source must hold no string literal"
    names = {t.string for t in tokens if t.type == tokenize.NAME}
    unexpected = {
        n for n in names if not (keyword.iskeyword(n) or n in ALLOWED_BUILTINS or ALLOWED_NAMES.fullmatch(n))
    }
    assert not unexpected
    event = {hostile: hostile.upper(), 'f"ield': "a" + hostile, "g": hostile}
    assert predicate(event) is reference(node.children[0], event) is True
    assert predicate(event) is True


def test_seed_shaped_rule_reads_selective_fields_first() -> None:
    """Conjuncts on common fields (event.category, host.os.type...) are tested after the distinctive ones."""
    node = And(
        (
            Equals("event.category", ("process",)),
            Equals("host.os.type", ("windows",)),
            Equals("process.parent.name", ("w3wp.exe",), Case.INSENSITIVE),
        )
    )
    predicate = compile_predicate(node)
    reads = re.findall(r"v\d+ = g\((k\d+)\)", generated_source(predicate))
    constants = dict(
        zip(
            predicate.__code__.co_freevars,
            (c.cell_contents for c in predicate.__closure__ or ()),
            strict=True,
        )
    )
    assert [constants[k] for k in reads] == ["process.parent.name", "event.category", "host.os.type"]
    assert predicate({"process.parent.name": "W3WP.EXE"}) is False
    assert predicate(
        {"process.parent.name": "W3WP.EXE", "event.category": ["process"], "host.os.type": "windows"}
    )


def test_unhashable_list_elements_fall_back_to_closures() -> None:
    node = Equals("a", ("x",))
    predicate = compile_predicate(node)
    assert predicate({"a": [["x"], "x"]}) is True
    assert predicate({"a": [["x"]]}) is False


def test_very_deep_trees_still_compile() -> None:
    node: Node = Equals("a", ("x",))
    for _ in range(400):
        node = Not(Not(node)) if isinstance(node, Not) else Not(node)
    predicate = compile_predicate(node)
    assert predicate({"a": "x"}) is reference(node, {"a": "x"})


# -- nodes the closures decide -------------------------------------------------------------------------------


def test_sigma_shaped_nodes() -> None:
    """Shapes the Sigma front end emits: unanchored Python regexes, keywords, field-to-field comparisons and
    string functions between fields, ``number()`` on string digits."""
    event = {
        "process.command_line": "powershell -enc AAAA\nsecond line",
        "process.name": "PowerShell.exe",
        "process.executable": "C:\\Windows\\powershell.exe",
        "winlog.event_data.Count": "12",
    }
    assert compile_predicate(Regex("process.command_line", "-enc ", anchored=False))(event)
    assert not compile_predicate(Regex("process.command_line", "-enc ", anchored=True))(event)
    assert compile_predicate(Regex("process.command_line", "^second", multiline=True, anchored=False))(event)
    assert not compile_predicate(Regex("process.command_line", "^second", anchored=False))(event)
    assert compile_predicate(Keyword(("*-ENC*",)))(event)
    assert not compile_predicate(Keyword(("*-ENC*",), Case.SENSITIVE))(event)
    same = Compare(FieldRef("process.name"), "==", FieldRef("process.name"), Case.INSENSITIVE)
    assert compile_predicate(same)(event)
    ends = Predicate(
        Call("endswith", (FieldRef("process.executable"), FieldRef("process.name")), Case.INSENSITIVE)
    )
    assert compile_predicate(ends)(event)
    number = Compare(Call("number", (FieldRef("winlog.event_data.Count"),)), ">", Literal(10))
    assert compile_predicate(number)(event)


def test_function_errors_are_null_for_the_event() -> None:
    """A value of the wrong type makes the function's result null (Elasticsearch would fail the search)."""
    node = Compare(Call("length", (FieldRef("n"),)), ">", Literal(0))
    assert compile_predicate(node)({"n": "abc"})
    assert not compile_predicate(node)({"n": 12345})
    assert not compile_predicate(node)({})


def test_calls_apply_to_every_value_of_a_list() -> None:
    node = Compare(Call("length", (FieldRef("n"),)), "==", Literal(2))
    assert compile_predicate(node)({"n": ["abc", "de"]})
    assert not compile_predicate(node)({"n": ["abc", "def"]})
    null = Predicate(Call("is_null", (Call("indexof", (FieldRef("n"), Literal("z"))),)))
    assert compile_predicate(null)({"n": ["az", "b"]})
    assert not compile_predicate(null)({"n": ["az", "zb"]})


@pytest.mark.parametrize(
    "node",
    [
        Regex("a", "(unclosed"),
        Regex("a", "a~b", dialect="lucene"),
        Cidr("a", ("10.0.0.0/99",)),
        Predicate(Call("nosuchfunction", (FieldRef("a"),))),
        Predicate(Call("length", ())),
    ],
)
def test_invalid_nodes_fail_at_compile_time(node: Node) -> None:
    with pytest.raises(QueryError):
        compile_predicate(node)


@pytest.mark.parametrize(
    "value", ["W3WP.exe", "php.exe", ["w3wp.exe", "x"], ["x"], ["PHP.EXE"], 5, None, "other", [["w3wp.exe"]]]
)
def test_a_field_lowered_once_is_reused_by_later_tests(value: Any) -> None:
    """A statement-form conjunct lower-cases the field; later conjuncts reuse it (None for non-strings)."""
    node = And(
        (
            Equals("p", ("w3wp.exe", "php.exe"), Case.INSENSITIVE),
            Wildcard("p", ("w3*", "p?p.*"), Case.INSENSITIVE),
            Not(Equals("p", ("php.exe",), Case.INSENSITIVE)),
            Or((Equals("p", ("W3WP.exe",)), Wildcard("p", ("*.EXE",), Case.INSENSITIVE))),
            Equals("q", ("a",)),
        )
    )
    event = {"p": value, "q": ["b", "a"]}
    assert compile_predicate(node)(event) is reference(node, event)
    assert compile_closure(node)(event) is reference(node, event)
