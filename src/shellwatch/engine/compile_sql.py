"""Compiles an IR test into a DuckDB SQL boolean expression over ECS documents read as JSON: the columnar path.

The documents are NDJSON lines. Each field a rule reads is taken out of the line by ``json_transform`` into a nested
STRUCT whose leaves have DuckDB's ``JSON`` type, so a value keeps its JSON type (a string never equals a number,
as the IR requires) and a list stays a list. :class:`SqlFields` collects the fields every compiled rule reads and
gives the STRUCT schema; :func:`compile_sql` turns one IR test into SQL over those leaves.

The SQL decides a document exactly as :mod:`shellwatch.engine.compile_python` decides its flattened event
(:func:`shellwatch.ecs.flatten`) when the document is *regular* for the fields read; :meth:`SqlFields.irregular_sql`
is a cheap, deliberately over-eager test for the documents that may not be, which the caller decides in Python
instead. A document is irregular when, for the fields the rules read, its shape leaves the plain nested reading:

* a key written dotted (``"process.name"``) or an array of objects on the way to a field (flattening merges those);
* an array holding objects where a field's value should be;
* text outside ASCII in a field read, or a ``\\u`` escape anywhere in the line (case folding, one-character
  wildcards and regular expressions then depend on Unicode tables that DuckDB and Python need not share; an escaped
  key could hide a dotted key);
* not a JSON object at all, or not valid JSON.

Semantics (the IR's, :mod:`shellwatch.query.ir`): a field is missing when absent, null, an object (flattening
keeps only its leaves) or an array without a non-null element; a test on a missing field is false; any element
of an array may satisfy a test. Every generated test is TRUE or FALSE, never NULL, so ``NOT`` is two-valued.

Supported: ``And``/``Or``/``Not``/``Const``, ``Exists``, ``Equals`` (strings under either case, numbers,
booleans), ``Wildcard`` (``LIKE`` with an escape character), ``Regex`` (RE2, for patterns whose meaning RE2 and
Python share: Lucene patterns translated by :mod:`shellwatch.engine.patterns`, Python patterns without class
escapes, anchors or groups with options), ``Compare`` of a field with a literal. Anything else (``Cidr``,
``Predicate``, ``Keyword``, calls, ``@timestamp``, which the normalizer rewrites) raises
:class:`~shellwatch.query.errors.UnsupportedQuery` naming the construct: that rule stays on the streaming path.

Security: attacker data only ever reaches DuckDB as the rows it reads. Rule-derived text enters the SQL through
:func:`sql_string` (a standard SQL string literal, quotes doubled, NUL refused) or :func:`sql_identifier`
(double-quoted, quotes doubled), never spliced raw.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Final

import duckdb

from shellwatch.engine.literals import ASCII_LOWERING_EXCEPTIONS, Piece
from shellwatch.engine.patterns import PatternError, lucene_to_python, parse_wildcard
from shellwatch.query.errors import UnsupportedQuery
from shellwatch.query.ir import (
    And,
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
    Scalar,
    Wildcard,
)

DOCUMENT: Final = "s"
"""The SQL name of the STRUCT that ``json_transform`` makes of one line."""
LINE: Final = "j"
"""The SQL name of the line's text."""

# Fields the normalizer of ECS documents rewrites or completes: the SQL reads them the way it does.
_TIMESTAMP: Final = "@timestamp"
_COMPLETED_NAMES: Final = {"process.name": "process.executable", "process.parent.name": "process.parent.executable"}

_LIKE_ESCAPE: Final = "\\"
_NUMERIC_TYPES: Final = ("BIGINT", "UBIGINT", "DOUBLE")
_ESCAPE_RE2: Final = r"(?:^|[^\\])(?:\\\\)*\\{}"
"""RE2 for a JSON escape, a backslash and the letter (or class) this is formatted with, after an even run of
backslashes: a path's escaped backslash before a ``u`` (``c:\\\\users`` in the JSON text) is not one."""


