"""Wildcard matchers and the Lucene regular-expression translation.

Wildcards are checked against a straightforward recursive matcher written here (Lucene's WildcardQuery rules:
``*`` any run, ``?`` one character, ``\\`` escapes the next character, a trailing ``\\`` is literal). Regular
expressions are checked with the examples of Elasticsearch's regular expression syntax page
(https://www.elastic.co/guide/en/elasticsearch/reference/current/regexp-syntax.html).
"""

from __future__ import annotations

import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.engine.patterns import (
    PatternError,
    compile_lucene,
    compile_wildcards,
    escape_wildcard,
    has_wildcard,
    lucene_to_python,
    unescape_wildcard,
)


def reference_match(pattern: str, value: str) -> bool:
    """Anchored wildcard match, by direct recursion over pattern and value."""

    @cache
    def match(p: int, v: int) -> bool:
        if p == len(pattern):
            return v == len(value)
        ch = pattern[p]
        if ch == "*":
            return match(p + 1, v) or (v < len(value) and match(p, v + 1))
        if ch == "?":
            return v < len(value) and match(p + 1, v + 1)
        if ch == "\\" and p + 1 < len(pattern):
            return v < len(value) and value[v] == pattern[p + 1] and match(p + 2, v + 1)
        return v < len(value) and value[v] == ch and match(p + 1, v + 1)

    return match(0, 0)


ALPHABET = st.sampled_from("ab*?\\Aé.\n")
patterns = st.text(ALPHABET, max_size=8)
values = st.text(st.sampled_from("ab*?\\Aé.\nB"), max_size=10)


@settings(max_examples=400, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=4), values)
def test_wildcard_set_agrees_with_reference(pattern_list: list[str], value: str) -> None:
    matcher = compile_wildcards(pattern_list, insensitive=False)
    assert matcher.matches(value) == any(reference_match(p, value) for p in pattern_list)


@settings(max_examples=300, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=4), values)
def test_insensitive_wildcard_set_agrees_with_reference(pattern_list: list[str], value: str) -> None:
    matcher = compile_wildcards(pattern_list, insensitive=True)
    expected = any(reference_match(p.lower(), value.lower()) for p in pattern_list)
    assert matcher.matches(value.lower()) == expected


@given(st.text(max_size=12))
def test_escaped_text_matches_only_itself(text: str) -> None:
    pattern = escape_wildcard(text)
    assert not has_wildcard(pattern)
    assert unescape_wildcard(pattern) == text
    assert compile_wildcards([pattern], insensitive=False).matches(text)
    assert reference_match(pattern, text)


def test_wildcard_sorting_into_fast_tests() -> None:
    matcher = compile_wildcards(["a", "b*", "*c", "*d*", "e?f", "g*h", "\\*lit"], insensitive=False)
    assert matcher.exact == {"a", "*lit"}
    assert matcher.prefixes == ("b",)
    assert matcher.suffixes == ("c",)
    assert matcher.infixes == ("d",)
    assert matcher.regex is not None
    assert not matcher.match_any
    assert compile_wildcards(["*"], insensitive=False).match_any


def test_trailing_backslash_is_literal() -> None:
    """Lucene WildcardQuery.toAutomaton: an escape with nothing after it is read as a literal backslash."""
    matcher = compile_wildcards(["*dir\\"], insensitive=False)
    assert matcher.matches("C:\\dir\\")
    assert not matcher.matches("C:\\dir")


# -- Lucene regular expressions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("ab.", ["aba", "abb", "abz"], ["ab", "abzz"]),
        ("abc?", ["ab", "abc"], ["abcc"]),
        ("ab+", ["ab", "abb", "abbb"], ["a"]),
        ("ab*", ["a", "ab", "abb", "abbb"], ["b"]),
        ("a{2}", ["aa"], ["a", "aaa"]),
        ("a{2,4}", ["aa", "aaa", "aaaa"], ["a", "aaaaa"]),
        ("a{2,}", ["aa", "aaaaaaa"], ["a"]),
        ("abc|xyz", ["abc", "xyz"], ["abcxyz"]),
        ("abc(def)?", ["abc", "abcdef"], ["abcd"]),
        ("[abc]", ["a", "b", "c"], ["d"]),
        ("[a-c]", ["a", "b", "c"], ["d"]),
        ("[-abc]", ["-", "a"], ["d"]),
        ("[abc\\-]", ["-", "c"], ["d"]),
        ("[^abc]", ["d"], ["a", "b", "c"]),
        ("[^a-c]", ["d"], ["a", "b", "c"]),
        ("[^-abc]", ["d"], ["-", "a"]),
        ("[^abc\\-]", ["d"], ["-", "a"]),
        ('"john@smith.com"', ["john@smith.com"], ["johnxsmith.com"]),
        ("\\@", ["@"], ["a"]),
        ("\\\\", ["\\"], ["\\\\"]),
        ("@", ["", "anything at all"], []),
        ("#|abc", ["abc"], ["", "#"]),
        ("^abc$", ["^abc$"], ["abc"]),
        ("a.c", ["a\nc"], []),
        ("()a", ["a"], []),
        ("\\d+\\s\\w*", ["12 ab_9"], ["x y"]),
        ("[a-z0-9\\s_\\-\\\\./]+", ["/var/tmp/x-y 1"], ["A"]),
        ("[\\D]", ["x"], ["5"]),
        (".*[ ]{20,}.*", ["a" + " " * 20 + "b"], ["a b"]),
    ],
)
def test_lucene_regex(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    """regexp-syntax: standard operators, optional operators (ALL is Elasticsearch's default), no anchors."""
    compiled = compile_lucene(pattern, False)
    for value in matching:
        assert compiled.fullmatch(value), (pattern, value)
    for value in not_matching:
        assert not compiled.fullmatch(value), (pattern, value)


def test_lucene_case_insensitivity_leaves_ranges_alone() -> None:
    """regexp-syntax: "Character range classes such as [a-c] ... remain case sensitive"; single characters and
    quoted strings fold (ASCII only)."""
    compiled = compile_lucene('ab[c-d]"xy"[e]', True)
    assert compiled.fullmatch("ABcXYE")
    assert not compiled.fullmatch("ABCXYE")
    assert compile_lucene("é", True).fullmatch("é")
    assert not compile_lucene("é", True).fullmatch("É")


def test_shorthand_classes_are_ascii() -> None:
    assert not compile_lucene("\\d", False).fullmatch("٣")
    assert not compile_lucene("\\w", False).fullmatch("é")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a~bc", "complement"),
        ("aaa.+&.+bbb", "intersection"),
        ("foo<1-100>", "interval"),
        ("[^a\\D]", "negated shorthand"),
        ("(abc", "expected ')'"),
        ("[abc", "expected ']'"),
        ("a{2", "expected '}'"),
        ("a{4,2}", "below its minimum"),
        ("*a", "unexpected"),
        ("ab\\", "end of pattern"),
        ('"abc', "unterminated"),
        ("[z-a]", "illegal character range"),
    ],
)
def test_lucene_errors(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)):
        lucene_to_python(pattern)
