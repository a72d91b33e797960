"""The KQL (Kibana Query Language, "kuery") front end: KQL text becomes an IR test, with Kibana's semantics.

Parsing follows Kibana's PEG grammar rule by rule (kibana ``src/platform/packages/shared/kbn-es-query/src/kuery/
grammar/grammar.peggy``), quirks included:

* precedence ``not`` > ``and`` > ``or``; the keywords are case-insensitive and need whitespace around
  ``and``/``or`` and after ``not`` (``not(a:1)`` is not a negation);
* an unquoted value runs until a special character ``\\ ( ) : < > " * { }`` or a keyword, spaces included, and
  is trimmed (``message:quick brown`` is one value); ``*`` in it is a wildcard; ``\\`` escapes the specials,
  ``\\t \\r \\n``, ``\\uXXXX`` and the keywords (``\\or``); unquoted ``true``/``false``/``null`` are literals;
* a quoted value takes ``\\"`` ``\\\\`` ``\\t \\r \\n`` ``\\uXXXX``; any other backslash is itself; ``*`` in it is
  a plain star;
* ``field:(a or b and not c)`` distributes the field; ``field:{ ... }`` is a nested query; ``field < 5``...
  are ranges; a value without a field is free text. Errors name the furthest position the parser reached.

Meaning, as Kibana's detection engine runs a KQL rule: ``getQueryFilter`` builds the query with an index
pattern that has **no field list** (``fields: []``) and ``allowLeadingWildcards: true`` (security_solution
``detection_engine/get_query_filter.ts``), so ``functions/is.ts`` never sees a field type and emits:

* ``field:*`` -> ``exists``; ``*:*`` -> ``match_all``;
* an unquoted value with a wildcard -> ``query_string`` on that field, the value escaped except for ``*``
  (``node_types/wildcard.ts`` ``toQueryStringQuery``): whitespace is not escaped, so the query_string parser
  splits ``*foo bar*`` into the terms ``*foo`` OR ``bar*``; ``?`` is escaped (a literal question mark);
* any other value -> ``match`` (unquoted) or ``match_phrase`` (quoted) on that field;
* ``range`` for ``< <= > >=``; ``bool`` must / should / must_not for and / or / not.

Elasticsearch then decides by the field's mapping (:mod:`shellwatch.query.ecs_field_types`): on ``keyword`` and
``wildcard`` fields ``match``, ``match_phrase`` and wildcard terms compare the whole value, case-sensitively
(no normalizer; ``process.name.caseless`` is the lowercase-normalized exception); on ``text`` /
``match_only_text`` fields the standard analyzer splits the value into lower-cased words (``match``: any word,
``match_phrase``: the words in order; wildcard terms match one word); numbers, IPs (a CIDR block matches its
addresses) and booleans compare as such. Dates compare as instants in epoch milliseconds, the resolution of
Elasticsearch's ``date`` type: a literal without a zone is UTC, and a bound Elasticsearch rounds up (``>``,
``<=``, the upper end of ``field:date``) fills its missing time fields with 23:59:59.999. A missing field fails
every test and ``not`` inverts (``must_not``), so ``not a:1`` matches an event without ``a``. Multi-valued fields
match when any value does.

Not runnable (:class:`UnsupportedQuery`): field names with wildcards (Elasticsearch expands them against the
index's mapping, which events do not carry), nested queries (flattened events lose which values share an
object), ``null`` values, date math (``now-1d``) and date formats other than ISO 8601 and epoch milliseconds,
wildcards on non-string fields. Free text is approximated: any string value of the event equal to the value (or
matching its wildcard terms), case-sensitively; the word matching Elasticsearch applies to text fields in a
free-text search is not modelled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Literal as TypingLiteral

from shellwatch.engine.functions import FunctionError, iso_date_millis, parse_network
from shellwatch.engine.patterns import escape_wildcard
from shellwatch.query.ecs_field_types import base_field, field_type, is_caseless
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import (
    FALSE,
    TRUE,
    And,
    Call,
    Case,
    Cidr,
    Compare,
    CompareOp,
    Equals,
    Exists,
    FieldRef,
    Keyword,
    Literal,
    Node,
    Not,
    Or,
    Regex,
    Scalar,
    Wildcard,
)

# ============================================================================================================
# Syntax tree


class _Star:
    """The wildcard ``*`` inside an unquoted value (an escaped ``\\*`` is a plain character instead)."""

    def __repr__(self) -> str:
        return "*"


STAR = _Star()

Part = str | _Star


@dataclass(frozen=True, slots=True)
class KqlValue:
    """A field name or value as written: its characters (``STAR`` for wildcards), whether it was quoted, and
    what an unquoted ``true``/``false``/``null`` makes of it."""

    parts: tuple[Part, ...]
    quoted: bool
    kind: TypingLiteral["text", "true", "false", "null"] = "text"
    offset: int = 0

    @property
    def text(self) -> str:
        """The value with its wildcards written as ``*``."""
        return "".join("*" if part is STAR else str(part) for part in self.parts)

    @property
    def has_wildcard(self) -> bool:
        return any(part is STAR for part in self.parts)

    @property
    def is_lone_wildcard(self) -> bool:
        return self.parts == (STAR,)


@dataclass(frozen=True, slots=True)
class KqlAnd:
    children: tuple[KqlNode, ...]


@dataclass(frozen=True, slots=True)
class KqlOr:
    children: tuple[KqlNode, ...]


@dataclass(frozen=True, slots=True)
class KqlNot:
    child: KqlNode


@dataclass(frozen=True, slots=True)
class KqlIs:
    """``field:value``; ``field`` is None for free text."""

    field: KqlValue | None
    value: KqlValue


@dataclass(frozen=True, slots=True)
class KqlRange:
    field: KqlValue
    op: CompareOp
    value: KqlValue


@dataclass(frozen=True, slots=True)
class KqlNested:
    field: KqlValue
    query: KqlNode


KqlNode = KqlAnd | KqlOr | KqlNot | KqlIs | KqlRange | KqlNested | None
"""A parsed KQL query; None is the empty query (Kibana's match-all)."""


# ============================================================================================================
# Parsing

_SPACE = frozenset(" \t\r\n\u00a0")
_SPECIAL = frozenset('\\():<>"*{}')
_ESCAPED_WHITESPACE = {"t": "\t", "r": "\r", "n": "\n"}
_HEX = frozenset("0123456789abcdefABCDEF")
_MAX_DEPTH = 200

# A value list before a field is applied to it: leaves are values, inner nodes the list's and/or/not.
_ValueTree = tuple[str, object]
_ListRule = Callable[[int], "tuple[_ValueTree, int] | None"]


class _Parser:
    """A recursive-descent rendering of Kibana's PEG grammar; methods take a position and return
    ``(result, next position)`` or None, recording the furthest position where an expectation failed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.length = len(text)
        self.furthest = 0
        self.expected: set[str] = set()
        self.depth = 0

    # -- failure bookkeeping ------------------------------------------------------------------------------

    def expect(self, pos: int, what: str) -> None:
        if pos > self.furthest:
            self.furthest = pos
            self.expected = {what}
        elif pos == self.furthest:
            self.expected.add(what)

    def error(self) -> QueryError:
        pos = self.furthest
        found = "end of query" if pos >= self.length else repr(self.text[pos])
        expected = ", ".join(sorted(self.expected)) or "a query"
        return QueryError(f"expected {expected} but found {found}", _line_column(self.text, pos))

    # -- terminals -----------------------------------------------------------------------------------------

    def spaces(self, pos: int) -> int:
        while pos < self.length and self.text[pos] in _SPACE:
            pos += 1
        return pos

    def char(self, pos: int, ch: str) -> int | None:
        if pos < self.length and self.text[pos] == ch:
            return pos + 1
        self.expect(pos, repr(ch))
        return None

    def word(self, pos: int, word: str) -> int | None:
        end = pos + len(word)
        if self.text[pos:end].lower() == word:
            return end
        return None

    def binary_keyword(self, pos: int, word: str) -> int | None:
        """``Space+ word Space+`` (Kibana's ``Or`` / ``And``)."""
        after_spaces = self.spaces(pos)
        if after_spaces == pos:
            self.expect(pos, word.upper())
            return None
        end = self.word(after_spaces, word)
        if end is None:
            self.expect(after_spaces, word.upper())
            return None
        after = self.spaces(end)
        if after == end:
            self.expect(end, "whitespace")
            return None
        return after

    def not_keyword(self, pos: int) -> int | None:
        """``'not'i Space+``."""
        end = self.word(pos, "not")
        if end is None:
            self.expect(pos, "NOT")
            return None
        after = self.spaces(end)
        return after if after > end else None

    def keyword_at(self, pos: int) -> bool:
        """Kibana's ``Keyword``: ``Space or Space``, ``Space and Space`` or ``not Space`` starts here."""
        text = self.text
        if text[pos] in _SPACE:
            for word in ("or", "and"):
                end = pos + 1 + len(word)
                if text[pos + 1 : end].lower() == word and end < self.length and text[end] in _SPACE:
                    return True
        return text[pos : pos + 3].lower() == "not" and pos + 3 < self.length and text[pos + 3] in _SPACE

    # -- rules ------------------------------------------------------------------------------------------------

    def parse(self) -> KqlNode:
        pos = self.spaces(0)
        found = self.or_query(pos)
        query: KqlNode = None
        if found is not None:
            query, pos = found
        pos = self.spaces(pos)
        if pos != self.length:
            self.expect(pos, "end of query")
            raise self.error()
        return query

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise QueryError(f"the query nests deeper than {_MAX_DEPTH} levels")

    def or_query(self, pos: int) -> tuple[KqlNode, int] | None:
        first = self.and_query(pos)
        if first is None:
            return None
        nodes = [first[0]]
        pos = first[1]
        while (after := self.binary_keyword(pos, "or")) is not None:
            nxt = self.and_query(after)
            if nxt is None:
                break
            nodes.append(nxt[0])
            pos = nxt[1]
        return (nodes[0] if len(nodes) == 1 else KqlOr(tuple(nodes))), pos

    def and_query(self, pos: int) -> tuple[KqlNode, int] | None:
        first = self.not_query(pos)
        if first is None:
            return None
        nodes = [first[0]]
        pos = first[1]
        while (after := self.binary_keyword(pos, "and")) is not None:
            nxt = self.not_query(after)
            if nxt is None:
                break
            nodes.append(nxt[0])
            pos = nxt[1]
        return (nodes[0] if len(nodes) == 1 else KqlAnd(tuple(nodes))), pos

    def not_query(self, pos: int) -> tuple[KqlNode, int] | None:
        after = self.not_keyword(pos)
        if after is not None:
            inner = self.sub_query(after)
            if inner is not None:
                return KqlNot(inner[0]), inner[1]
        return self.sub_query(pos)

    def sub_query(self, pos: int) -> tuple[KqlNode, int] | None:
        opened = self.char(pos, "(")
        if opened is not None:
            self.nest()
            inner = self.or_query(self.spaces(opened))
            self.depth -= 1
            if inner is not None:
                closed = self.char(self.spaces(inner[1]), ")")
                if closed is not None:
                    return inner[0], closed
        return self.nested_query(pos)

    def nested_query(self, pos: int) -> tuple[KqlNode, int] | None:
        field = self.literal(pos)
        if field is not None:
            colon = self.char(self.spaces(field[1]), ":")
            if colon is not None:
                brace = self.char(self.spaces(colon), "{")
                if brace is not None:
                    self.nest()
                    inner = self.or_query(self.spaces(brace))
                    self.depth -= 1
                    if inner is not None:
                        closed = self.char(self.spaces(inner[1]), "}")
                        if closed is not None:
                            return KqlNested(field[0], inner[0]), closed
        return self.expression(pos)

    def expression(self, pos: int) -> tuple[KqlNode, int] | None:
        field = self.literal(pos)
        if field is None:
            return None
        after_field = self.spaces(field[1])
        ranged = self.range_operator(after_field)
        if ranged is not None:
            op, after_op = ranged
            value = self.literal(self.spaces(after_op))
            if value is not None:
                return KqlRange(field[0], op, value[0]), value[1]
        colon = self.char(after_field, ":")
        if colon is not None:
            values = self.list_of_values(self.spaces(colon))
            if values is not None:
                return _apply_field(field[0], values[0]), values[1]
        # ValueExpression: the literal is a value without a field.
        return KqlIs(None, field[0]), field[1]

    def range_operator(self, pos: int) -> tuple[CompareOp, int] | None:
        for token in ("<=", ">=", "<", ">"):
            if self.text.startswith(token, pos):
                return token, pos + len(token)
        self.expect(pos, "a range operator")
        return None

    def list_of_values(self, pos: int) -> tuple[_ValueTree, int] | None:
        opened = self.char(pos, "(")
        if opened is not None:
            self.nest()
            inner = self.or_list(self.spaces(opened))
            self.depth -= 1
            if inner is not None:
                closed = self.char(self.spaces(inner[1]), ")")
                if closed is not None:
                    return inner[0], closed
        value = self.literal(pos)
        if value is None:
            return None
        return ("value", value[0]), value[1]

    def or_list(self, pos: int) -> tuple[_ValueTree, int] | None:
        return self._list_chain(pos, "or", self.and_list)

    def and_list(self, pos: int) -> tuple[_ValueTree, int] | None:
        return self._list_chain(pos, "and", self.not_list)

    def _list_chain(self, pos: int, word: str, item: _ListRule) -> tuple[_ValueTree, int] | None:
        first = item(pos)
        if first is None:
            return None
        trees = [first[0]]
        pos = first[1]
        while (after := self.binary_keyword(pos, word)) is not None:
            nxt = item(after)
            if nxt is None:
                break
            trees.append(nxt[0])
            pos = nxt[1]
        return (trees[0] if len(trees) == 1 else (word, tuple(trees))), pos

    def not_list(self, pos: int) -> tuple[_ValueTree, int] | None:
        after = self.not_keyword(pos)
        if after is not None:
            inner = self.list_of_values(after)
            if inner is not None:
                return ("not", inner[0]), inner[1]
        return self.list_of_values(pos)

    def literal(self, pos: int) -> tuple[KqlValue, int] | None:
        quoted = self.quoted_string(pos)
        if quoted is not None:
            return quoted
        return self.unquoted_literal(pos)

    def quoted_string(self, pos: int) -> tuple[KqlValue, int] | None:
        text = self.text
        if pos >= self.length or text[pos] != '"':
            self.expect(pos, "a quoted string")
            return None
        chars: list[str] = []
        i = pos + 1
        while i < self.length:
            ch = text[i]
            if ch == '"':
                return KqlValue(("".join(chars),), quoted=True, offset=pos), i + 1
            if ch == "\\" and i + 1 < self.length:
                nxt = text[i + 1]
                if nxt in _ESCAPED_WHITESPACE:
                    chars.append(_ESCAPED_WHITESPACE[nxt])
                    i += 2
                    continue
                unicode = self._unicode_escape(i)
                if unicode is not None:
                    chars.append(unicode)
                    i += 6
                    continue
                if nxt in '\\"':
                    chars.append(nxt)
                    i += 2
                    continue
            chars.append(ch)
            i += 1
        self.expect(i, "'\"'")
        return None

    def _unicode_escape(self, i: int) -> str | None:
        """``\\uXXXX`` at ``i`` (the backslash), as the character it names."""
        digits = self.text[i + 2 : i + 6]
        if self.text[i + 1 : i + 2] == "u" and len(digits) == 4 and all(d in _HEX for d in digits):
            return chr(int(digits, 16))
        return None

    def unquoted_literal(self, pos: int) -> tuple[KqlValue, int] | None:
        text = self.text
        parts: list[Part] = []
        i = pos
        while i < self.length:
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1 : i + 2]
                if nxt in _ESCAPED_WHITESPACE:
                    parts.append(_ESCAPED_WHITESPACE[nxt])
                    i += 2
                    continue
                if nxt and nxt in _SPECIAL:
                    parts.append(nxt)
                    i += 2
                    continue
                unicode = self._unicode_escape(i)
                if unicode is not None:
                    parts.append(unicode)
                    i += 6
                    continue
                keyword = next(
                    (
                        text[i + 1 : i + 1 + len(w)]
                        for w in ("or", "and", "not")
                        if text[i + 1 : i + 1 + len(w)].lower() == w
                    ),
                    None,
                )
                if keyword is not None:
                    parts.extend(keyword)
                    i += 1 + len(keyword)
                    continue
                break
            if ch == "*":
                parts.append(STAR)
                i += 1
                continue
            if ch in _SPECIAL or self.keyword_at(i):
                break
            parts.append(ch)
            i += 1
        if not parts:
            self.expect(pos, "a value")
            return None
        # JavaScript's String.prototype.trim on the joined sequence: whitespace at either end goes, escaped
        # whitespace included.
        while parts and isinstance(parts[0], str) and parts[0].isspace():
            parts.pop(0)
        while parts and isinstance(parts[-1], str) and parts[-1].isspace():
            parts.pop()
        merged = _merge(parts)
        if merged in (("null",), ("true",), ("false",)):
            kind: TypingLiteral["text", "true", "false", "null"] = merged[0]
            return KqlValue(merged, quoted=False, kind=kind, offset=pos), i
        return KqlValue(merged, quoted=False, offset=pos), i


def _merge(parts: list[Part]) -> tuple[Part, ...]:
    """Consecutive characters joined into strings; wildcards kept apart."""
    merged: list[Part] = []
    run: list[str] = []
    for part in parts:
        if part is STAR:
            if run:
                merged.append("".join(run))
                run = []
            merged.append(STAR)
        else:
            run.append(str(part))
    if run:
        merged.append("".join(run))
    return tuple(merged)


def _apply_field(field: KqlValue, tree: _ValueTree) -> KqlNode:
    kind, payload = tree
    if kind == "value":
        assert isinstance(payload, KqlValue)
        return KqlIs(field, payload)
    if kind == "not":
        return KqlNot(_apply_field(field, payload))  # type: ignore[arg-type]
    children = tuple(_apply_field(field, child) for child in payload)  # type: ignore[attr-defined]
    return KqlAnd(children) if kind == "and" else KqlOr(children)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def parse_kql_syntax(text: str) -> KqlNode:
    """The syntax tree of a KQL query (None for an empty query); QueryError with the position when invalid."""
    return _Parser(text).parse()


def parse_kql(text: str) -> Node:
    """Parse a KQL query into an IR test with Kibana's detection-engine semantics (see the module docstring).

    Raises :class:`QueryError` for invalid KQL (naming line and column) or a value Elasticsearch would reject
    for the field's type, and :class:`UnsupportedQuery` for valid KQL shellwatch cannot run.
    """
    return lower_kql(parse_kql_syntax(text))


# ============================================================================================================
# Meaning


def lower_kql(node: KqlNode) -> Node:
    """The IR test for a KQL syntax tree."""
    if node is None:
        return TRUE
    if isinstance(node, KqlAnd):
        return And(tuple(lower_kql(child) for child in node.children))
    if isinstance(node, KqlOr):
        return Or(tuple(lower_kql(child) for child in node.children))
    if isinstance(node, KqlNot):
        return Not(lower_kql(node.child))
    if isinstance(node, KqlIs):
        return _lower_is(node.field, node.value)
    if isinstance(node, KqlRange):
        if node.field.has_wildcard:
            raise UnsupportedQuery("KQL field name pattern", f"{node.field.text!r} in a range")
        return range_test(node.field.text, node.op, node.value.text)
    raise UnsupportedQuery(
        "KQL nested query",
        f"{node.field.text}:{{...}} needs Elasticsearch's nested mapping; flattened events lose which values "
        "share an object",
    )


def _lower_is(field: KqlValue | None, value: KqlValue) -> Node:
    if field is None:
        return _free_text(value)
    if field.has_wildcard:
        if field.is_lone_wildcard and value.is_lone_wildcard:
            return TRUE
        raise UnsupportedQuery(
            "KQL field name pattern",
            f"{field.text!r}: Elasticsearch expands it against the index mapping, which events do not carry",
        )
    name = field.text
    if value.is_lone_wildcard:
        return Exists(base_field(name))
    if value.kind == "null":
        raise UnsupportedQuery("KQL null value", f"{name}:null")
    if value.has_wildcard:
        return _query_string(name, value.parts)
    return match_test(name, value.text, phrase=value.quoted, boolean=_boolean_of(value))


def _boolean_of(value: KqlValue) -> bool | None:
    if value.kind == "true":
        return True
    if value.kind == "false":
        return False
    return None


# -- match / match_phrase -------------------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_MAX_INTEGER_DIGITS = 1000
"""Longer integer literals are refused: Elasticsearch's widest integer type holds 20 digits, and Python's int()
raises ValueError past 4,300 digits (CPython's integer string conversion limit)."""


def _number(text: str) -> int | float | None:
    """The number ``text`` writes, None when it is not one; QueryError for an integer too long to convert."""
    stripped = text.strip()
    if _INTEGER.fullmatch(stripped):
        if len(stripped.lstrip("+-")) > _MAX_INTEGER_DIGITS:
            raise QueryError(f"the number {stripped[:20]}... has {len(stripped)} digits, more than any field holds")
        return int(stripped)
    if _DECIMAL.fullmatch(stripped):
        return float(stripped)
    return None


def keyword_forms(text: str, boolean: bool | None) -> tuple[Scalar, ...]:
    """The event values a keyword term ``text`` matches: the string, and the number or boolean that
    Elasticsearch would have indexed as exactly that string."""
    forms: list[Scalar] = [text]
    try:
        number = _number(text)
    except QueryError:
        # A keyword term may be any string; no event number is written with that many digits.
        number = None
    if number is not None and str(number) == text:
        forms.append(number)
    if boolean is not None or text in ("true", "false"):
        forms.append(text == "true")
    return tuple(forms)


def match_test(name: str, text: str, *, phrase: bool, boolean: bool | None = None, operator: str = "or") -> Node:
    """``match`` (``phrase`` False) or ``match_phrase`` of ``text`` on field ``name``, by the field's type."""
    kind = field_type(name)
    base = base_field(name)
    if kind in ("keyword", "wildcard", "unknown"):
        case = Case.INSENSITIVE if is_caseless(name) else Case.SENSITIVE
        return Equals(base, keyword_forms(text, boolean), case)
    if kind == "text":
        return _text_match(base, text, phrase=phrase, operator=operator)
    if kind in ("long", "float"):
        number = _number(text)
        if number is None:
            raise QueryError(f"{text!r} is not a number, for the {kind} field {name}")
        return Equals(base, (number, text))
    if kind == "ip":
        try:
            parse_network(text)
        except FunctionError:
            raise QueryError(f"{text!r} is not an IP address or CIDR block, for the ip field {name}") from None
        return Cidr(base, (text,))
    if kind == "boolean":
        lowered = text.lower() if boolean is None else str(boolean).lower()
        if lowered not in ("true", "false"):
            raise QueryError(f"{text!r} is not a boolean, for the boolean field {name}")
        return Equals(base, (lowered == "true", lowered))
    # A term on a date field is the range [value rounded down, value rounded up] (DateFieldType.termQuery).
    earliest = _date_bound(name, text, round_up=False, feature="KQL exact date")
    latest = _date_bound(name, text, round_up=True, feature="KQL exact date")
    instant = Call("epoch_millis", (FieldRef(base),))
    return And((Compare(instant, ">=", Literal(earliest)), Compare(instant, "<=", Literal(latest))))


# -- query_string (wildcard values) ---------------------------------------------------------------------------

_QUERY_STRING_SPACE = frozenset(" \t\n\r\u3000")


def _chunks(parts: tuple[Part, ...]) -> list[tuple[Part, ...]]:
    """The value cut where query_string's parser cuts terms: at unescaped whitespace."""
    chunks: list[list[Part]] = [[]]
    for part in parts:
        if part is STAR:
            chunks[-1].append(STAR)
            continue
        for ch in str(part):
            if ch in _QUERY_STRING_SPACE:
                if chunks[-1]:
                    chunks.append([])
            else:
                chunks[-1].append(ch)
    return [tuple(chunk) for chunk in chunks if chunk]


def _pattern(chunk: tuple[Part, ...]) -> str:
    return "".join("*" if part is STAR else escape_wildcard(str(part)) for part in chunk)


def _query_string(name: str, parts: tuple[Part, ...]) -> Node:
    kind = field_type(name)
    base = base_field(name)
    tests: list[Node] = []
    for chunk in _chunks(parts):
        if chunk == (STAR,):
            tests.append(Exists(base))
            continue
        if not any(part is STAR for part in chunk):
            tests.append(match_test(name, "".join(str(p) for p in chunk), phrase=False))
            continue
        if kind in ("keyword", "wildcard", "unknown"):
            case = Case.INSENSITIVE if is_caseless(name) else Case.SENSITIVE
            tests.append(Wildcard(base, (_pattern(chunk),), case))
        elif kind == "text":
            tests.append(_text_wildcard(base, chunk))
        else:
            raise UnsupportedQuery("KQL wildcard on a non-string field", f"{name} is a {kind} field")
    if not tests:
        return FALSE
    return tests[0] if len(tests) == 1 else Or(tuple(tests))


# -- text fields: the standard analyzer --------------------------------------------------------------------
#
# The standard tokenizer follows Unicode text segmentation (UAX #29 word boundaries): letters, digits and ``_``
# (ExtendNumLet) run together; a MidLetter or MidNumLet character (``.``, ``'``, ``:``, ``’``...) joins two
# letters (WB6/WB7: ``cmd.exe``, ``don't``) and a MidNum or MidNumLet character (``.``, ``,``, ``;``, ``'``...)
# joins two digits (WB11/WB12: ``1.5``, ``1,000``), nothing else: ``python3.exe`` is ``python3`` and ``exe``,
# ``a.1`` is ``a`` and ``1``. Everything else separates words, which are lower-cased. The expressions below
# find a word exactly, not inside a longer one. Not modelled: ideographs and kana (one word per character in
# Lucene), combining marks (WB4) and the 255-character token limit.

_LETTER = r"[^\W\d_]"
_MID_LETTER = "[.'\u2018\u2019\u2024\ufe52\uff07\uff0e:\u00b7\u0387\u055f\u05f4\u2027\ufe13\ufe55\uff1a]"
_MID_NUM = (
    "[.'\u2018\u2019\u2024\ufe52\uff07\uff0e"  # MidNumLet and Single_Quote
    ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b]"  # MidNum
)
_JOINER = rf"(?:(?<={_LETTER}){_MID_LETTER}(?={_LETTER})|(?<=\d){_MID_NUM}(?=\d))"
_WORD = re.compile(rf"\w+(?:{_JOINER}\w+)*")
_BEFORE_WORD = rf"(?<!\w)(?!(?<={_LETTER}{_MID_LETTER}){_LETTER})(?!(?<=\d{_MID_NUM})\d)"
_AFTER_WORD = rf"(?!\w)(?!(?<={_LETTER}){_MID_LETTER}{_LETTER})(?!(?<=\d){_MID_NUM}\d)"
_WORD_CHAR = rf"(?:\w|{_JOINER})"