def sql_string(text: str) -> str:
    """A SQL string literal holding ``text`` exactly (DuckDB's standard strings have no backslash escapes)."""
    if "\x00" in text:
        raise UnsupportedQuery("NUL character in a literal", repr(text))
    return "'" + text.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier for a JSON key."""
    if "\x00" in name:
        raise UnsupportedQuery("NUL character in a field name", repr(name))
    return '"' + name.replace('"', '""') + '"'


def _re2_literal(text: str) -> str:
    """RE2 source matching ``text`` literally (every non-alphanumeric character as a hex escape)."""
    return "".join(ch if ch.isascii() and ch.isalnum() else f"\\x{{{ord(ch):x}}}" for ch in text)


class SqlFields:
    """The fields compiled rules read, laid out as the nested STRUCT schema for ``json_transform``.

    DuckDB matches STRUCT keys without regard to case, so two fields whose paths differ only in case cannot both be
    read: the second one raises :class:`UnsupportedQuery`.
    """

    def __init__(self) -> None:
        self._tree: dict[str, object] = {}
        self._folded: dict[tuple[str, ...], str] = {}
        self.fields: set[str] = set()

    def register(self, path: str) -> None:
        """Make ``path`` readable (idempotent)."""
        if path in self.fields:
            return
        if path == _TIMESTAMP:
            raise UnsupportedQuery("@timestamp", "the normalizer rewrites it as ISO 8601 UTC")
        parts = path.split(".")
        if any(not part for part in parts):
            raise UnsupportedQuery("empty key in a field path", path)
        # A path that is a prefix of another (``a`` and ``a.b``) would need ``a`` both as a leaf and as a STRUCT.
        for other in self.fields:
            if other.startswith(path + ".") or path.startswith(other + "."):
                raise UnsupportedQuery("field that is an object of another field read", f"{path} / {other}")
        for depth in range(1, len(parts) + 1):
            key = tuple(part.lower() for part in parts[:depth])
            spelled = ".".join(parts[:depth])
            known = self._folded.setdefault(key, spelled)
            if known != spelled:
                raise UnsupportedQuery("field names differing only in case", f"{known} / {spelled}")
        node = self._tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict)
            node = child
        node[parts[-1]] = None
        self.fields.add(path)
        completed_from = _COMPLETED_NAMES.get(path)
        if completed_from is not None:
            self.register(completed_from)

    def schema_json(self) -> str:
        """The ``json_transform`` structure: nested objects, leaves ``"JSON"``."""

        def render(node: dict[str, object]) -> dict[str, object]:
            return {key: render(child) if isinstance(child, dict) else "JSON" for key, child in node.items()}

        return json.dumps(render(self._tree), ensure_ascii=True)

    def raw(self, path: str) -> str:
        """SQL for the JSON value at ``path`` as written (NULL when absent or null)."""
        return DOCUMENT + "".join("." + sql_identifier(part) for part in path.split("."))

    def value(self, path: str) -> str:
        """SQL for the field's JSON value as the normalizer leaves it (process names completed from the path)."""
        raw = self.raw(path)
        source = _COMPLETED_NAMES.get(path)
        if source is None:
            return raw
        exe = self.raw(source)
        # The normalizer's path_basename: after the last backslash or slash; completed only when that is not empty.
        base = f"regexp_extract({exe} ->> '$', '[^\\\\/]*$')"
        completed = f"CASE WHEN json_type({exe}) = 'VARCHAR' AND {base} <> '' THEN to_json({base}) END"
        return f"coalesce({raw}, {completed})"

    def irregular_sql(self) -> str:
        """A test that holds for every document the compiled SQL might not decide exactly (and for some more)."""
        tests = [
            f"{LINE} IS NULL",
            f"NOT json_valid({LINE})",
            f"json_type({LINE}) <> 'OBJECT'",
        ]
        # One RE2 scan of the line for every text that may make it irregular (one pass is several times faster
        # than a substring search each): a \\u escape, a marker of another family (the batch shape too), a dotted
        # key or an array on the way to a field read.
        alternatives = [_ESCAPE_RE2.format("u"), *(_re2_literal(marker) for marker in OTHER_FAMILY_MARKERS)]
        branches: set[str] = set()
        for path in sorted(self.fields):
            branches.update(path.split(".")[:-1])
        if branches:
            keys = "|".join(_re2_literal(b) for b in sorted(branches))
            alternatives.append('"(?:' + keys + r')(?:\.|"\s*:\s*\[)')
        tests.append(f"regexp_matches({LINE}, {sql_string('|'.join(alternatives))})")
        for path in sorted(self.fields):
            raw = self.raw(path)
            text = f"CAST({raw} AS VARCHAR)"
            tests.append(f"coalesce(json_type({raw}) = 'ARRAY' AND contains({text}, '{{'), false)")
            tests.append(f"coalesce(strlen({text}) <> length({text}), false)")
        for name, source in _COMPLETED_NAMES.items():
            if name in self.fields:
                # An object there is flattened away, so the normalizer completes the name; the SQL would not.
                tests.append(f"coalesce(json_type({self.raw(name)}) = 'OBJECT', false)")
                # A name written as null is kept null by the normalizer; the SQL cannot tell it from an absent one.
                tests.append(
                    f"coalesce({self.raw(name)} IS NULL AND json_type({self.raw(source)}) = 'VARCHAR' "
                    f"AND regexp_matches({LINE}, '\"name\"\\s*:\\s*null'), false)"
                )
        return "(" + " OR ".join(tests) + ")"


