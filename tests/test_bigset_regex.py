"""Regular expressions of a big rule set decided without backtracking where their form allows, same verdicts.

Sigma's obfuscation rules search command lines with patterns such as ``\\+.*\\+.*\\+...`` (fourteen ``+``): on a
long command line with many ``+`` Python's engine tries every split, milliseconds per value, and an attacker
writes the command lines. Two readings of the pattern's parse (:mod:`shellwatch.engine.patterns`) avoid that:

* a pattern made of literal runs and ``.*`` only is searched as "a line holds the runs in order"
  (:func:`ordered_runs`, :func:`runs_in_order`); ``.`` matches any character but a line feed
  (https://docs.python.org/3/library/re.html#regular-expression-syntax, ``'.'``), or any with ``re.DOTALL``;
* any other case-sensitive pattern is first checked for the characters every match repeats
  (:func:`repeated_literals`): a value with fewer cannot match.

Both are tested against ``re`` itself on generated patterns and values, and through the compiled IR test.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.engine.compile_python import raw_field_test
from shellwatch.engine.patterns import ordered_runs, repeated_literals, runs_in_order
from shellwatch.query.ir import Case, Regex

CHARS = "ab+{\n"
texts = st.text(alphabet=CHARS + "c", max_size=16)
runs = st.lists(st.text(alphabet=CHARS, min_size=1, max_size=3), min_size=1, max_size=5)
flag_sets = st.sampled_from((0, re.DOTALL, re.MULTILINE, re.DOTALL | re.MULTILINE))
separators = st.sampled_from((".*", ".*?"))


@settings(max_examples=1500, deadline=None)
@given(runs, st.lists(separators, min_size=5, max_size=5), flag_sets, st.booleans(), st.lists(texts, max_size=6))
def test_ordered_runs_search_equals_re(
    parts: list[str], between: list[str], flags: int, leading: bool, values: list[str]
) -> None:
    """Runs joined by ``.*`` (or ``.*?``), optionally led by one: the one-pass reading decides as ``re.search``;
    a run holding a line feed without DOTALL is not read this way (a ``.*`` cannot cross it)."""
    source = (".*" if leading else "") + "".join(
        re.escape(part) + (between[i] if i < len(parts) - 1 else "") for i, part in enumerate(parts)
    )
    pattern = re.compile(source, flags)
    found = ordered_runs(pattern)
    if not flags & re.DOTALL and any("\n" in part for part in parts):
        assert found is None
        return
    assert found is not None
    for value in values:
        assert runs_in_order(value, found, bool(flags & re.DOTALL)) is (pattern.search(value) is not None), value


def test_patterns_of_other_forms_are_not_read_as_runs() -> None:
    for source in (r"a.+b", r"a.*b|c", r"a[bc].*d", r"^a.*b", r"(a).*b", r"a.{0,5}b", r"a.*B"):
        flags = re.IGNORECASE if source == r"a.*B" else 0
        assert ordered_runs(re.compile(source, flags)) is None, source
    assert ordered_runs(re.compile(r"\+.*\+.*?\+")) == ("+", "+", "+")
    assert ordered_runs(re.compile(r"(?s)cmd.*/c")) == ("cmd", "/c")


small_patterns = st.lists(
    st.sampled_from(("a", "b", "\\+", "a{2}", "(?:ab){2,}", "b+", "a?", "[ab]", "(?=aa)", "a|b", ".", ".*", "\\d")),
    min_size=1,
    max_size=6,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(small_patterns, st.lists(st.text(alphabet="ab+1\n", max_size=12), max_size=6))
def test_repeated_literals_are_necessary(source: str, values: list[str]) -> None:
    """Every value the pattern finds a match in holds each counted character at least as often as counted."""
    pattern = re.compile(source)
    counts = repeated_literals(pattern)
    assert all(least >= 2 for _, least in counts)
    for value in values:
        if pattern.search(value) is not None:
            assert all(value.count(char) >= least for char, least in counts), (source, value, counts)


def test_repeated_literals_of_the_obfuscation_patterns() -> None:
    """The counts of SigmaHQ's proc_creation_win_powershell_cmdline_obfuscation patterns; none when the pattern
    ignores case (a letter then matches more than itself)."""
    assert repeated_literals(re.compile(r"\^.*\^.*\^.*\^.*\^")) == (("^", 5),)
    assert repeated_literals(re.compile(r"a{3}b(?:cc){2,}")) == (("a", 3), ("c", 4))
    assert repeated_literals(re.compile(r"(?i)aa")) == ()
    assert repeated_literals(re.compile(r"(?i:aa)bb")) == (("b", 2),)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(
        (
            r"\+.*\+.*\+.*\+",
            r"`.*`.*`",
            r"\w+`(?:\w+|-|.)`[\w+|\s]",
            r'"(?:\{\d\})+"\s*-f',
            r"(?i)\$\{`?e`?n`?v",
            r"a.*b",
        )
    ),
    st.booleans(),
    st.lists(st.text(alphabet='ab+`"{}0- \nfE$', max_size=24), max_size=6),
)
def test_compiled_regex_test_equals_re(source: str, anchored: bool, values: list[str]) -> None:
    """The compiled IR test of a Regex node (either shortcut or none) decides as the pattern itself, strings
    in lists and non-strings included."""
    node = Regex("process.command_line", source, Case.SENSITIVE, anchored=anchored)
    test = raw_field_test(node)
    pattern = re.compile(source)
    run = pattern.fullmatch if anchored else pattern.search
    for value in values:
        assert test(value) is (run(value) is not None)
    assert test([*values, 3]) is any(run(value) is not None for value in values)
    assert test(None) is False
