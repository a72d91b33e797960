"""NDJSON lines ruled out from their bytes alone, before they are decoded.

Over ECS NDJSON a hunt spends its time decoding, flattening, normalizing and matching lines that no rule can match.
A rule such as ``process.parent.name : ("w3wp.exe", "httpd.exe")`` needs one of those names in some value of the
event (:mod:`shellwatch.engine.literals` writes that down as groups of *pieces*); a line whose bytes hold none of
them cannot give an event it matches. :class:`LineTriage` decides that for every rule of a set from the line's
bytes, lower-cased once, and the JSON reader (:func:`shellwatch.sources.json_records.read_json`) counts such a line
instead of decoding it.

Why a piece of an event's value is in the line's bytes. The line decodes to an object that the normalizer passes
through (:mod:`shellwatch.normalize.dispatch`: Elastic Defend and other ECS documents, and objects of no known source,
are flattened and kept as they are), so every string value of the event is a string of the line, with three
exceptions: ``@timestamp``, rewritten as ISO 8601 UTC; ``process.name`` and ``process.parent.name`` completed from
the executable, whose text holds theirs; ``event.kind`` and ``error.message``, which the normalizer sets on a
document it fails on. Pieces are never required of the first and the last two (:data:`UNSEARCHABLE_FIELDS`). A
piece is printable ASCII; JSON writes each such character as itself, as ``\\\\`` or ``\\"`` (looked for that way),
or as ``\\/`` or a ``\\u`` escape. Hence a line is never ruled out when it holds

* a ``\\u`` or ``\\/`` escape (a real one: ``\\\\u`` in ``C:\\\\users`` is an escaped backslash and a ``u``);
* the UTF-8 of a character whose lower case is ASCII (:data:`~shellwatch.engine.literals.ASCII_LOWERING_EXCEPTIONS`:
  a case-insensitive comparison may find ``k`` where the line holds the Kelvin sign), or bytes that are not UTF-8;
* the mark of a family the normalizer maps rather than passes through (:data:`FAMILY_MARKERS`: raw Windows events,
  Winlogbeat and Elastic Agent Windows logs, Winlogbeat 6, OTRF, CrowdStrike, SentinelOne, Microsoft 365 Defender,
  Endgame): their fields are cut, converted, filled with constants, or remembered from earlier records;
* a batch of records, ``{"records": [...]}``, whose first key is ``records``.

Pieces are searched for anywhere in the line, not under a key: a line is kept when a piece occurs in any value or
key, which can only keep more lines. Numbers, booleans and nulls never give a piece (a string compares only with a
string), and a rule that requires no piece (``Const`` true, ``Exists`` only, a keyword search, a regular
expression) keeps every line: then there is no triage at all (:meth:`LineTriage.of_rules` says None).

Speed: a ruled-out line costs one lower-casing and one search per *screen* piece, plus the searches above. Each
rule has a screen group, one of its groups; a line holding no piece of any screen group fails every rule. A line
that holds one is decided on every group of every rule, and when a group other than a rule's screen rules it out
often, that group becomes its screen: generic groups (``event.category : "process"``) give way to telling ones
(the web server names) after a few lines. Screens change the cost of a verdict, never the verdict. Every search
is a pass over the line, so a rule set whose screen holds more than :data:`SCREEN_LIMIT` pieces gets no triage
(:func:`line_triage`): a few dozen passes cost what decoding and matching the line does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from shellwatch.engine.literals import ASCII_LOWERING_EXCEPTIONS, Requirement, requirement
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.dispatch import ECS, ELASTIC_DEFEND
from shellwatch.rules.model import Rule

RULED_OUT_FAMILY: Final = "ecs (ruled out)"
"""The source family ruled-out lines are counted under: an ECS document (Elastic Defend, other ECS, or an object of
no known source), never decoded, so which of them is not known."""

UNSEARCHABLE_FIELDS: Final = frozenset({"@timestamp", "event.kind", "error.message"})
"""Fields whose value may not be in the line's text (see the module docstring)."""

PASSED_THROUGH_SOURCES: Final = frozenset({ECS, ELASTIC_DEFEND})
"""Sources (``hunt --source``) whose normalizer keeps every document as written: with one of these, or none, lines can
be triaged; read as any other source, every line is decoded."""

