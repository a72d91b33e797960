"""EVTX records ruled out from their JSON text alone, before they are decoded.

A hunt spends most of its time, after the parser's, decoding and normalizing records; most records cannot match
any rule. Two facts decide that from the text evtx renders for a record, without decoding it:

1. Its event class (provider and event id, read from the head of the text:
   :func:`~shellwatch.normalize.event_class.rendered_key`). Rules false for every event of the class
   (:class:`~shellwatch.prefilter.ClassPrefilter`) need nothing more.
2. The pieces of text the remaining rules need (:mod:`shellwatch.engine.literals`): a rule requiring that
   ``process.parent.name`` be one of ``w3wp.exe``, ``httpd.exe``... cannot match a record whose ``ParentImage``
   holds none of them. The class's normalizer says which event data keys a field's text is cut from
   (:mod:`shellwatch.normalize.verbatim`); each piece, with JSON's escapes, then occurs up to ASCII case in the
   text of one of those keys' values. Every occurrence of ``"Key":`` in the record's text is looked at (a key is
   written that way only as a key: inside a string, JSON escapes the quotes), and a value that is not a plain
   string leaves the record undecided. Values are compared lower-cased, which matches ASCII case-insensitively;
   a record holding a character whose lower case is ASCII
   (:data:`~shellwatch.engine.literals.ASCII_LOWERING_EXCEPTIONS`) is not ruled out this way.

A record is ruled out only when every rule is; a class with a rule that requires no piece is decided by its class
alone. The verdict per record head is cached: a log holds few distinct providers and event ids; so is, per key,
whether a short value holds a piece: a log holds few distinct parent images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shellwatch.engine.literals import ASCII_LOWERING_EXCEPTIONS, Requirement, requirement
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.event_class import KEY_SEARCH_END, KEY_TAIL, PREFIX_LENGTH, rendered_key, rendered_key_class
from shellwatch.normalize.verbatim import field_sources
from shellwatch.prefilter import ClassPrefilter

_CACHE_LIMIT = 4096
"""Record keys whose verdict is kept; a crafted log can name any number of providers and event ids."""

_DOTTED_I, _KELVIN = ASCII_LOWERING_EXCEPTIONS


def _json_escaped(piece: str) -> str:
    # The escapes JSON writers (evtx's serde_json among them) apply to printable ASCII: only these two.
    return piece.replace("\\", "\\\\").replace('"', '\\"')


def _string_end(text: str, start: int) -> int:
    """The position of the quote closing the JSON string whose text begins at ``start``; -1 if none."""
    quote = text.find('"', start)
    while quote > 0:
        backslashes = 0
        while text[quote - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return quote
        quote = text.find('"', quote + 1)
    return -1


def key_values(text: str, key: str) -> list[str] | None:
    """The lower-cased JSON text of every string value written for ``key`` in ``text`` (a JSON object's
    rendering); None when one of them is not a plain string."""
    values = _marked_values(text, _key_marker(key))
    return None if values is None else [str.lower(value) for value in values]


def _key_marker(key: str) -> str:
    """How a key is written before its value in compact JSON."""
    return f'"{key}":'


def _marked_values(text: str, marker: str) -> list[str] | None:
    """The JSON text, as written, of every string value following ``marker``; None when one is not a string."""
    values: list[str] = []
    find = text.find
    at = find(marker)
    while at >= 0:
        start = at + len(marker)
        if not text.startswith('"', start):
            return None
        end = find('"', start + 1)
        # A quote after a backslash may be escaped: only then is the string's end looked for the slow way.
        if end > 0 and text[end - 1] == "\\":
            end = _string_end(text, start + 1)
        if end < 0:
            return None
        values.append(text[start + 1 : end])
        at = find(marker, end)
    return values


_VALUE_CACHE_LIMIT = 1024
"""Values whose verdict a key test keeps; a crafted log can hold any number of them."""
_CACHED_VALUE_LENGTH = 256
"""Longer values (command lines) are rarely seen twice: their verdict is not kept."""


class _KeyTest:
    """One event data key of a group and its pieces: whether a value written for the key holds one of them.

    Values repeat (the same parent image in thousands of records), so verdicts on short values are kept.
    """

    __slots__ = ("_known", "length", "marker", "pieces")

    def __init__(self, marker: str, pieces: tuple[str, ...]) -> None:
        self.marker = marker
        """The key as written before its value, ``"Key":``."""
        self.length = len(marker)
        self.pieces = pieces
        self._known: dict[str, bool] = {}

    def holds(self, value: str) -> bool:
        """Whether the value's JSON text, as written, holds one of the pieces up to ASCII case (the caller has
        checked that the record holds neither of the characters whose lower case is ASCII)."""
        known = self._known.get(value)
        return self._learn(value) if known is None else known

    def holds_in(self, text: str) -> bool:
        """Whether a value written for the key in a record's text holds one of the pieces, or is not a plain
        string (undecided); with the same proviso as :meth:`holds`. :func:`_marked_values` and :meth:`holds`,
        written out: this runs for every record of a class whose rules need a piece.

        The last occurrence is looked for first, from the end: event data keys sit at the end of a record's text,
        so that search is short, and a record usually writes a key once. Only the text before it is then searched
        for earlier ones."""
        marker = self.marker
        at = text.rfind(marker)
        if at < 0:
            return False
        find = text.find
        known_values = self._known
        stop = at
        while True:
            start = at + self.length
            if text[start : start + 1] != '"':
                return True
            end = find('"', start + 1)
            if end > 0 and text[end - 1] == "\\":
                end = _string_end(text, start + 1)
            if end < 0:
                return True
            value = text[start + 1 : end]
            known = known_values.get(value)
            if known is None:
                known = self._learn(value)
            if known:
                return True
            # Then the occurrences before the last one, first to last.
            at = find(marker, end if at != stop else 0, stop)
            if at < 0:
                return False

    def _learn(self, value: str) -> bool:
        lowered = str.lower(value)
        known = any(piece in lowered for piece in self.pieces)
        if len(value) <= _CACHED_VALUE_LENGTH:
            if len(self._known) >= _VALUE_CACHE_LIMIT:
                self._known.clear()
            self._known[value] = known
        return known

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _KeyTest) and (self.marker, self.pieces) == (other.marker, other.pieces)

    def __hash__(self) -> int:
        return hash((self.marker, self.pieces))

    def __repr__(self) -> str:
        return f"_KeyTest({self.marker!r}, {self.pieces!r})"


_Group = tuple[_KeyTest, ...]
"""For each field of a group, the event data keys its text is cut from with their pieces: one must hold."""


def _key_test(marker: str, pieces: set[str]) -> _KeyTest:
    # A piece that holds another is redundant: wherever it occurs, the other does.
    kept = tuple(sorted(piece for piece in pieces if not any(other != piece and other in piece for other in pieces)))
    return _KeyTest(marker, kept)


@dataclass(frozen=True, slots=True)
class TextFilter:
    """The pieces each candidate rule of a class needs, per event data key, as the record's JSON text shows
    them."""

    family: str
    rules: tuple[tuple[_Group, ...], ...]
    """Per rule, its groups."""
    first: _Group | None = None
    """When every rule's first group reads the same keys: those keys with all the rules' first pieces. A record
    whose values hold none of them fails every rule at once, which is the common case, checked in one pass."""

    @classmethod
    def of(cls, family: str, requirements: tuple[Requirement, ...]) -> TextFilter | None:
        """The filter for rules with these requirements; None when a required field has no known source keys."""
        sources = field_sources(family)
        rules: list[list[dict[str, set[str]]]] = []
        for needed in requirements:
            groups: list[dict[str, set[str]]] = []
            for group in needed.groups:
                by_key: dict[str, set[str]] = {}
                for piece in group:
                    keys = sources.get(piece.field)
                    if keys is None:
                        return None
                    for key in keys:
                        by_key.setdefault(_key_marker(key), set()).add(_json_escaped(piece.text))
                groups.append(by_key)
            rules.append(groups)
        made = tuple(
            tuple(tuple(_key_test(marker, pieces) for marker, pieces in by_key.items()) for by_key in groups)
            for groups in rules
        )
        return cls(family, made, _shared_first_group(rules))

    def may_match(self, text: str) -> bool:
        """False when no rule can match the record whose JSON text is ``text``."""
        if _KELVIN in text or _DOTTED_I in text:
            return True
        first = self.first
        if first is not None:
            for test in first:
                if test.holds_in(text):
                    break
            else:
                return False
        seen: dict[str, list[str] | None] = {}
        for groups in self.rules:
            for group in groups:
                if not _group_holds(group, text, seen):
                    break  # the rule cannot match
            else:
                return True
        return False


def _shared_first_group(rules: list[list[dict[str, set[str]]]]) -> _Group | None:
    """The union of the rules' first groups, when they all read the same keys (see :attr:`TextFilter.first`)."""
    if not rules or any(not groups for groups in rules):
        return None
    keys = set(rules[0][0])
    if any(set(groups[0]) != keys for groups in rules):
        return None
    pieces: dict[str, set[str]] = {key: set() for key in keys}
    for groups in rules:
        for key, key_pieces in groups[0].items():
            pieces[key].update(key_pieces)
    return tuple(_key_test(key, pieces[key]) for key in sorted(keys))


