"""The rule index (shellwatch.engine.rule_index) against per-rule evaluation: it may only leave out rules that do not
match.

Checked three ways:

* hypothesis draws IR trees (Equals, Wildcard, Regex, Exists, Compare, Not, And, Or over a few fields, both case
  modes) and events with the strings that stress case handling (the Kelvin sign, dotted capital I, dotless i, long
  s, sharp s, final sigma, backslashes), lists, numbers and missing fields: every rule whose predicate matches is a
  candidate, every gate of it holds, the index's candidates are exactly the rules all of whose gates hold (by
  :meth:`Atom.holds`, the plain reference), and ``RuleSet.matching`` equals every predicate run one by one;
* every process-start event of the EVTX corpora against SigmaHQ's process_creation rules and the bundled pack;
* the characters whose regular-expression case folding reaches ASCII, over every code point.

Case semantics are the IR's (``Case.INSENSITIVE`` compares ``str.lower()`` of both sides, see
shellwatch/query/ir.py); Python's ``re.IGNORECASE`` matching follows the ``re`` documentation
(https://docs.python.org/3/library/re.html#re.IGNORECASE: "the Unicode patterns [a-z] or [A-Z] ... will match
the 52 ASCII letters and 4 additional non-ASCII letters: 'İ' (U+0130), 'ı' (U+0131), 'ſ' (U+017F) and 'K'
(U+212A)").
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import evtx_corpus_records, shared_path
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.rule_index import REGEX_ASCII_CASE_VARIANTS, Atom, RuleIndex, gates_of
from shellwatch.engine.ruleset import INDEX_FROM_RULES, RuleSet
from shellwatch.normalize.windows_event import normalize_windows_event
from shellwatch.query.ir import (
    And,
    Case,
    Compare,
    Const,
    Equals,
    Exists,
    FieldRef,
    Literal,
    Node,
    Not,
    Or,
    Regex,
    Wildcard,
)
from shellwatch.rules.loader import load_bundled_rules, load_rules
from shellwatch.rules.model import Rule, RuleSource

FIELDS = ("process.name", "process.command_line", "process.parent.name", "user.id")
TRICKY = ("\u212a", "\u0130", "\u0131", "\u017f", "ß", "SS", "Σ", "σ", "ς", "\\", "\\\\", "K", "k", "I", "i", "S")
WORDS = ("cmd.exe", "CMD.EXE", "w3wp", "kelvin", "ssh", "\\w3wp.exe", "İstanbul", "ΟΔΟΣ", "a", "")


def test_regex_case_variants_are_exactly_the_non_ascii_characters_an_ascii_letter_matches() -> None:
    """Every code point: under re.IGNORECASE an ASCII character matches a non-ASCII one only for these four."""
    ascii_class = re.compile("[\x00-\x7f]", re.IGNORECASE)
    found = [
        chr(code)
        for code in range(0x80, sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and ascii_class.fullmatch(chr(code))
    ]
    assert tuple(found) == REGEX_ASCII_CASE_VARIANTS


# ------------------------------------------------------------------------------------------------------------
# Hypothesis: drawn rules and events

texts = st.lists(st.sampled_from(TRICKY + WORDS), max_size=4).map("".join)
wildcard_patterns = st.lists(
    st.one_of(st.sampled_from(TRICKY + WORDS), st.sampled_from(("*", "?", "\\*", "\\?", "\\\\"))), max_size=4
).map("".join)
cases = st.sampled_from(Case)
fields = st.sampled_from(FIELDS)
regex_patterns = st.sampled_from(
    (
        "cmd",
        "(?i)cmd\\.exe",
        "w3wp|kelvin",
        "(?i)(k|s)+elvin",
        "\u212aelvin",
        "ss?h",
        "(?:ab)+c",
        "İstanbul",
        "(?i)istanbul",
        "σ$",
        "^\\\\w3wp",
        "x{0,2}cmd",
        "(?i:cmd)exe",
        "(c)(m)d",
        "[kK]elvin",
    )
)


def leaves() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(
            Equals,
            fields,
            st.lists(st.one_of(texts, st.integers(-2, 2)), min_size=0, max_size=3).map(tuple),
            cases,
        ),
        st.builds(Wildcard, fields, st.lists(wildcard_patterns, min_size=1, max_size=3).map(tuple), cases),
        st.builds(Regex, fields, regex_patterns, cases, st.booleans()),
        st.builds(
            Regex,
            fields,
            st.sampled_from(("cmd.*", "w3wp", '"quoted"', "[a-c]+x")),
            cases,
            st.just(True),
            dialect=st.just("lucene"),
        ),
        st.builds(Exists, fields),
        st.builds(
            Compare,
            st.builds(FieldRef, fields),
            st.sampled_from(("==", "!=", "<", ">=")),
            st.one_of(st.builds(Literal, texts), st.builds(FieldRef, fields)),
            cases,
        ),
        st.builds(Const, st.booleans()),
    )


nodes: st.SearchStrategy[Node] = st.recursive(
    leaves(),
    lambda children: st.one_of(
        st.builds(And, st.lists(children, min_size=1, max_size=4).map(tuple)),
        st.builds(Or, st.lists(children, min_size=1, max_size=4).map(tuple)),
        st.builds(Not, children),
    ),
    max_leaves=8,
)
values = st.one_of(
    texts,
    st.lists(st.one_of(texts, st.none(), st.integers(-2, 2)), max_size=3),
    st.integers(-2, 2),
    st.booleans(),
    st.none(),
)
events = st.dictionaries(fields, values, max_size=len(FIELDS))


def make_rule(node: Node, number: int) -> Rule:
    return Rule(
        rule_id=f"test-rule-index-{number}",
        name=f"index probe {number}",
        description="",
        type="query",
        language="kuery",
        query="",
        ir=node,
        source=RuleSource(path="tests/test_rule_index.py"),
    )


@settings(max_examples=250, deadline=None)
@given(queries=st.lists(nodes, min_size=1, max_size=12), event_list=st.lists(events, min_size=1, max_size=6))
def test_index_equals_per_rule_evaluation(queries: list[Node], event_list: list[dict[str, Any]]) -> None:
    index = RuleIndex(queries)
    predicates = [compile_predicate(query) for query in queries]
    for event in event_list:
        candidates = index.candidates(event)
        expected = [
            position
            for position, gates in enumerate(index.gates)
            if all(any(atom.holds(event) for atom in gate) for gate in gates)
        ]
        assert candidates == expected
        for position, predicate in enumerate(predicates):
            if predicate(event):
                assert position in candidates, (queries[position], event)
        among = tuple(range(0, len(queries), 2))
        assert index.candidates_among(event, among) == [p for p in candidates if p in among]


@settings(max_examples=80, deadline=None)
@given(queries=st.lists(nodes, min_size=INDEX_FROM_RULES, max_size=INDEX_FROM_RULES + 6), event=events)
def test_rule_set_matching_equals_every_predicate(queries: list[Node], event: dict[str, Any]) -> None:
    rules = RuleSet(make_rule(query, number) for number, query in enumerate(queries))
    assert rules.matching(event) == rules.matching_each(event)
    among = tuple(range(1, len(queries), 3))
    assert rules.matching_among(event, among) == [
        rule for rule in rules.matching_each(event) if rules.rules.index(rule) in among
    ]


# ------------------------------------------------------------------------------------------------------------
# Gates, by example


def test_gates_follow_the_logic() -> None:
    """And keeps every conjunct's gate (the most selective first), Or unites one gate of each child, Not and
    function-free tests that name no literal give nothing to look up."""
    parent = Equals("process.parent.name", ("w3wp.exe", "HTTPD.EXE"), Case.INSENSITIVE)
    child = Wildcard("process.executable", ("*\\\\CMD.exe",), Case.INSENSITIVE)  # ends with \cmd.exe
    common = Equals("event.category", ("process",))
    gates = gates_of(And((common, child, parent)))
    assert gates[0] == frozenset(
        {
            Atom("process.parent.name", "equals", "w3wp.exe", "lower"),
            Atom("process.parent.name", "equals", "httpd.exe", "lower"),
        }
    )
    assert gates[1] == frozenset({Atom("process.executable", "suffix", "\\cmd.exe", "lower")})
    assert gates[2] == frozenset({Atom("event.category", "equals", "process")})
    either = gates_of(Or((parent, Wildcard("process.command_line", ("*-EncodedCommand*",), Case.INSENSITIVE))))
    assert either == (
        frozenset(
            {
                Atom("process.parent.name", "equals", "w3wp.exe", "lower"),
                Atom("process.parent.name", "equals", "httpd.exe", "lower"),
                Atom("process.command_line", "contains", "-encodedcommand", "lower"),
            }
        ),
    )
    assert gates_of(Not(parent)) == ()
    assert gates_of(Const(False)) == (frozenset(),)
    assert gates_of(Or((Not(parent), child))) == ()


def test_regex_literals_are_gates() -> None:
    """Literal runs every match of a regular expression holds; case-insensitive ones in the ASCII view."""
    sensitive = gates_of(Regex("process.command_line", "ipconfig\\s+/all", anchored=False))
    assert frozenset({Atom("process.command_line", "contains", "ipconfig")}) in sensitive
    folded = gates_of(Regex("process.command_line", "(?i)Invoke-(Expression|WebRequest)", anchored=False))
    assert folded[0] == frozenset(
        {
            Atom("process.command_line", "contains", "expression", "ascii"),
            Atom("process.command_line", "contains", "webrequest", "ascii"),
        }
    ) or folded[0] == frozenset({Atom("process.command_line", "contains", "invoke-", "ascii")})
    # "ſ" (long s) is matched by (?i)s: the ASCII view gives way on a value holding it.
    rules = [Regex("process.command_line", "(?i)invoke-expression", anchored=False)]
    index = RuleIndex(rules)
    assert index.candidates({"process.command_line": "INVOKE-EXPRE\u017fSION"}) == [0]
    assert compile_predicate(rules[0])({"process.command_line": "INVOKE-EXPRE\u017fSION"})
    assert index.candidates({"process.command_line": "invoke-command"}) == []


def test_lower_case_view_is_str_lower() -> None:
    """Case.INSENSITIVE means str.lower() on both sides: the Kelvin sign lowers to k, the dotted capital I to
    'i̇' (two characters), and the index finds exactly what the predicate does."""
    kelvin = Wildcard("user.id", ("*kelvin*",), Case.INSENSITIVE)
    istanbul = Equals("user.id", ("i\u0307stanbul",), Case.INSENSITIVE)
    index = RuleIndex([kelvin, istanbul])
    assert index.candidates({"user.id": "\u212aELVIN"}) == [0]
    assert index.candidates({"user.id": "\u0130STANBUL"}) == [1]
    assert index.candidates({"user.id": "ISTANBUL"}) == []


def test_most_events_meet_few_candidates() -> None:
    """With many rules on distinct literals, an event that names one of them meets only its rules."""
    names = [f"tool{number}.exe" for number in range(200)]
    queries: list[Node] = [Wildcard("process.executable", (f"*\\\\{name}",), Case.INSENSITIVE) for name in names]
    index = RuleIndex(queries)
    assert index.candidates({"process.executable": "C:\\Tools\\TOOL7.EXE"}) == [7]
    assert index.candidates({"process.executable": "C:\\Windows\\explorer.exe"}) == []


# ------------------------------------------------------------------------------------------------------------
# The corpus

EVTX_CORPORA = ("evtx-attack-samples", "hayabusa-sample-evtx", "omerbenamram-evtx")


def process_start_events() -> list[dict[str, Any]]:
    """Every process-start event of the EVTX corpora, normalized."""
    found: list[dict[str, Any]] = []
    for _, _, text in evtx_corpus_records(*EVTX_CORPORA):
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        event = normalize_windows_event(document)[1]
        if _holds(event, "event.category", "process") and _holds(event, "event.type", "start"):
            found.append(event)
    return found


def _holds(event: dict[str, Any], field: str, value: str) -> bool:
    found = event.get(field)
    return value in found if isinstance(found, list) else found == value


def sigma_process_creation_rules() -> list[Rule]:
    folders: list[Path] = sorted(
        folder for folder in shared_path("corpus", "sigmahq-rules").rglob("process_creation") if folder.is_dir()
    )
    return list(load_rules(folders, jobs=2).rules)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_corpus_process_starts_match_the_same_rules() -> None:
    """SigmaHQ's process_creation rules and the bundled pack over every process start of the EVTX corpora: the
    index gives the same matches as every predicate, and leaves few rules to evaluate per event."""
    rules = RuleSet([*load_bundled_rules().rules, *sigma_process_creation_rules()])
    assert len(rules) > 1_400
    event_list = process_start_events()
    assert len(event_list) > 1_000
    matches = candidates = 0
    for event in event_list:
        found = rules.matching(event)
        assert found == rules.matching_each(event), event.get("process.command_line")
        matches += len(found)
        candidates += len(rules.index.candidates(event))
    assert matches > 500
    # A necessary condition, and a selective one: on average under 1 % of the rules are evaluated per event.
    assert candidates < 0.01 * len(rules) * len(event_list)
