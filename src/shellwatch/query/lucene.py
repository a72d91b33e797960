"""Lucene query syntax (Kibana's ``lucene`` language), its plain subset, compiled to the IR.

Kibana sends a Lucene rule query to Elasticsearch as ``query_string`` (kbn-es-query ``from_lucene.ts``, with
``analyze_wildcard: true``; default operator OR). The subset compiled here follows Lucene's classic
``QueryParser``: ``field:term``, ``field:"phrase"``, ``field:(a OR b)``, terms with ``*`` and ``?``
wildcards, ``field:/regex/`` (a Lucene regular expression over the whole value), ``field:*`` (exists),
``AND`` ``OR`` ``NOT`` ``&&`` ``||`` ``!`` ``+`` ``-`` and parentheses, backslash escapes, and terms without a
field (any string value of the event, as for KQL free text). The operators are upper-case only: ``or`` is a
term. Clauses combine as the classic parser combines them (``addClause``): ``AND`` makes both neighbours
required, ``NOT``/``-`` prohibits, the rest are optional; optional clauses must match only when no clause is
required, and a query of prohibited clauses alone matches everything else (Elasticsearch adds ``match_all``).

Field semantics are KQL's (:func:`shellwatch.query.kql.match_test`): exact and case-sensitive on ``keyword`` /
``wildcard`` fields, words on text fields, numbers, IPs. Syntax errors as Lucene's (:class:`QueryError`): a
``/`` inside a term starts a regular expression (``a/b`` is the term ``a`` and an unterminated regular
expression), and an operator after a field (``field:-x``) is not a term. Not supported
(:class:`UnsupportedQuery`): ranges
(``[a TO b]``, ``{a TO b}``, ``>5``), boosts ``^``, fuzzy and proximity ``~``, field name patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

from shellwatch.engine.patterns import escape_wildcard
from shellwatch.query.ecs_field_types import base_field, field_type, is_caseless
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import FALSE, TRUE, And, Case, Exists, Keyword, Node, Not, Or, Regex, Wildcard
from shellwatch.query.kql import match_test

_SPACE = frozenset(" \t\r\n\u3000")
# Lucene's QueryParser.jj: a term character is anything but these (``-`` and ``+`` are allowed inside a term, not
# at its start; ``/`` opens a regular expression and ``!`` is NOT, so neither belongs to a term).
_TERM_END = frozenset(' \t\r\n\u3000()[]{}^"~:!/')
_NOT_TERM_START = frozenset("+-")
_MAX_DEPTH = 100


@dataclass(frozen=True, slots=True)
class _Term:
    text: str
    """The term as written, escapes kept (wildcard syntax: ``*``, ``?``, ``\\x``)."""
    kind: str
    """"term", "phrase" or "regex"."""


@dataclass(slots=True)
class _Clause:
    occur: str  # "must", "should", "must_not"
    node: Node


def parse_lucene(text: str) -> Node:
    """Parse a Lucene query string (the subset in the module docstring) into an IR test."""
    parser = _LuceneParser(text)
    node = parser.query(None, 0)
    if parser.pos != len(text):
        raise parser.error("unexpected ')'")
    return node


class _LuceneParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> QueryError:
        before = self.text[: self.pos]
        line = before.count("\n") + 1
        column = self.pos - (before.rfind("\n") + 1) + 1
        return QueryError(message, (line, column))

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def at(self, token: str) -> bool:
        if not self.text.startswith(token, self.pos):
            return False
        end = self.pos + len(token)
        # Word operators need a boundary after them; && || ! do not.
        return not token.isalpha() or end >= len(self.text) or self.text[end] in _SPACE or self.text[end] == "("

    def query(self, field: str | None, depth: int) -> Node:
        if depth > _MAX_DEPTH:
            raise self.error(f"the query nests deeper than {_MAX_DEPTH} levels")
        clauses: list[_Clause] = []
        while True:
            self.skip()
            if self.pos >= len(self.text) or self.text[self.pos] == ")":
                break
            conjunction = None
            for token, kind in (("AND", "and"), ("&&", "and"), ("OR", "or"), ("||", "or")):
                if self.at(token):
                    if not clauses:
                        raise self.error(f"{token} without a clause before it")
                    conjunction = kind
                    self.pos += len(token)
                    self.skip()
                    break
            modifier = None
            if self.at("NOT") or self.at("!"):
                modifier = "not"
                self.pos += 3 if self.text.startswith("NOT", self.pos) else 1
                self.skip()
            elif self.text.startswith(("+", "-"), self.pos):
                modifier = "required" if self.text[self.pos] == "+" else "not"
                self.pos += 1
            node = self.clause(field, depth)
            if conjunction == "and" and clauses and clauses[-1].occur != "must_not":
                clauses[-1].occur = "must"
            if modifier == "not":
                occur = "must_not"
            elif modifier == "required" or conjunction == "and":
                occur = "must"
            else:
                occur = "should"
            clauses.append(_Clause(occur, node))
        if not clauses:
            raise self.error("empty query")
        return _combine(clauses)

    def clause(self, field: str | None, depth: int) -> Node:
        self.skip()
        if self.pos >= len(self.text):
            raise self.error("a clause was expected")
        if self.text[self.pos] == "(":
            self.pos += 1
            node = self.query(field, depth + 1)
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.error("')' expected")
            self.pos += 1
            self.no_suffix()
            return node
        if self.text[self.pos] in "[{":
            raise UnsupportedQuery("Lucene range query")
        term = self.term()
        self.skip()
        if term.kind == "term" and self.pos < len(self.text) and self.text[self.pos] == ":" and field is None:
            self.pos += 1
            name = _unescape(term.text)
            if "*" in name or "?" in name:
                raise UnsupportedQuery("Lucene field name pattern", name)
            self.skip()
            if self.text.startswith(("[", "{", ">", "<"), self.pos):
                raise UnsupportedQuery("Lucene range query", name)
            return self.clause(name, depth)
        self.no_suffix()
        return _lower(field, term)

    def no_suffix(self) -> None:
        if self.pos < len(self.text) and self.text[self.pos] in "^~":
            raise UnsupportedQuery("Lucene boost or fuzzy operator", self.text[self.pos])

    def term(self) -> _Term:
        text = self.text
        start = self.pos
        if text[start] == '"':
            end = start + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise self.error("unterminated phrase")
            self.pos = end + 1
            return _Term(text[start + 1 : end], "phrase")
        if text[start] == "/":
            end = start + 1
            while end < len(text) and text[end] != "/":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise self.error("unterminated regular expression")
            self.pos = end + 1
            return _Term(text[start + 1 : end], "regex")
        if text[start] in _NOT_TERM_START:
            raise self.error(f"a term cannot start with {text[start]!r} (an operator belongs before the field)")
        end = start
        while end < len(text) and text[end] not in _TERM_END:
            end += 2 if text[end] == "\\" else 1
        if end == start:
            raise self.error(f"unexpected {text[start]!r}")
        self.pos = min(end, len(text))
        return _Term(text[start : self.pos], "term")


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _has_wildcard(text: str) -> bool:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in "*?":
            return True
        i += 1
    return False


def _lower(field: str | None, term: _Term) -> Node:
    if field is None:
        if term.kind == "regex":
            raise UnsupportedQuery("Lucene regular expression without a field")
        if term.kind == "term" and term.text == "*":
            return TRUE
        pattern = (
            term.text if term.kind == "term" and _has_wildcard(term.text) else escape_wildcard(_unescape(term.text))
        )
        return Keyword((pattern,), Case.SENSITIVE)
    kind = field_type(field)
    case = Case.INSENSITIVE if is_caseless(field) else Case.SENSITIVE
    if term.kind == "regex":
        if kind not in ("keyword", "wildcard", "unknown"):
            raise UnsupportedQuery(f"Lucene regular expression on a {kind} field", field)
        return Regex(base_field(field), term.text, case, anchored=True, dialect="lucene")
    if term.kind == "term" and term.text == "*":
        return Exists(base_field(field))
    if term.kind == "term" and _has_wildcard(term.text):
        if kind not in ("keyword", "wildcard", "unknown"):
            raise UnsupportedQuery(f"Lucene wildcard on a {kind} field", field)
        return Wildcard(base_field(field), (term.text,), case)
    return match_test(field, _unescape(term.text), phrase=term.kind == "phrase")


def _combine(clauses: list[_Clause]) -> Node:
    if len(clauses) == 1 and clauses[0].occur != "must_not":
        return clauses[0].node
    required = [c.node for c in clauses if c.occur == "must"]
    optional = [c.node for c in clauses if c.occur == "should"]
    excluded = [Not(c.node) for c in clauses if c.occur == "must_not"]
    tests: list[Node] = list(required)
    if not required and optional:
        tests.append(optional[0] if len(optional) == 1 else Or(tuple(optional)))
    tests.extend(excluded)
    if not tests:
        return FALSE
    return tests[0] if len(tests) == 1 else And(tuple(tests))