FAMILY_MARKERS: Final = (
    b'"Event',  # a raw Windows event ("Event": {"System": ...}), an OTRF record ("EventID")
    b'"event_',  # CrowdStrike ("event_simpleName"), Winlogbeat 6 ("event_id"), Endgame ("event_subtype_full")
    b'"winlog',  # Winlogbeat 7+ and Elastic Agent Windows logs ("winlog", "winlog.*", agent.type "winlogbeat")
    b'"meta',  # SentinelOne Cloud Funnel (meta.event.name, nested or dotted)
    b'"AdvancedHunting-',  # Microsoft 365 Defender streaming records (category AdvancedHunting-*)
    b'"DeviceName"',  # Microsoft 365 Defender export rows
    b'"endgame',  # Endgame ("endgame", "endgame.*", event.module "endgame")
)
"""Bytes at least one of which is in the line of every JSON object the normalizer maps rather than passes through
(each recognizer of :mod:`shellwatch.normalize.dispatch` needs a top-level key, or a value, that is written so when
the line has no ``\\u`` escape)."""

SCREEN_LIMIT: Final = 32
"""Screen pieces beyond which :func:`line_triage` builds no triage: each is a search through the line, and a few
dozen cost about what decoding and matching the line does (a multi-pattern search would lift this limit)."""

SCREEN_SWITCH_AFTER: Final = 16
"""Lines a group other than a rule's screen must rule the rule out on before it becomes the screen."""

_DEDUPLICATE_LIMIT: Final = 512
"""Screen pieces compared pairwise to drop those holding another (a line holding the longer holds the shorter); a
larger screen is only deduplicated."""

_DOTTED_I, _KELVIN = (char.encode() for char in ASCII_LOWERING_EXCEPTIONS)
_RECORDS_KEY: Final = b'"records"'
_WHITESPACE: Final = b" \t\r\n"

_Group = tuple[bytes, ...]
"""A group's pieces as the lower-cased line shows them: JSON-escaped, ASCII."""