# Substrings of a line that may belong to a family whose normalizer maps instead of passing through (see
# shellwatch.normalize.dispatch): Windows event log documents, vendor exports, raw Windows events, OTRF, batches.
OTHER_FAMILY_MARKERS: Final = (
    '"winlog',
    "winlogbeat",
    '"event_simpleName"',
    '"meta',
    "AdvancedHunting-",
    '"DeviceName"',
    '"event_subtype_full"',
    "endgame",
    '"EventID"',
    '"event_id"',
    '"Event"',
    '"records"',
    '"SourceName"',
)


def json_text(piece: str) -> str:
    """How a piece (printable ASCII) is written inside a JSON string: ``"`` and ``\\`` escaped."""
    return json.dumps(piece, ensure_ascii=True)[1:-1]


def line_candidate_sql(groups: Sequence[frozenset[Piece] | None], line: str = LINE) -> str:
    """A test of a line's raw text (the SQL name ``line``) that holds for every line on which one of the rules
    might match, and for every line the compiled SQL may not decide exactly: one RE2 scan, before any JSON work.

    ``groups`` holds one group of each rule's :class:`~shellwatch.engine.literals.Requirement` (None: the rule
    requires nothing, so every line is a candidate): its event matches only if a piece of the group occurs in
    its field's value, ASCII-lower-cased. Why a line holding none of them cannot match: the value occurs in the
    line JSON-escaped, and JSON escaping maps characters one by one (``"`` and ``\\`` to two characters, other
    printable ASCII to itself), so the line holds the escaped piece up to ASCII case, unless it writes a character
    as ``\\u`` or ``\\/``; both texts make a line a candidate. So do the two non-ASCII characters whose lower
    case holds an ASCII letter (:data:`~shellwatch.engine.literals.ASCII_LOWERING_EXCEPTIONS`) and every marker
    of a family whose normalizer maps values instead of passing the document through
    (:data:`OTHER_FAMILY_MARKERS`): the value a rule reads may then not be written in the line.
    """
    if any(group is None for group in groups):
        return "true"
    pieces = {piece.text for group in groups if group is not None for piece in group}
    escapes = [_ESCAPE_RE2.format("[u/]"), *(_re2_literal(ch) for ch in ASCII_LOWERING_EXCEPTIONS)]
    alternatives = [*escapes, *(_re2_literal(marker) for marker in OTHER_FAMILY_MARKERS)]
    if pieces:
        escaped = sorted(_re2_literal(json_text(piece)) for piece in pieces)
        # RE2's (?i) also folds a few non-ASCII letters onto ASCII ones: more candidates, never fewer.
        alternatives.append("(?i:" + "|".join(escaped) + ")")
    return f"regexp_matches({line}, {sql_string('|'.join(alternatives))})"


def fields_needed(node: Node) -> Iterable[str]:
    """The fields ``node`` reads, raising :class:`UnsupportedQuery` for a construct :func:`compile_sql` refuses."""
    return _Compiler(None).collect(node)


