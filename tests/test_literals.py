"""The pieces of text a rule needs (shellwatch.engine.literals): a necessary condition, checked against the engine.

The property every requirement must have: whenever the engine's compiled predicate matches an event, the event's
values hold the requirement (ASCII-lower-cased), unless a value holds one of the two characters whose lower case
is ASCII. Hypothesis draws the queries and the values; the case semantics are the IR's (``Case.INSENSITIVE``
compares ``str.lower()`` of both sides, as Elasticsearch's ``case_insensitive`` option and Sigma do).
"""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.literals import (
    ASCII_LOWERING_EXCEPTIONS,
    Piece,
    Requirement,
    ascii_value_holds,
    longest_piece,
    requirement,
)
from shellwatch.query.ir import And, Case, Const, Equals, Exists, Node, Not, Or, Regex, Wildcard
from shellwatch.rules.loader import load_bundled_rules

FIELDS = ("process.name", "process.parent.name", "process.command_line")


def anything(field: str) -> bool:
    return True


def test_exceptions_are_exactly_the_non_ascii_characters_lowering_to_ascii() -> None:
    """Every code point: str.lower() yields an ASCII character from a non-ASCII one only for these two."""
    found = [
        chr(code)
        for code in range(0x80, sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and any(ord(char) < 0x80 for char in chr(code).lower())
    ]
    assert tuple(found) == ASCII_LOWERING_EXCEPTIONS


def test_seed_rules_need_a_web_server_parent() -> None:
    """Both seed rules need one of their web server names in the parent, and one of their child names."""
    eql_rule, _, sigma_rule = load_bundled_rules().rules
    process_fields = {"process.name", "process.parent.name", "process.executable", "process.parent.executable"}
    eql_need = requirement(eql_rule.ir, process_fields.__contains__)
    assert eql_need is not None
    first = {piece.text for piece in eql_need.groups[0]}
    assert first == {"w3wp.exe", "httpd.exe", "nginx.exe", "php.exe", "php-cgi.exe", "tomcat.exe"}
    assert {piece.field for group in eql_need.groups for piece in group} == {"process.parent.name", "process.name"}
    sigma_need = requirement(sigma_rule.ir, process_fields.__contains__)
    assert sigma_need is not None
    assert Piece("process.parent.executable", "\\w3wp.exe") in sigma_need.groups[0]
    # Only searchable fields count: the constants (event.category...) are required too when they are.
    searchable = requirement(eql_rule.ir, lambda field: field == "process.parent.name")
    assert searchable is not None and len(searchable.groups) == 1
    with_constants = requirement(eql_rule.ir, anything)
    assert with_constants is not None
    assert frozenset({Piece("event.category", "process")}) in with_constants.groups


def test_logic() -> None:
    a = Equals("process.name", ("cmd.exe",), Case.INSENSITIVE)
    b = Wildcard("process.command_line", ("*whoami*",), Case.INSENSITIVE)
    assert requirement(Not(a), anything) is None
    assert requirement(Exists("process.name"), anything) is None
    assert requirement(Regex("process.name", "cmd"), anything) is None
    assert requirement(Const(True), anything) is None
    assert requirement(Const(False), anything) == Requirement((frozenset(),))
    both = requirement(And((a, b)), anything)
    assert both is not None and len(both.groups) == 2
    either = requirement(Or((a, b)), anything)
    assert either == Requirement(
        (frozenset({Piece("process.name", "cmd.exe"), Piece("process.command_line", "whoami")}),)
    )
    # One side of an Or without a requirement: the Or requires nothing.
    assert requirement(Or((a, Not(b))), anything) is None
    # A never-matching side adds nothing to the Or.
    assert requirement(Or((a, Const(False))), anything) == Requirement((frozenset({Piece("process.name", "cmd.exe")}),))


def test_pieces_are_printable_ascii_runs() -> None:
    assert longest_piece(["C:\\Windows\\cmd.exe"]) == "c:\\windows\\cmd.exe"
    assert longest_piece(["a\r\nlonger"]) == "longer"
    assert longest_piece(["üab\u00e9abcdé"]) == "abcd"
    assert longest_piece(["é"]) is None
    assert longest_piece([""]) is None
    # A wildcard's longest literal run, escapes resolved; ? splits like *.
    need = requirement(Wildcard("f", ("*\\\\cmd?exe*",), Case.SENSITIVE), anything)
    assert need == Requirement((frozenset({Piece("f", "\\cmd")}),))
    # Sensitive literals are ASCII-lowered too: the search is case-blind, which only widens it.
    assert requirement(Equals("f", ("CMD.EXE",), Case.SENSITIVE), anything) == Requirement(
        (frozenset({Piece("f", "cmd.exe")}),)
    )
    # A value that is not a string, or has no ASCII: nothing can be required.
    assert requirement(Equals("f", (4,), Case.SENSITIVE), anything) is None
    assert requirement(Equals("f", ("日本",), Case.INSENSITIVE), anything) is None
    assert requirement(Wildcard("f", ("*",), Case.INSENSITIVE), anything) is None


# Characters that stress the case rules: ASCII, Latin-1, final and medial sigma, Kelvin, dotted I, sharp s.
ALPHABET = 'aAbBkKiIsS.\\*?"-ßẞΣσςİıK\r\n\x1b é日'
texts = st.text(alphabet=ALPHABET, max_size=8)
patterns = st.text(alphabet=ALPHABET + "**??", max_size=8)
cases = st.sampled_from([Case.SENSITIVE, Case.INSENSITIVE])


@st.composite
def leaves(draw: st.DrawFn) -> Node:
    field = draw(st.sampled_from(FIELDS))
    if draw(st.booleans()):
        return Equals(field, tuple(draw(st.lists(texts, min_size=1, max_size=3))), draw(cases))
    return Wildcard(field, tuple(draw(st.lists(patterns, min_size=1, max_size=3))), draw(cases))


nodes = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(children, min_size=1, max_size=3).map(lambda c: Or(tuple(c))),
        children.map(Not),
    ),
    max_leaves=6,
)


@settings(max_examples=600, deadline=None)
@given(node=nodes, values=st.fixed_dictionaries({field: st.lists(texts, max_size=2) for field in FIELDS}))
def test_a_match_holds_the_requirement(node: Node, values: dict[str, list[str]]) -> None:
    event = {field: value for field, value in values.items() if value}
    if not compile_predicate(node)(event):
        return
    if any(char in value for texts_ in values.values() for value in texts_ for char in ASCII_LOWERING_EXCEPTIONS):
        return
    need = requirement(node, anything)
    if need is not None:
        assert ascii_value_holds(need, values), (node, event, need)


@settings(max_examples=300, deadline=None)
@given(value=texts, case=cases)
def test_an_equal_value_holds_its_own_requirement(value: str, case: Case) -> None:
    """The property exercised where it is tight: the value the rule names, in any case."""
    node = Equals("process.name", (value,), case)
    need = requirement(node, anything)
    candidates = [value, value.upper(), value.lower(), value.swapcase()]
    for candidate in candidates:
        if any(char in candidate for char in ASCII_LOWERING_EXCEPTIONS):
            continue
        if compile_predicate(node)({"process.name": candidate}) and need is not None:
            assert ascii_value_holds(need, {"process.name": [candidate]})