def escaped_piece(text: str) -> bytes:
    """A piece as a JSON writer puts it in a line (printable ASCII: only backslashes and quotes are escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').encode("ascii")


def has_escape(line: bytes) -> bool:
    """Whether the JSON text ``line`` holds a ``\\u`` or ``\\/`` escape."""
    if b"\\u" not in line and b"\\/" not in line:
        return False
    # Backslashes pair up from the first of each run, as JSON reads them: what remains after dropping the pairs
    # is a backslash that escapes the character after it.
    unpaired = line.replace(b"\\\\", b"")
    return b"\\u" in unpaired or b"\\/" in unpaired


def passes_through(line: bytes) -> bool:
    """Whether every string value of the event the normalizer makes of the JSON object ``line`` (one object, the
    whole line) is written, character for character, in ``line`` (see the module docstring for the exceptions it
    leaves to the caller: the unsearchable fields)."""
    if not line.isascii():
        if _KELVIN in line or _DOTTED_I in line:
            return False
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return False
    if has_escape(line):
        return False
    for marker in FAMILY_MARKERS:
        if marker in line:
            return False
    return not _first_key_is_records(line)


def _first_key_is_records(line: bytes) -> bool:
    # An object read as a batch has "records" as its only key, so as its first.
    at = 1
    while at < len(line) and line[at] in _WHITESPACE:
        at += 1
    return line.startswith(_RECORDS_KEY, at)


class LineTriage:
    """Rules out NDJSON lines no rule can match (see the module docstring), and counts them."""

    def __init__(self, requirements: Sequence[Requirement]) -> None:
        """The triage for rules with these requirements (one per rule; each rule needs all its groups)."""
        rules: list[tuple[_Group, ...]] = []
        for needed in requirements:
            groups = tuple(tuple(sorted({escaped_piece(piece.text) for piece in group})) for group in needed.groups)
            if groups not in rules:
                rules.append(groups)
        self._rules = tuple(rules)
        self._screen_of = [0] * len(rules)
        self._misses = [[0] * len(groups) for groups in rules]
        self._screen: tuple[bytes, ...] = ()
        self._build_screen()
        self.ruled_out_by_family: dict[str, int] = {}
        """Lines :meth:`claim` took, by source family (always :data:`RULED_OUT_FAMILY`), since the caller last
        emptied it."""

    @classmethod
    def of_rules(cls, rules: Iterable[Rule]) -> LineTriage | None:
        """The triage for these rules; None when one of them requires no piece (every line must be decoded)."""
        needed: list[Requirement] = []
        for rule in rules:
            found = requirement(rule.ir, _searchable)
            if found is None:
                return None
            needed.append(found)
        return cls(needed) if needed else None

    @property
    def screen(self) -> tuple[bytes, ...]:
        """The pieces a line is searched for first (see the module docstring)."""
        return self._screen

    def claim(self, line: bytes) -> bool:
        """True when no rule can match the event of the JSON object ``line`` (one object, the whole line, without
        its line break): it is counted in :attr:`ruled_out_by_family` and need not be decoded."""
        if self.may_match(line):
            return False
        counts = self.ruled_out_by_family
        counts[RULED_OUT_FAMILY] = counts.get(RULED_OUT_FAMILY, 0) + 1
        return True

    def release(self, line: bytes) -> None:
        """Take back a line :meth:`claim` took, which turned out not to be a whole JSON object: its reader decodes
        it after all (the count may go below zero when the caller emptied it in between)."""
        del line
        counts = self.ruled_out_by_family
        counts[RULED_OUT_FAMILY] = counts.get(RULED_OUT_FAMILY, 0) - 1

    def may_match(self, line: bytes) -> bool:
        """False when no rule can match the event of the JSON object ``line`` (one object, the whole line)."""
        lowered = line.lower()
        for piece in self._screen:
            if piece in lowered:
                if self._some_rule_holds(lowered):
                    return True
                break
        return not passes_through(line)

    def _some_rule_holds(self, lowered: bytes) -> bool:
        """Whether some rule has a piece of each of its groups in ``lowered``; moves screens (module docstring)."""
        found: dict[bytes, bool] = {}
        for index, groups in enumerate(self._rules):
            screen = self._screen_of[index]
            failing = -1
            for position in (screen, *(p for p in range(len(groups)) if p != screen)):
                if not _group_holds(groups[position], lowered, found):
                    failing = position
                    break
            if failing < 0:
                return True
            if failing != screen:
                self._missed(index, failing)
        return False

    def _missed(self, index: int, position: int) -> None:
        misses = self._misses[index]
        misses[position] += 1
        if misses[position] >= SCREEN_SWITCH_AFTER:
            self._screen_of[index] = position
            self._misses[index] = [0] * len(misses)
            self._build_screen()

    def _build_screen(self) -> None:
        pieces = sorted(
            {piece for groups, at in zip(self._rules, self._screen_of, strict=True) for piece in groups[at]},
            key=lambda piece: (len(piece), piece),
        )
        if len(pieces) > _DEDUPLICATE_LIMIT:
            self._screen = tuple(pieces)
            return
        kept: list[bytes] = []
        for piece in pieces:
            if not any(shorter in piece for shorter in kept):
                kept.append(piece)
        self._screen = tuple(kept)


def _searchable(field: str) -> bool:
    return field not in UNSEARCHABLE_FIELDS


def _group_holds(group: _Group, lowered: bytes, found: dict[bytes, bool]) -> bool:
    for piece in group:
        held = found.get(piece)
        if held is None:
            held = found[piece] = piece in lowered
        if held:
            return True
    return False


def line_triage(rules: RuleSet, *, source: str | None = None) -> LineTriage | None:
    """The triage a hunt over NDJSON applies, built once per scanner: None when every line must be decoded (a rule
    requires no piece, or the lines are read as a source that maps them, ``source`` not in
    :data:`PASSED_THROUGH_SOURCES`), or when the triage would cost more than it saves (a screen of more than
    :data:`SCREEN_LIMIT` pieces)."""
    if source is not None and source not in PASSED_THROUGH_SOURCES:
        return None
    triage = LineTriage.of_rules(rules.rules)
    if triage is None or len(triage.screen) > SCREEN_LIMIT:
        return None
    return triage


__all__ = [
    "FAMILY_MARKERS",
    "PASSED_THROUGH_SOURCES",
    "RULED_OUT_FAMILY",
    "SCREEN_LIMIT",
    "UNSEARCHABLE_FIELDS",
    "LineTriage",
    "escaped_piece",
    "has_escape",
    "line_triage",
    "passes_through",
]
