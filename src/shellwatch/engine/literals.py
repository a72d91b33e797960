"""What text a rule needs: the literal strings some field value must contain for the rule to possibly match.

A rule such as ``process.parent.name : ("w3wp.exe", "httpd.exe") and process.name : "cmd.exe"`` cannot match an
event unless one of the parent names occurs in the event's values, and ``cmd.exe`` does too. A
:class:`Requirement` writes that down as groups of *pieces*: the rule can match only if, for every group, some
piece occurs in the value of its field. Callers use it to rule events out cheaply, before the full evaluation
(the raw-text triage of EVTX records, :mod:`shellwatch.triage`); it is a necessary condition, never a sufficient
one.

Pieces are ASCII and lower case, with no control character, and are compared with the value ASCII-lower-cased.
This makes a piece hold under both of the IR's case modes:

* ``Case.SENSITIVE``: a value containing a literal contains each ASCII run of it, and ASCII lower-casing acts
  character by character, so the lowered value contains the lowered run.
* ``Case.INSENSITIVE`` compares ``value.lower()`` with ``literal.lower()`` (:mod:`shellwatch.query.ir`). Python's
  ``str.lower`` maps a non-ASCII character to text with an ASCII letter in exactly two cases, U+0130 (İ, to
  ``i̇``) and U+212A (the Kelvin sign, to ``k``); everywhere else it maps ASCII to ASCII the way ASCII
  lower-casing does and non-ASCII to non-ASCII. So, for a value holding neither of :data:`ASCII_LOWERING_EXCEPTIONS`,
  an ASCII run of ``literal.lower()`` inside ``value.lower()`` sits over ASCII characters of the value that lower to
  it one for one. A caller must check for those two characters itself and decide nothing when one is there.

Pieces are cut at control characters so that a value's line breaks, which normalizers rewrite (CRLF to LF), never
fall inside one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shellwatch.engine.patterns import parse_wildcard
from shellwatch.query.ir import And, Case, Const, Equals, Node, Or, Wildcard

ASCII_LOWERING_EXCEPTIONS = ("\u0130", "\u212a")
"""The non-ASCII characters whose ``str.lower()`` holds an ASCII character (checked over every code point by the
tests): where a value holds one, an ASCII-lowered search may miss what a case-insensitive comparison finds."""

MAX_GROUPS = 3
"""Groups kept per requirement: the most selective; more cost a search each and rarely rule out more."""


@dataclass(frozen=True, slots=True)
class Piece:
    """A string the value of ``field`` must contain (ASCII, lower case, no control character)."""

    field: str
    text: str


@dataclass(frozen=True, slots=True)
class Requirement:
    """For each group, at least one of its pieces occurs in its field's value, or the rule cannot match.

    An empty group can never be satisfied (the rule never matches); an empty requirement (no group) is not
    returned: :func:`requirement` says None when it finds nothing to require.
    """

    groups: tuple[frozenset[Piece], ...]


FieldFilter = Callable[[str], bool]
"""Whether pieces may be required of a field (the caller can search its values)."""


def requirement(node: Node, searchable: FieldFilter) -> Requirement | None:
    """The pieces an event must hold for ``node`` to match, on the fields ``searchable`` admits; None when no
    piece is required."""
    groups = _groups(node, searchable)
    if not groups:
        return None
    return Requirement(tuple(sorted(groups, key=_strength, reverse=True)[:MAX_GROUPS]))


def _strength(group: frozenset[Piece]) -> tuple[int, int]:
    # A group rules out more events the longer its shortest piece, and the fewer pieces it has.
    if not group:
        return (1 << 30, 0)
    return (min(len(piece.text) for piece in group), -len(group))


def _groups(node: Node, searchable: FieldFilter) -> list[frozenset[Piece]]:
    """Groups all of which must hold for ``node`` to match (none: nothing required)."""
    if isinstance(node, And):
        found: list[frozenset[Piece]] = []
        for child in node.children:
            for group in _groups(child, searchable):
                if group not in found:
                    found.append(group)
        return found
    if isinstance(node, Or):
        # One of the children holds: the union of one group of each, taken from the strongest of each.
        union: set[Piece] = set()
        for child in node.children:
            child_groups = _groups(child, searchable)
            if not child_groups:
                return []
            strongest: frozenset[Piece] = max(child_groups, key=_strength)
            union.update(strongest)
        return [frozenset(union)]
    if isinstance(node, Const):
        return [] if node.value else [frozenset()]
    if isinstance(node, Equals) and searchable(node.field):
        values = _value_pieces(node.field, node.values, node.case)
        return [values] if values is not None else []
    if isinstance(node, Wildcard) and searchable(node.field):
        patterns = _pattern_pieces(node.field, node.patterns, node.case)
        return [patterns] if patterns is not None else []
    # Not, Exists, Regex, Cidr, Compare, Predicate, Keyword, or a field that cannot be searched: nothing.
    return []


def _value_pieces(field: str, values: Iterable[object], case: Case) -> frozenset[Piece] | None:
    pieces: set[Piece] = set()
    for value in values:
        if not isinstance(value, str):
            return None
        piece = longest_piece([str.lower(value) if case is Case.INSENSITIVE else value])
        if piece is None:
            return None
        pieces.add(Piece(field, piece))
    return frozenset(pieces)


def _pattern_pieces(field: str, patterns: Iterable[str], case: Case) -> frozenset[Piece] | None:
    pieces: set[Piece] = set()
    for pattern in patterns:
        # Lower-cased before parsing, as the engine does (compile_wildcards).
        parts = parse_wildcard(str.lower(pattern) if case is Case.INSENSITIVE else pattern)
        piece = longest_piece(part for part in parts if isinstance(part, str))
        if piece is None:
            return None
        pieces.add(Piece(field, piece))
    return frozenset(pieces)


def longest_piece(literals: Iterable[str]) -> str | None:
    """The longest run of printable ASCII in ``literals``, ASCII-lower-cased; None when there is none."""
    best = ""
    for literal in literals:
        start = 0
        for index, char in enumerate(literal):
            if not " " <= char <= "~":
                if index - start > len(best):
                    best = literal[start:index]
                start = index + 1
        if len(literal) - start > len(best):
            best = literal[start:]
    return ascii_lower(best) if best else None


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``text`` with only the ASCII letters lower-cased."""
    return text.translate(_ASCII_LOWER)


def ascii_value_holds(requirement: Requirement, values: dict[str, list[str]]) -> bool:
    """Whether an event with these string values per field meets ``requirement`` (values ASCII-lower-cased
    here); the reference the faster checks are tested against."""
    lowered = {field: [ascii_lower(value) for value in texts] for field, texts in values.items()}
    return all(
        any(piece.text in value for piece in group for value in lowered.get(piece.field, ()))
        for group in requirement.groups
    )


__all__ = [
    "ASCII_LOWERING_EXCEPTIONS",
    "Piece",
    "Requirement",
    "ascii_lower",
    "ascii_value_holds",
    "longest_piece",
    "requirement",
]
