"""The query IR: the one small tree that every rule language compiles to.

EQL and Sigma (and later KQL) meet here with their semantics already decided by their front ends: which
comparisons ignore case, what a wildcard means, how a missing field behaves. The engine compilers read only this
tree, so a language-specific node never reaches them.

Conventions every node follows (the engine implements exactly these, the front ends rely on them):

* A field is named by its dotted ECS path (``process.parent.name``); an event is a flat mapping from such paths
  to values (see :mod:`shellwatch.ecs`). A field is *missing* when the key is absent, its value is ``None``, or it
  is an empty list.
* Multi-valued fields: a value may be a list. Every field test (``Equals``, ``Wildcard``, ``Regex``, ``Cidr``,
  ``Compare`` against a literal) holds when *any* element satisfies it (Elasticsearch's any-of semantics).
* Logic is two-valued: a test on a missing field is false, and ``Not`` simply inverts. A front end whose language
  treats null differently (three-valued logic) encodes that explicitly, e.g. ``And(Exists(f), Not(...))``.
* ``Case.INSENSITIVE`` compares both sides lower-cased (Elasticsearch's ``case_insensitive`` option, Sigma's
  default); ``Case.SENSITIVE`` compares exactly.
* Wildcard patterns use ``*`` (any run of characters, possibly empty) and ``?`` (exactly one character), anchored
  at both ends; a backslash makes the next character literal (``\\*`` is a star, ``\\\\`` a backslash).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal as TypingLiteral

Scalar = str | int | float | bool | None
"""A literal value in a query."""


class Case(Enum):
    """How a string comparison treats letter case."""

    SENSITIVE = "sensitive"
    INSENSITIVE = "insensitive"


# ---------------------------------------------------------------------------------------------------------------
# Value expressions: what a comparison or a function call works on.


@dataclass(frozen=True, slots=True)
class FieldRef:
    """The value(s) of an event field, by dotted ECS path."""

    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant."""

    value: Scalar


@dataclass(frozen=True, slots=True)
class Call:
    """A function applied to values (EQL's ``length``, ``substring``, ``concat``, ``add``, ``startsWith``...).

    ``name`` is the canonical lower-case function name; ``case`` carries the ``~`` of EQL's case-insensitive
    function variants. A call may be used as a value (inside ``Compare``) or as a test (inside ``Predicate``).
    """

    name: str
    args: tuple[Value, ...]
    case: Case = Case.SENSITIVE


Value = FieldRef | Literal | Call


# ---------------------------------------------------------------------------------------------------------------
# Tests: nodes that hold or not for an event.


@dataclass(frozen=True, slots=True)
class And:
    """All children hold (an empty And holds)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child holds (an empty Or does not)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not hold."""

    child: Node


@dataclass(frozen=True, slots=True)
class Const:
    """Always true or always false."""

    value: bool


@dataclass(frozen=True, slots=True)
class Exists:
    """The field is present with at least one non-null value."""

    field: str


@dataclass(frozen=True, slots=True)
class Equals:
    """The field equals one of ``values`` (any value of a multi-valued field).

    Strings compare as strings under ``case``; numbers compare numerically (``1 == 1.0``); booleans as booleans.
    A string never equals a number here: a front end that wants coercion converts its literals itself.
    """

    field: str
    values: tuple[Scalar, ...]
    case: Case = Case.SENSITIVE


@dataclass(frozen=True, slots=True)
class Wildcard:
    """The field's string value matches one of the anchored wildcard ``patterns`` (see module docstring)."""

    field: str
    patterns: tuple[str, ...]
    case: Case = Case.SENSITIVE


@dataclass(frozen=True, slots=True)
class Regex:
    """The field's string value matches a regular expression.

    ``anchored`` True means the whole value must match (Lucene regexp, as EQL's ``regex`` uses); False means a
    match anywhere (Sigma's ``re``). ``dialect`` says whose syntax the pattern is written in: "python" patterns
    compile with :mod:`re` as they are; "lucene" patterns are translated first.
    """

    field: str
    pattern: str
    case: Case = Case.SENSITIVE
    anchored: bool = True
    multiline: bool = False
    dotall: bool = False
    dialect: TypingLiteral["python", "lucene"] = "python"


@dataclass(frozen=True, slots=True)
class Cidr:
    """The field holds an IP address inside one of ``networks`` (CIDR notation, IPv4 or IPv6)."""

    field: str
    networks: tuple[str, ...]


CompareOp = TypingLiteral["==", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Compare:
    """A comparison between two values: field to literal, field to field, function result to literal...

    Ordering compares numbers numerically and strings lexicographically (after lower-casing both under
    ``Case.INSENSITIVE``); a missing operand or a type mismatch makes the comparison false. With a multi-valued
    field it holds when any value satisfies it.
    """

    left: Value
    op: CompareOp
    right: Value
    case: Case = Case.SENSITIVE


@dataclass(frozen=True, slots=True)
class Predicate:
    """A boolean function call used as a test (``startsWith(...)``, ``cidrMatch(...)``...); null is false."""

    call: Call


@dataclass(frozen=True, slots=True)
class Keyword:
    """Field-less search (Sigma keywords): any string value anywhere in the event matches one of ``patterns``."""

    patterns: tuple[str, ...]
    case: Case = Case.INSENSITIVE


Node = And | Or | Not | Const | Exists | Equals | Wildcard | Regex | Cidr | Compare | Predicate | Keyword
"""Any test of the IR."""

TRUE = Const(True)
FALSE = Const(False)


def fields_of(node: Node) -> frozenset[str]:
    """Every field path a test reads (for planning, field-level caching and readable output)."""
    found: set[str] = set()

    def value(v: Value) -> None:
        if isinstance(v, FieldRef):
            found.add(v.name)
        elif isinstance(v, Call):
            for arg in v.args:
                value(arg)

    def walk(n: Node) -> None:
        if isinstance(n, And | Or):
            for child in n.children:
                walk(child)
        elif isinstance(n, Not):
            walk(n.child)
        elif isinstance(n, Exists | Equals | Wildcard | Regex | Cidr):
            found.add(n.field)
        elif isinstance(n, Compare):
            value(n.left)
            value(n.right)
        elif isinstance(n, Predicate):
            value(n.call)

    walk(node)
    return frozenset(found)
