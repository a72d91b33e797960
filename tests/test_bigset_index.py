"""The rule index and the generated predicates at big-rule-set scale, against their plain references.

A big rule set (thousands of SigmaHQ and Elastic rules) puts thousands of literals on one field: the substring
index then reads the value's grams instead of looking for each literal (``_gram_length``), and the gates each
value holds are remembered per field (``MEMO_VALUE_CHARS``, ``MEMO_CHARS``). Both must leave the candidates
exactly those whose every gate holds by :meth:`Atom.holds`, whatever the literal lengths, the case-folding
characters in the values, and however often the remembered values are forgotten. List values (``process.args``)
take their own path through the generated predicates (:func:`list_field_test`), which must decide as
:func:`raw_field_test` does, element types mixed.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shellwatch.engine import rule_index
from shellwatch.engine.compile_python import compile_predicate, list_field_test, raw_field_test
from shellwatch.engine.rule_index import RuleIndex
from shellwatch.query.ir import And, Case, Equals, Node, Or, Wildcard

FIELD = "process.command_line"
OTHER = "process.args"
ALPHABET = ("a", "b", "c", "-", "\\", ".", " ", "\u212a", "\u0130", "ß", "Σ", "ς", "E", "X")
literals = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=12).map("".join)
cases = st.sampled_from(Case)


def contains_rules(texts: list[str], case: Case) -> list[Node]:
    """One rule per literal: ``FIELD`` contains it, and a second necessary test so rules carry several gates."""
    return [
        And(
            (
                Wildcard(FIELD, (f"*{text}*",), case),
                Or((Wildcard(OTHER, (f"{text[:2]}*",), case), Equals(OTHER, ("x",)))),
            )
        )
        for text in texts
    ]


def expected_candidates(index: RuleIndex, event: dict[str, Any]) -> list[int]:
    return [
        position
        for position, gates in enumerate(index.gates)
        if all(any(atom.holds(event) for atom in gate) for gate in gates)
    ]


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(literals, min_size=120, max_size=160, unique=True),
    case=cases,
    values=st.lists(st.lists(literals, max_size=6).map("".join), min_size=1, max_size=8),
    memo_chars=st.sampled_from((0, 40, 1 << 22)),
)
def test_many_literals_on_one_field_give_the_reference_candidates(
    texts: list[str], case: Case, values: list[str], memo_chars: int
) -> None:
    """120 to 160 literals of 1 to 12 characters: the shorter looked for one by one, the others by grams; each event
    read three times, with the remembered values forgotten at every value, now and then, or never."""
    queries = contains_rules(texts, case)
    index = RuleIndex(queries)
    view = index._by_name[FIELD].lower if case is Case.INSENSITIVE else index._by_name[FIELD].value
    assert view is not None and view.infixes is not None
    # A set of mostly short literals may be cheaper looked for one by one: the cost model reads no grams then
    # (test_thousands_of_literals_are_read_by_grams covers the grams for sure).
    assume(view.infixes.keys)
    predicates = [compile_predicate(query) for query in queries]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rule_index, "MEMO_CHARS", memo_chars)
        for _ in range(3):
            for position, value in enumerate(values):
                event: dict[str, Any] = {FIELD: value, OTHER: [value[:3], None, position]}
                candidates = index.candidates(event)
                assert candidates == expected_candidates(index, event)
                assert all(position in candidates for position, p in enumerate(predicates) if p(event))


def test_thousands_of_literals_are_read_by_grams() -> None:
    """A field with thousands of literals has its longer ones filed by grams, not looked for one by one."""
    texts = [f"{number:05d}-{letter}" for number in range(3000) for letter in "ab"]
    index = RuleIndex(contains_rules(texts, Case.INSENSITIVE))
    lower = index._by_name[FIELD].lower
    assert lower is not None and lower.infixes is not None
    assert lower.infixes.keys and not lower.infixes.direct
    event = {FIELD: "cmd /c 01234-B and 02999-a", OTHER: ["01x"]}
    assert index.candidates(event) == expected_candidates(index, event) != []


def test_remembered_values_stay_within_the_budget() -> None:
    """The characters of remembered values never exceed MEMO_CHARS; a value longer than MEMO_VALUE_CHARS is not
    remembered."""
    index = RuleIndex(contains_rules([f"lit{number}" for number in range(50)], Case.SENSITIVE))
    memo = index._by_name[FIELD].memo
    long_value = "lit7" + "x" * rule_index.MEMO_VALUE_CHARS
    assert index.candidates({FIELD: long_value}) == expected_candidates(index, {FIELD: long_value})
    assert long_value not in memo
    for number in range(rule_index.MEMO_CHARS // 500):
        index.candidates({FIELD: f"{number:0500d}"})
        assert index._memo_chars <= rule_index.MEMO_CHARS
    assert 0 < len(memo) < rule_index.MEMO_CHARS // 500


class Text(str):
    """A str subclass: a string to the IR, not of class str to the generated code's fast tests."""


elements = st.one_of(literals, st.none(), st.integers(-1, 1), st.booleans(), literals.map(Text))


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(
        st.tuples(st.sampled_from(("", "*")), literals, st.sampled_from(("", "*", "?"))).map("".join), min_size=1
    ),
    equals=st.lists(st.one_of(literals, st.integers(-1, 1), st.booleans()), min_size=1, max_size=4),
    case=cases,
    items=st.lists(elements, max_size=5),
)
def test_list_values_decide_as_the_closures_do(
    patterns: list[str], equals: list[Any], case: Case, items: list[Any]
) -> None:
    """A list value is tested by list_field_test and by the generated predicate (statement and expression form)
    exactly as raw_field_test and the closures test it."""
    for node in (Wildcard(OTHER, tuple(patterns), case), Equals(OTHER, tuple(equals), case)):
        assert list_field_test(node)(items) is raw_field_test(node)(items)
        expected = raw_field_test(node)(items)
        assert compile_predicate(node)({OTHER: items}) is expected
        either = Or((node, Equals(FIELD, ("never",))))
        assert compile_predicate(And((either, Equals(FIELD, ("x",)))))({OTHER: items, FIELD: "x"}) is expected
