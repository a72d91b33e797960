"""String patterns of the IR, turned into fast Python matchers: wildcards and Lucene regular expressions.

Wildcards (:class:`shellwatch.query.ir.Wildcard`, the ``wildcard`` call) follow Lucene's wildcard syntax,
which the IR adopts: ``*`` is any run of characters (possibly empty), ``?`` exactly one character, and a
backslash makes the next character literal (a trailing lone backslash is itself literal, as Lucene's
``WildcardQuery`` reads it). Patterns are anchored at both ends. :func:`compile_wildcards` sorts a list of
patterns into the cheapest tests that decide it: an exact-value set, ``startswith``/``endswith`` tuples,
substring tests, and one combined regular expression for whatever is left.

Lucene regular expressions (EQL's ``regex`` / ``regex~``, Elasticsearch's ``regexp`` query) are translated to
Python :mod:`re` syntax by :func:`lucene_to_python`. What is supported, following Lucene's ``RegExp`` grammar
(https://www.elastic.co/guide/en/elasticsearch/reference/current/regexp-syntax.html):

* ``.`` (any character, newline included), ``?`` ``*`` ``+`` ``{n}`` ``{n,}`` ``{n,m}``, ``|``, ``( )``, the
  empty group ``()``, character classes ``[...]`` / ``[^...]`` with ranges, ``"quoted literal strings"``,
  ``\\x`` for a literal ``x``;
* the shorthand classes ``\\d \\D \\s \\S \\w \\W`` with Java's ASCII meaning
  (``\\s`` is ``[ \\t\\n\\x0B\\f\\r]``, ``\\w`` is ``[a-zA-Z0-9_]``), also inside classes (the
  negated ones only in non-negated classes);
* the optional operators that Elasticsearch enables by default: ``@`` (any string) and ``#`` (the empty
  language).

Not supported (a :class:`PatternError` names them): ``&`` (intersection), ``~`` (complement) and ``<n-m>``
(numeric interval). ``^`` and ``$`` are literal characters, as in Lucene, which has no anchors: the whole
value must match. Case-insensitive Lucene matching (``regex~``) folds ASCII letters of single characters and
quoted strings only; character ranges such as ``[a-c]`` stay case-sensitive, as documented for Lucene's
``ASCII_CASE_INSENSITIVE`` flag.

Regular expressions are also read for what every match holds (:func:`ordered_runs`, :func:`repeated_literals`),
so that the engine can decide the values a pattern would backtrack on for long without running it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class PatternError(ValueError):
    """A pattern is invalid, or uses a construct this engine does not run; the message says which."""


# ------------------------------------------------------------------------------------------------------------
# Wildcards

STAR = "*"
ONE = "?"
_ESCAPE = "\\"


@dataclass(frozen=True, slots=True)
class _Token:
    """One wildcard (``*`` or ``?``) in a parsed pattern; literal text is kept as plain strings."""

    kind: str


_STAR_TOKEN = _Token(STAR)
_ONE_TOKEN = _Token(ONE)

WildcardPart = str | _Token


def parse_wildcard(pattern: str) -> list[WildcardPart]:
    """Split an IR wildcard pattern into literal runs and wildcard tokens (consecutive ``*`` collapse)."""
    parts: list[WildcardPart] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts.append("".join(literal))
            literal.clear()

    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == _ESCAPE and i + 1 < n:
            literal.append(pattern[i + 1])
            i += 2
            continue
        if ch == STAR:
            flush()
            if not (parts and parts[-1] is _STAR_TOKEN):
                parts.append(_STAR_TOKEN)
        elif ch == ONE:
            flush()
            parts.append(_ONE_TOKEN)
        else:
            literal.append(ch)
        i += 1
    flush()
    return parts


def escape_wildcard(text: str) -> str:
    """The IR wildcard pattern that matches ``text`` literally."""
    return text.replace(_ESCAPE, _ESCAPE * 2).replace(STAR, _ESCAPE + STAR).replace(ONE, _ESCAPE + ONE)


def has_wildcard(pattern: str) -> bool:
    """Whether an IR pattern contains an unescaped ``*`` or ``?``."""
    return any(isinstance(part, _Token) for part in parse_wildcard(pattern))


def unescape_wildcard(pattern: str) -> str:
    """The literal text of a pattern without wildcards (escapes removed)."""
    return "".join(part for part in parse_wildcard(pattern) if isinstance(part, str))


def wildcard_regex(pattern: str) -> str:
    """A Python regular expression (for ``fullmatch`` with :data:`re.DOTALL`) equivalent to an IR pattern."""
    out: list[str] = []
    for part in parse_wildcard(pattern):
        if part is _STAR_TOKEN:
            out.append(".*")
        elif part is _ONE_TOKEN:
            out.append(".")
        else:
            assert isinstance(part, str)
            out.append(re.escape(part))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class WildcardSet:
    """A list of wildcard patterns sorted into the cheapest tests that decide it (all anchored, any-of).

    The strings held are already lower-cased when the set was compiled case-insensitively; callers lower-case
    the value the same way before testing.
    """

    exact: frozenset[str]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    infixes: tuple[str, ...]
    match_any: bool
    regex: re.Pattern[str] | None

    def matches(self, value: str) -> bool:
        """Whether ``value`` (lower-cased by the caller for a case-insensitive set) matches any pattern."""
        if self.match_any or value in self.exact:
            return True
        if self.prefixes and value.startswith(self.prefixes):
            return True
        if self.suffixes and value.endswith(self.suffixes):
            return True
        for infix in self.infixes:
            if infix in value:
                return True
        return self.regex is not None and self.regex.fullmatch(value) is not None


def compile_wildcards(patterns: Iterable[str], *, insensitive: bool) -> WildcardSet:
    """Sort IR wildcard patterns into a :class:`WildcardSet` (lower-cased when ``insensitive``)."""
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    infixes: list[str] = []
    general: list[str] = []
    match_any = False
    for raw in patterns:
        pattern = str.lower(raw) if insensitive else raw
        parts = parse_wildcard(pattern)
        literals = [part for part in parts if isinstance(part, str)]
        if _ONE_TOKEN in parts:
            general.append(wildcard_regex(pattern))
        elif not parts:
            exact.add("")
        elif parts == [_STAR_TOKEN]:
            match_any = True
        elif len(parts) == 1:
            exact.add(literals[0])
        elif len(parts) == 2 and parts[1] is _STAR_TOKEN:
            prefixes.append(literals[0])
        elif len(parts) == 2 and parts[0] is _STAR_TOKEN:
            suffixes.append(literals[0])
        elif len(parts) == 3 and parts[0] is _STAR_TOKEN and parts[2] is _STAR_TOKEN:
            infixes.append(literals[0])
        else:
            general.append(wildcard_regex(pattern))
    regex = re.compile("|".join(f"(?:{g})" for g in general), re.DOTALL) if general else None
    return WildcardSet(
        exact=frozenset(exact),
        prefixes=tuple(dict.fromkeys(prefixes)),
        suffixes=tuple(dict.fromkeys(suffixes)),
        infixes=tuple(dict.fromkeys(infixes)),
        match_any=match_any,
        regex=regex,
    )


# ------------------------------------------------------------------------------------------------------------
# Lucene regular expressions

_DIGIT = "0-9"
_SPACE = " \\t\\n\\x0b\\f\\r"
_WORD = "a-zA-Z0-9_"
_SHORTHAND = {"d": _DIGIT, "s": _SPACE, "w": _WORD}


@dataclass(frozen=True, slots=True)
class _ClassItems:
    """Members of a Lucene character class, as Python class-body fragments."""

    positive: tuple[str, ...]
    negated_shorthands: tuple[str, ...]


class _LuceneParser:
    """Recursive-descent translation of Lucene's ``RegExp`` grammar into Python regex source."""

    def __init__(self, pattern: str, fold_ascii_case: bool) -> None:
        self.text = pattern
        self.pos = 0
        self.fold = fold_ascii_case

    # -- helpers ---------------------------------------------------------------------------------------------

    def error(self, message: str) -> PatternError:
        return PatternError(f"{message} at offset {self.pos} in regular expression {self.text!r}")

    def more(self) -> bool:
        return self.pos < len(self.text)

    def peek(self, chars: str) -> bool:
        return self.more() and self.text[self.pos] in chars

    def match(self, ch: str) -> bool:
        if self.more() and self.text[self.pos] == ch:
            self.pos += 1
            return True
        return False

    def next_char(self) -> str:
        if not self.more():
            raise self.error("unexpected end of pattern")
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def literal(self, ch: str) -> str:
        if self.fold and ch.isascii() and ch.isalpha():
            return f"[{str.lower(ch)}{ch.upper()}]"
        return re.escape(ch)

    # -- grammar ---------------------------------------------------------------------------------------------

    def parse(self) -> str:
        result = self.union()
        if self.more():
            raise self.error(f"unexpected {self.text[self.pos]!r}")
        return result

    def union(self) -> str:
        branches = [self.concatenation()]
        while self.match("|"):
            branches.append(self.concatenation())
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"

    def concatenation(self) -> str:
        items: list[str] = []
        while self.more() and not self.peek("|)"):
            if self.peek("&"):
                raise self.error("the intersection operator & is not supported")
            items.append(self.repeat())
        return "".join(items)

    def repeat(self) -> str:
        atom = self.complement()
        while self.peek("?*+{"):
            op = self.next_char()
            if op == "{":
                start = self.pos
                while self.peek("0123456789"):
                    self.pos += 1
                if start == self.pos:
                    raise self.error("integer expected in repetition")
                low = int(self.text[start : self.pos])
                high: int | None = low
                if self.match(","):
                    start = self.pos
                    while self.peek("0123456789"):
                        self.pos += 1
                    high = int(self.text[start : self.pos]) if start != self.pos else None
                if not self.match("}"):
                    raise self.error("expected '}'")
                if high is not None and high < low:
                    raise self.error("repetition maximum is below its minimum")
                if high == low:
                    quantifier = f"{{{low}}}"
                elif high is None:
                    quantifier = f"{{{low},}}"
                else:
                    quantifier = f"{{{low},{high}}}"
            else:
                quantifier = op
            atom = f"(?:{atom}){quantifier}"
        return atom

    def complement(self) -> str:
        if self.peek("~"):
            raise self.error("the complement operator ~ is not supported")
        return self.char_class_expression()

    def char_class_expression(self) -> str:
        if self.match("["):
            negate = self.match("^")
            items = self.char_classes()
            if not self.match("]"):
                raise self.error("expected ']'")
            return self.render_class(items, negate)
        return self.simple()

    def char_classes(self) -> _ClassItems:
        positive: list[str] = []
        negated: list[str] = []
        while True:
            if self.match("\\"):
                if self.peek("dswDSW"):
                    letter = self.next_char()
                    if letter.islower():
                        positive.append(_SHORTHAND[letter])
                    else:
                        negated.append(_SHORTHAND[str.lower(letter)])
                    if not self.more() or self.peek("]"):
                        break
                    continue
                first = self.next_char()
            else:
                first = self.next_char()
            if self.match("-"):
                if self.peek("]"):
                    # a trailing '-' before ']' is literal
                    positive.append(self.class_char(first))
                    positive.append(re.escape("-"))
                else:
                    last = self.next_char()
                    if last == "\\":
                        last = self.next_char()
                    if ord(last) < ord(first):
                        raise self.error("illegal character range")
                    positive.append(f"{re.escape(first)}-{re.escape(last)}")
            else:
                positive.append(self.class_char(first))
            if not self.more() or self.peek("]"):
                break
        return _ClassItems(tuple(positive), tuple(negated))

    def class_char(self, ch: str) -> str:
        if self.fold and ch.isascii() and ch.isalpha():
            return str.lower(ch) + ch.upper()
        return re.escape(ch)

    def render_class(self, items: _ClassItems, negate: bool) -> str:
        body = "".join(items.positive)
        if not items.negated_shorthands:
            return f"[^{body}]" if negate else f"[{body}]"
        if negate:
            raise self.error("a negated shorthand class (\\D, \\S, \\W) inside [^...] is not supported")
        options = [f"[{body}]"] if body else []
        options.extend(f"[^{shorthand}]" for shorthand in items.negated_shorthands)
        return "(?:" + "|".join(options) + ")"

    def simple(self) -> str:
        if self.match("."):
            return "."
        if self.match("#"):
            return "(?!)"
        if self.match("@"):
            return ".*"
        if self.peek("<"):
            raise self.error("the numeric interval operator <n-m> is not supported")
        if self.match('"'):
            end = self.text.find('"', self.pos)
            if end < 0:
                raise self.error("unterminated quoted string")
            chunk = self.text[self.pos : end]
            self.pos = end + 1
            return "".join(self.literal(ch) for ch in chunk)
        if self.match("("):
            if self.match(")"):
                return ""
            inner = self.union()
            if not self.match(")"):
                raise self.error("expected ')'")
            return f"(?:{inner})"
        if self.peek("])}*+?{|"):
            raise self.error(f"unexpected {self.text[self.pos]!r}")
        if self.match("\\"):
            if self.peek("dswDSW"):
                letter = self.next_char()
                body = _SHORTHAND[str.lower(letter)]
                return f"[{body}]" if letter.islower() else f"[^{body}]"
            return self.literal(self.next_char())
        return self.literal(self.next_char())