def _group_holds(group: _Group, text: str, seen: dict[str, list[str] | None]) -> bool:
    for test in group:
        marker = test.marker
        if marker in seen:
            values = seen[marker]
        else:
            values = seen[marker] = _marked_values(text, marker)
        if values is None:
            return True  # a value that is not a plain string: undecided
        for value in values:
            if test.holds(value):
                return True
    return False


_Verdict = tuple[str | None, TextFilter | None]
"""(family, None): no rule can match the record; (family, filter): ask the filter, and when it rules the record
out, count it under the family; (None, None): decode the record. A pair, so that the claim unpacks it without
asking its type."""

_DECODE: _Verdict = (None, None)
_ID_MARKER = '}},"EventID":'
_NO_KEY = "\x00"
"""The previous key before the first record (its verdict is to decode: a text starting with a NUL is decoded)."""


class RecordTriage:
    """Rules out EVTX records from their JSON text (see the module docstring), and counts them."""

    def __init__(self, rules: RuleSet, prefilter: ClassPrefilter) -> None:
        self._roots = tuple(rule.ir for rule in rules.rules)
        self._prefilter = prefilter
        self._by_key: dict[str, _Verdict] = {}
        self._filters: dict[tuple[str, tuple[int, ...]], TextFilter | None] = {}
        self._requirements: dict[tuple[str, int], Requirement | None] = {}
        self.ruled_out_by_family: dict[str, int] = {}
        """Records :attr:`claim` took, by source family, since the caller last emptied it (in place)."""
        self.claim: Callable[[str], bool] = self._claimer()
        """True when no rule can match the record whose evtx JSON text is the argument: it is counted in
        :attr:`ruled_out_by_family` and need not be decoded. False: decode and normalize it."""

    def _claimer(self) -> Callable[[str], bool]:
        # A closure rather than a method: it runs for every record of a hunt, and its state in cells costs less
        # to reach than attributes.
        counts = self.ruled_out_by_family
        known = self._by_key
        verdict_of = self._verdict
        last_key = _NO_KEY
        last_family: str | None = None
        last_filter: TextFilter | None = None

        def claim(text: str) -> bool:
            nonlocal last_key, last_family, last_filter
            # Records of one kind come in runs. A text that starts with the previous record's key has that key
            # (rendered_key finds the same first event id marker in the same place), hence its verdict: one
            # comparison instead of a search, a slice and a hash.
            if text.startswith(last_key):
                family = last_family
                text_filter = last_filter
            else:
                # rendered_key, written out.
                id_at = text.find(_ID_MARKER, PREFIX_LENGTH, KEY_SEARCH_END)
                if id_at < 0:
                    return False
                key = text[: id_at + KEY_TAIL]
                # The cache read here, the method only for a key seen for the first time: a call per change of
                # key costs more than the lookup.
                verdict = known.get(key)
                family, text_filter = verdict_of(key) if verdict is None else verdict
                if len(key) == id_at + KEY_TAIL:  # a key cut short by the text's end prefixes longer keys
                    last_key = key
                    last_family = family
                    last_filter = text_filter
            if family is None or (text_filter is not None and text_filter.may_match(text)):
                return False
            try:
                counts[family] += 1
            except KeyError:
                counts[family] = 1
            return True

        return claim

    def ruled_out(self, text: str) -> str | None:
        """The source family of the record whose evtx JSON text is ``text`` when no rule can match it (not
        counted); None when it must be decoded and normalized."""
        key = rendered_key(text)
        if key is None:
            return None
        family, text_filter = self._verdict(key)
        return None if text_filter is not None and text_filter.may_match(text) else family

    def _verdict(self, key: str) -> _Verdict:
        """The verdict on the records whose :func:`rendered_key` is ``key``, made once per key."""
        try:
            return self._by_key[key]
        except KeyError:
            pass
        event_class = rendered_key_class(key)
        verdict: _Verdict = _DECODE
        if event_class is not None:
            candidates = self._prefilter.candidates(event_class)
            if not candidates:
                verdict = (event_class.family, None)
            else:
                text_filter = self._text_filter(event_class.family, candidates)
                verdict = _DECODE if text_filter is None else (event_class.family, text_filter)
        if len(self._by_key) >= _CACHE_LIMIT:
            self._by_key.clear()
        self._by_key[key] = verdict
        return verdict

    def _requirement(self, family: str, index: int) -> Requirement | None:
        """The pieces rule ``index`` needs in the fields of ``family`` whose text the record shows, worked out once
        per rule and family (classes share rules: with thousands of rules, working them out per class costs more
        than the hunt saves)."""
        key = (family, index)
        try:
            return self._requirements[key]
        except KeyError:
            pass
        found = self._requirements[key] = requirement(self._roots[index], field_sources(family).__contains__)
        return found

    def _text_filter(self, family: str, candidates: tuple[int, ...]) -> TextFilter | None:
        key = (family, candidates)
        if key not in self._filters:
            sources = field_sources(family)
            needed = [self._requirement(family, index) for index in candidates]
            made = None
            if sources and all(need is not None for need in needed):
                made = TextFilter.of(family, tuple(need for need in needed if need is not None))
            if len(self._filters) >= _CACHE_LIMIT:
                self._filters.clear()
            self._filters[key] = made
            return made
        return self._filters[key]