def analyze(text: str) -> list[str]:
    """The words the standard analyzer makes of ``text`` (lower-cased)."""
    return [word.lower() for word in _WORD.findall(text)]


def _text_match(field: str, text: str, *, phrase: bool, operator: str = "or") -> Node:
    words = analyze(text)
    if not words:
        return FALSE
    if phrase:
        # Consecutive words: each ends where the tokenizer ends a word, so ``a b`` does not match ``a.b``.
        body = rf"{_AFTER_WORD}\W+{_BEFORE_WORD}".join(re.escape(word) for word in words)
        return Regex(field, f"{_BEFORE_WORD}{body}{_AFTER_WORD}", Case.INSENSITIVE, anchored=False)
    tests = tuple(
        Regex(field, f"{_BEFORE_WORD}{re.escape(word)}{_AFTER_WORD}", Case.INSENSITIVE, anchored=False)
        for word in dict.fromkeys(words)
    )
    if len(tests) == 1:
        return tests[0]
    return And(tests) if operator == "and" else Or(tests)


def _text_wildcard(field: str, chunk: tuple[Part, ...]) -> Node:
    """A wildcard term matched against each word of the value: every character it spans stays inside one word,
    so a literal ``.`` matches only where the tokenizer joins (``*.exe`` finds ``cmd.exe``, not
    ``python3.exe``, whose words are ``python3`` and ``exe``)."""
    body = "".join(
        f"{_WORD_CHAR}*" if part is STAR else "".join(_word_char_literal(ch) for ch in str(part).lower())
        for part in chunk
    )
    return Regex(field, f"{_BEFORE_WORD}{body}{_AFTER_WORD}", Case.INSENSITIVE, anchored=False)