def compile_sql(node: Node, fields: SqlFields) -> str:
    """A DuckDB boolean expression (never NULL) deciding ``node`` for a regular document (see the module docstring).

    Registers the fields it reads in ``fields``; raises :class:`UnsupportedQuery` for what it cannot express.
    """
    compiler = _Compiler(fields)
    for path in compiler.collect(node):
        fields.register(path)
    return compiler.test(node)


class _Compiler:
    def __init__(self, fields: SqlFields | None) -> None:
        self.fields = fields

    # -- what a node reads -----------------------------------------------------------------------------------

    def collect(self, node: Node) -> list[str]:
        found: list[str] = []
        self._walk(node, found)
        return found

    def _walk(self, node: Node, found: list[str]) -> None:
        if isinstance(node, And | Or):
            for child in node.children:
                self._walk(child, found)
        elif isinstance(node, Not):
            self._walk(node.child, found)
        elif isinstance(node, Const):
            return
        elif isinstance(node, Exists | Equals | Wildcard | Regex):
            found.append(node.field)
        elif isinstance(node, Compare):
            field, _, _ = _field_and_literal(node)
            found.append(field)
        elif isinstance(node, Cidr):
            raise UnsupportedQuery("Cidr", "CIDR matching runs on the streaming path")
        elif isinstance(node, Predicate):
            raise UnsupportedQuery("Predicate", f"function {node.call.name}")
        elif isinstance(node, Keyword):
            raise UnsupportedQuery("Keyword", "field-less search reads every value of the event")
        else:
            raise UnsupportedQuery(type(node).__name__)

    # -- tests -----------------------------------------------------------------------------------------------

    def test(self, node: Node) -> str:
        if isinstance(node, Const):
            return "true" if node.value else "false"
        if isinstance(node, And):
            return "(" + " AND ".join(self.test(c) for c in node.children) + ")" if node.children else "true"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.test(c) for c in node.children) + ")" if node.children else "false"
        if isinstance(node, Not):
            return f"(NOT {self.test(node.child)})"
        if isinstance(node, Exists):
            return self._any_of(node.field, _Scalars(string=lambda s: "true", other="true"))
        if isinstance(node, Equals):
            return self._equals(node)
        if isinstance(node, Wildcard):
            return self._wildcard(node)
        if isinstance(node, Regex):
            return self._regex(node)
        if isinstance(node, Compare):
            return self._compare(node)
        raise UnsupportedQuery(type(node).__name__)

    def _any_of(self, path: str, scalars: _Scalars) -> str:
        """The test holds for the field's value or, for an array, for one of its elements."""
        assert self.fields is not None
        value = self.fields.value(path)
        return (
            f"coalesce(CASE json_type({value}) WHEN 'ARRAY' THEN "
            f"list_bool_or(list_transform(json_extract({value}, '$[*]'), lambda e: {scalars.render('e')})) "
            f"ELSE {scalars.render(value)} END, false)"
        )

    def _equals(self, node: Equals) -> str:
        insensitive = node.case is Case.INSENSITIVE
        strings: list[str] = []
        integers: list[int] = []
        floats: list[float] = []
        booleans: list[bool] = []
        for value in node.values:
            if isinstance(value, str):
                strings.append(value.lower() if insensitive else value)
            elif isinstance(value, bool):
                booleans.append(value)
            elif isinstance(value, int):
                integers.append(value)
            elif isinstance(value, float):
                if math.isnan(value):
                    continue  # NaN equals nothing
                if math.isinf(value):
                    raise UnsupportedQuery("infinite number in Equals", repr(value))
                floats.append(value)
        if not (strings or integers or floats or booleans):
            return "false"
        for s in strings:
            if not s.isascii():
                raise UnsupportedQuery("non-ASCII literal", repr(s))

        def on_string(s: str) -> str:
            if not strings:
                return "false"
            text = f"lower({s})" if insensitive else s
            return f"{text} IN ({', '.join(sql_string(v) for v in sorted(set(strings)))})"

        return self._any_of(
            node.field, _Scalars(string=on_string, numbers=_number_in(integers, floats), booleans=booleans)
        )

    def _wildcard(self, node: Wildcard) -> str:
        insensitive = node.case is Case.INSENSITIVE
        likes: list[str] = []
        for raw in node.patterns:
            if not raw.isascii():
                raise UnsupportedQuery("non-ASCII wildcard pattern", repr(raw))
            likes.append(_like_pattern(raw.lower() if insensitive else raw))

        def on_string(s: str) -> str:
            text = f"lower({s})" if insensitive else s
            if not likes:
                return "false"
            return "(" + " OR ".join(f"{text} LIKE {sql_string(p)} ESCAPE '\\'" for p in likes) + ")"

        return self._any_of(node.field, _Scalars(string=on_string))

    def _regex(self, node: Regex) -> str:
        source = _checked_re2(_re2_source(node))
        function = "regexp_full_match" if node.anchored else "regexp_matches"
        pattern = sql_string(source)
        return self._any_of(node.field, _Scalars(string=lambda s: f"{function}({s}, {pattern})"))

    def _compare(self, node: Compare) -> str:
        field, op, literal = _field_and_literal(node)
        if literal is None or op not in ("==", "!=", "<", "<=", ">", ">="):
            return "false"
        sql_op = "=" if op == "==" else "<>" if op == "!=" else op
        if isinstance(literal, str):
            if not literal.isascii():
                raise UnsupportedQuery("non-ASCII literal", repr(literal))
            insensitive = node.case is Case.INSENSITIVE
            right = sql_string(literal.lower() if insensitive else literal)

            def on_string(s: str) -> str:
                # Python orders str by code point; DuckDB's default collation compares bytes, the same on ASCII.
                return f"({'lower(' + s + ')' if insensitive else s} {sql_op} {right})"

            return self._any_of(field, _Scalars(string=on_string))
        if isinstance(literal, bool):
            if op not in ("==", "!="):
                return "false"
            return self._any_of(field, _Scalars(string=lambda s: "false", boolean_op=(sql_op, literal)))
        if isinstance(literal, float) and not math.isfinite(literal):
            raise UnsupportedQuery("non-finite number in Compare", repr(literal))
        return self._any_of(field, _Scalars(string=lambda s: "false", number_op=(sql_op, literal)))