def lucene_to_python(pattern: str, *, insensitive: bool = False) -> str:
    """Translate a Lucene regular expression into Python regex source (``fullmatch`` it, ``re.DOTALL``)."""
    return _LuceneParser(pattern, insensitive).parse()


@lru_cache(maxsize=4096)
def compile_lucene(pattern: str, insensitive: bool) -> re.Pattern[str]:
    """A compiled Python pattern equivalent to a Lucene regular expression (anchored: use ``fullmatch``)."""
    source = lucene_to_python(pattern, insensitive=insensitive)
    try:
        return re.compile(source, re.DOTALL)
    except re.error as exc:  # the translation is ours: a failure here is a pattern we do not handle
        raise PatternError(f"cannot translate regular expression {pattern!r}: {exc}") from exc


def compile_python_regex(
    pattern: str, *, insensitive: bool, multiline: bool = False, dotall: bool = False
) -> re.Pattern[str]:
    """Compile a regular expression written in Python syntax (the IR's ``dialect="python"``)."""
    flags = (re.IGNORECASE if insensitive else 0) | (re.MULTILINE if multiline else 0) | (re.DOTALL if dotall else 0)
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise PatternError(f"invalid regular expression {pattern!r}: {exc}") from exc


def any_pattern_matches(patterns: Sequence[re.Pattern[str]], value: str, *, anchored: bool) -> bool:
    """Whether one of ``patterns`` matches ``value`` (the whole value when ``anchored``)."""
    if anchored:
        return any(p.fullmatch(value) is not None for p in patterns)
    return any(p.search(value) is not None for p in patterns)