def _word_char_literal(ch: str) -> str:
    if re.fullmatch(r"\w", ch):
        return re.escape(ch)
    return f"(?={re.escape(ch)}){_JOINER}"


# -- free text ---------------------------------------------------------------------------------------------


def _free_text(value: KqlValue) -> Node:
    if value.is_lone_wildcard:
        return TRUE
    if value.kind == "null":
        raise UnsupportedQuery("KQL null value", "null as free text")
    if value.has_wildcard:
        patterns = tuple(_pattern(chunk) for chunk in _chunks(value.parts))
        return Keyword(patterns, Case.SENSITIVE) if patterns else FALSE
    return Keyword((escape_wildcard(value.text),), Case.SENSITIVE)


# -- ranges ------------------------------------------------------------------------------------------------


def range_test(name: str, op: CompareOp, text: str, *, time_zone: tzinfo = UTC, epoch_millis: bool = True) -> Node:
    """``name op text`` as Elasticsearch's ``range`` query compares on the field's type.

    For a ``date`` field, ``time_zone`` is the zone of a literal written without one (Elasticsearch's range
    ``time_zone``; KQL sends none: UTC) and ``epoch_millis`` whether a number is read as epoch milliseconds
    (the default date format ``strict_date_optional_time||epoch_millis`` allows it).
    """
    kind = field_type(name)
    base = base_field(name)
    if kind == "date":
        bound = _date_bound(name, text, round_up=op in (">", "<="), time_zone=time_zone, epoch_millis=epoch_millis)
        # Both sides are instants in epoch milliseconds: text order is not time order across zones and
        # fractions, and Elasticsearch keeps milliseconds only.
        return Compare(Call("epoch_millis", (FieldRef(base),)), op, Literal(bound))
    number = _number(text)
    if kind in ("long", "float") or (kind == "unknown" and number is not None):
        if number is None:
            raise QueryError(f"{text!r} is not a number, for the range on {name}")
        literal = Literal(number)
        # A numeric string in the event is the number Elasticsearch would have indexed.
        return Or(
            (
                Compare(FieldRef(base), op, literal),
                Compare(Call("number", (FieldRef(base),)), op, literal),
            )
        )
    if kind in ("keyword", "wildcard", "unknown"):
        case = Case.INSENSITIVE if is_caseless(name) else Case.SENSITIVE
        return Compare(FieldRef(base), op, Literal(text), case)
    raise UnsupportedQuery("KQL range on a non-ordered field", f"{name} is a {kind} field")


_EPOCH_LITERAL = re.compile(r"-?\d{1,18}")


def _date_bound(
    name: str,
    text: str,
    *,
    round_up: bool,
    time_zone: tzinfo = UTC,
    epoch_millis: bool = True,
    feature: str = "KQL date range",
) -> int:
    """A date literal as the epoch milliseconds Elasticsearch compares with (DateFieldType.parseToLong):
    ``strict_date_optional_time`` first, rounded up when ``round_up``, then ``epoch_millis``."""
    stripped = text.strip()
    try:
        millis = iso_date_millis(stripped, zone=time_zone, round_up=round_up)
    except FunctionError as exc:
        raise QueryError(f"{exc}, for {name}") from None
    if millis is not None:
        return millis
    if epoch_millis and _EPOCH_LITERAL.fullmatch(stripped):
        return int(stripped)
    raise UnsupportedQuery(feature, f"{name} against {text!r} (date math or a date format not modelled)")


__all__ = [
    "KqlNode",
    "KqlValue",
    "analyze",
    "keyword_forms",
    "lower_kql",
    "match_test",
    "parse_kql",
    "parse_kql_syntax",
    "range_test",
]