def _field_and_literal(node: Compare) -> tuple[str, str, Scalar]:
    """The field, operator (as seen from the field) and literal of a field-versus-literal comparison."""
    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
    if isinstance(node.left, FieldRef) and isinstance(node.right, Literal):
        return node.left.name, node.op, node.right.value
    if isinstance(node.left, Literal) and isinstance(node.right, FieldRef):
        return node.right.name, flipped[node.op], node.left.value
    raise UnsupportedQuery("Compare", "only a field against a literal runs columnar")


class _Scalars:
    """How one scalar JSON value (the field's value or one array element) is tested, by its JSON type."""

    def __init__(
        self,
        *,
        string: Callable[[str], str],
        numbers: tuple[list[int], list[float]] | None = None,
        booleans: Sequence[bool] = (),
        other: str = "false",
        number_op: tuple[str, int | float] | None = None,
        boolean_op: tuple[str, bool] | None = None,
    ) -> None:
        self.string = string
        self.numbers = numbers
        self.booleans = tuple(booleans)
        self.other = other
        self.number_op = number_op
        self.boolean_op = boolean_op

    def render(self, x: str) -> str:
        if self.other != "false":
            # Exists: any non-null scalar, or a nested array (flattening keeps it as a value).
            return f"(json_type({x}) NOT IN ('NULL', 'OBJECT'))"
        text = self.string(f"({x} ->> '$')")
        branches = [f"WHEN 'VARCHAR' THEN {text}"]
        if self.numbers is not None and (self.numbers[0] or self.numbers[1]):
            integers, doubles = self.numbers
            tests: list[str] = []
            if integers:
                listed = ", ".join(str(i) for i in sorted(set(integers)))
                tests.append(f"(json_type({x}) <> 'DOUBLE' AND TRY_CAST({x} AS HUGEINT) IN ({listed}))")
            if doubles:
                listed = ", ".join(_double(f) for f in sorted(set(doubles)))
                tests.append(f"(json_type({x}) = 'DOUBLE' AND CAST({x} AS DOUBLE) IN ({listed}))")
            condition = " OR ".join(tests)
            branches.extend(f"WHEN '{t}' THEN ({condition})" for t in _NUMERIC_TYPES)
        if self.number_op is not None:
            op, literal = self.number_op
            if isinstance(literal, int):
                exact = f"(json_type({x}) <> 'DOUBLE' AND TRY_CAST({x} AS HUGEINT) {op} {literal})"
                approx = f"(json_type({x}) = 'DOUBLE' AND CAST({x} AS DOUBLE) {op} {_double(literal)})"
                condition = f"({exact} OR {approx})"
            else:
                condition = f"(CAST({x} AS DOUBLE) {op} {_double(literal)})"
            branches.extend(f"WHEN '{t}' THEN {condition}" for t in _NUMERIC_TYPES)
        if self.booleans:
            values = ", ".join("true" if b else "false" for b in sorted(set(self.booleans)))
            branches.append(f"WHEN 'BOOLEAN' THEN (CAST({x} AS BOOLEAN) IN ({values}))")
        if self.boolean_op is not None:
            op, flag = self.boolean_op
            branches.append(f"WHEN 'BOOLEAN' THEN (CAST({x} AS BOOLEAN) {op} {'true' if flag else 'false'})")
        return f"coalesce(CASE json_type({x}) {' '.join(branches)} ELSE false END, false)"