# ------------------------------------------------------------------------------------------------------------
# What every match of a regular expression holds

SRE_PARSER: Any = importlib.import_module("re._parser")
"""The standard library's regular expression parser (``sre_parse``): a pattern's items as ``re`` reads them."""
SRE_REPEATS = tuple(
    getattr(SRE_PARSER, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(SRE_PARSER, name)
)


@lru_cache(maxsize=4096)
def repeated_literals(pattern: re.Pattern[str]) -> tuple[tuple[str, int], ...]:
    """The characters every match of a case-sensitive ``pattern`` holds at least twice, each with the least
    number of times: a value holding fewer of one cannot match, so a plain ``str.count`` may rule it out before
    the pattern runs. That is what makes ``\\+.*\\+.*\\+...`` (Sigma's obfuscation rules) cheap on the many
    values with a few ``+``, on which the pattern backtracks through every split.

    Read from the parse ``re`` itself makes: each literal item of the top-level sequence takes its own position
    in a match, and so do the items of a group and the ``n`` first rounds of a repeat ``{n,}``. Alternatives,
    lookarounds, groups with their own flags and anything else are left out (they only add to what a match
    holds). A case-insensitive pattern gives nothing: a letter then matches several characters.
    """
    try:
        parsed = SRE_PARSER.parse(pattern.pattern, pattern.flags)
        if parsed.state.flags & re.IGNORECASE:
            return ()
        counts: dict[str, int] = {}
        _count_literals(parsed.data, 1, counts)
    except Exception:  # the stdlib parser's private structure, or a pattern it refuses: nothing is known
        return ()
    return tuple(sorted((char, least) for char, least in counts.items() if least >= 2))


_COUNT_LIMIT = 1 << 16
"""A repeat's least number of rounds counted at most this far (``x{1000000}`` needs no more to rule values out)."""


def _count_literals(items: Iterable[tuple[Any, Any]], times: int, counts: dict[str, int]) -> None:
    for op, argument in items:
        if op is SRE_PARSER.LITERAL:
            char = chr(argument)
            counts[char] = min(counts.get(char, 0) + times, _COUNT_LIMIT)
        elif op is SRE_PARSER.SUBPATTERN:
            _group, add_flags, del_flags, sub = argument
            if not (add_flags or del_flags):
                _count_literals(sub, times, counts)
        elif op in SRE_REPEATS:
            low, _high, sub = argument
            if low >= 1:
                _count_literals(sub, min(times * low, _COUNT_LIMIT), counts)


def ordered_runs(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """The literal runs of a case-sensitive ``pattern`` made only of literal runs and ``.*`` (``.*?``) between
    them, such as ``\\+.*\\+.*\\+`` or ``cmd.*/c.*whoami``; None for any other pattern.

    Searched (not anchored), such a pattern matches exactly the values with a line holding the runs in order,
    without overlap (``.`` does not match a line feed; with ``re.DOTALL`` the whole value is one line), which
    :func:`runs_in_order` decides in one pass. The pattern itself backtracks through every way of splitting the
    value: on a long command line with many ``+``, milliseconds per value.
    """
    try:
        parsed = SRE_PARSER.parse(pattern.pattern, pattern.flags)
        if parsed.state.flags & re.IGNORECASE:
            return None
        runs: list[str] = []
        run: list[str] = []
        for op, argument in parsed.data:
            if op is SRE_PARSER.LITERAL:
                run.append(chr(argument))
                continue
            if op not in (SRE_PARSER.MAX_REPEAT, SRE_PARSER.MIN_REPEAT):
                return None
            low, high, sub = argument
            if low != 0 or high != SRE_PARSER.MAXREPEAT or list(sub) != [(SRE_PARSER.ANY, None)]:
                return None
            if run:
                runs.append("".join(run))
                run.clear()
        if run:
            runs.append("".join(run))
    except Exception:  # the stdlib parser's private structure, or a pattern it refuses: not this form
        return None
    if not runs or (not parsed.state.flags & re.DOTALL and any("\n" in each for each in runs)):
        return None
    return tuple(runs)


def runs_in_order(value: str, runs: Sequence[str], dotall: bool) -> bool:
    """Whether a line of ``value`` (the whole value when ``dotall``) holds ``runs`` in order without overlap:
    the search of a pattern :func:`ordered_runs` reads. Taking each run's first occurrence after the previous
    one leaves the most room for those after it, so one pass decides."""
    lines = (value,) if dotall or "\n" not in value else value.split("\n")
    for line in lines:
        at = 0
        for run in runs:
            at = line.find(run, at)
            if at < 0:
                break
            at += len(run)
        else:
            return True
    return False