def _double(value: float) -> str:
    if isinstance(value, int) and abs(value) > 2**53:
        raise UnsupportedQuery("integer beyond double precision", str(value))
    return f"CAST({float(value)!r} AS DOUBLE)"


def _number_in(integers: list[int], floats: list[float]) -> tuple[list[int], list[float]]:
    """The literals a JSON integer is compared with exactly, and those a JSON float is (1 == 1.0 in the IR)."""
    exact = list(integers) + [int(f) for f in floats if f.is_integer()]
    for i in integers:
        if abs(i) > 2**53:
            raise UnsupportedQuery("integer beyond double precision", str(i))
    return exact, floats + [float(i) for i in integers]


def _like_pattern(pattern: str) -> str:
    """The IR wildcard pattern as a LIKE pattern with ``\\`` as its escape character."""
    out: list[str] = []
    for part in parse_wildcard(pattern):
        if isinstance(part, str):
            out.append("".join(_LIKE_ESCAPE + ch if ch in "%_\\" else ch for ch in part))
        elif part.kind == "*":
            out.append("%")
        else:
            out.append("_")
    return "".join(out)


# Python-syntax pattern pieces whose meaning differs in RE2 or that RE2 lacks: class escapes (Python's are
# Unicode-aware and its \s includes \x1c-\x1f), anchors ($ also matches before a final newline), groups with
# options, look-around and back-references, possessive and atomic forms.
_PYTHON_ONLY = re.compile(r"\\[A-Za-z0-9]|\$|\(\?|\{,|\[:|[*+?}]\+")


def _re2_source(node: Regex) -> str:
    if not node.pattern.isascii():
        raise UnsupportedQuery("non-ASCII regular expression", repr(node.pattern))
    insensitive = node.case is Case.INSENSITIVE
    if node.dialect == "lucene":
        try:
            body = lucene_to_python(node.pattern, insensitive=insensitive)
        except PatternError as exc:
            raise UnsupportedQuery("Regex", str(exc)) from None
        if "(?!)" in body:
            raise UnsupportedQuery("Regex", "the empty language # has no RE2 form")
        return "(?s)" + body
    if _PYTHON_ONLY.search(node.pattern):
        raise UnsupportedQuery("Regex", f"construct whose meaning RE2 does not share in {node.pattern!r}")
    flags = ("i" if insensitive else "") + ("m" if node.multiline else "") + ("s" if node.dotall else "")
    return (f"(?{flags})" if flags else "") + node.pattern


def _checked_re2(source: str) -> str:
    """``source`` when RE2 (DuckDB's regex engine) compiles it; UnsupportedQuery otherwise."""
    try:
        _re2_checker().execute("SELECT regexp_matches('', ?)", [source]).fetchall()
    except duckdb.Error as exc:
        raise UnsupportedQuery("Regex", f"RE2 cannot compile {source!r}: {exc}") from None
    return source


@lru_cache(maxsize=1)
def _re2_checker() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:")
