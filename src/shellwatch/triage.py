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
alone. The verdict per record head is cached: a log holds few distinct providers and event ids.
"""

from __future__ import annotations

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
    return _marked_values(text, _key_marker(key))


def _key_marker(key: str) -> str:
    """How a key is written before its value in compact JSON."""
    return f'"{key}":'


def _marked_values(text: str, marker: str) -> list[str] | None:
    values: list[str] = []
    at = text.find(marker)
    while at >= 0:
        start = at + len(marker)
        if not text.startswith('"', start):
            return None
        end = _string_end(text, start + 1)
        if end < 0:
            return None
        values.append(text[start + 1 : end].lower())
        at = text.find(marker, end)
    return values


_Group = tuple[tuple[str, tuple[str, ...]], ...]
"""(an event data key as written before its value, ``"Key":``, and the pieces one of which its value must hold)
for each field of a group: one must hold."""


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
        rules: list[tuple[_Group, ...]] = []
        for needed in requirements:
            groups: list[_Group] = []
            for group in needed.groups:
                by_key: dict[str, set[str]] = {}
                for piece in group:
                    keys = sources.get(piece.field)
                    if keys is None:
                        return None
                    for key in keys:
                        by_key.setdefault(_key_marker(key), set()).add(_json_escaped(piece.text))
                groups.append(tuple((key, tuple(sorted(pieces))) for key, pieces in by_key.items()))
            rules.append(tuple(groups))
        return cls(family, tuple(rules), _shared_first_group(rules))

    def may_match(self, text: str) -> bool:
        """False when no rule can match the record whose JSON text is ``text``."""
        if _KELVIN in text or _DOTTED_I in text:
            return True
        seen: dict[str, list[str] | None] = {}
        first = self.first
        if first is not None and not _group_holds(first, text, seen):
            return False
        for groups in self.rules:
            for group in groups:
                if not _group_holds(group, text, seen):
                    break  # the rule cannot match
            else:
                return True
        return False


def _shared_first_group(rules: list[tuple[_Group, ...]]) -> _Group | None:
    """The union of the rules' first groups, when they all read the same keys (see :attr:`TextFilter.first`)."""
    if not rules or any(not groups for groups in rules):
        return None
    keys = {key for key, _ in rules[0][0]}
    if any({key for key, _ in groups[0]} != keys for groups in rules):
        return None
    pieces: dict[str, set[str]] = {key: set() for key in keys}
    for groups in rules:
        for key, key_pieces in groups[0]:
            pieces[key].update(key_pieces)
    return tuple((key, tuple(sorted(pieces[key]))) for key in sorted(keys))


def _group_holds(group: _Group, text: str, seen: dict[str, list[str] | None]) -> bool:
    for marker, pieces in group:
        if marker in seen:
            values = seen[marker]
        else:
            values = seen[marker] = _marked_values(text, marker)
        if values is None:
            return True  # a value that is not a plain string: undecided
        for value in values:
            for piece in pieces:
                if piece in value:
                    return True
    return False


_Verdict = str | TextFilter | None
"""A family name: no rule can match the record; a filter: ask it; None: decode the record."""

_ID_MARKER = '}},"EventID":'


class RecordTriage:
    """Rules out EVTX records from their JSON text (see the module docstring), and counts them."""

    def __init__(self, rules: RuleSet, prefilter: ClassPrefilter) -> None:
        self._roots = tuple(rule.ir for rule in rules.rules)
        self._prefilter = prefilter
        self._by_key: dict[str, _Verdict] = {}
        self._filters: dict[tuple[str, tuple[int, ...]], TextFilter | None] = {}
        self._last_key = ""
        self._last_verdict: _Verdict = None
        self.ruled_out_by_family: dict[str, int] = {}
        """Records :meth:`claim` took, by source family, since the caller last emptied it."""

    def claim(self, text: str) -> bool:
        """True when no rule can match the record whose evtx JSON text is ``text``: it is counted in
        :attr:`ruled_out_by_family` and need not be decoded. False: decode and normalize it."""
        # rendered_key, written out: this runs for every record of a hunt.
        id_at = text.find(_ID_MARKER, PREFIX_LENGTH, KEY_SEARCH_END)
        if id_at < 0:
            return False
        key = text[: id_at + KEY_TAIL]
        # Records of one kind come in runs: comparing with the previous key costs less than hashing this one.
        if key == self._last_key:
            verdict = self._last_verdict
        else:
            verdict = self._last_verdict = self._verdict(key)
            self._last_key = key
        if verdict is None:
            return False
        if isinstance(verdict, str):
            family = verdict
        elif verdict.may_match(text):
            return False
        else:
            family = verdict.family
        counts = self.ruled_out_by_family
        counts[family] = counts.get(family, 0) + 1
        return True

    def ruled_out(self, text: str) -> str | None:
        """The source family of the record whose evtx JSON text is ``text`` when no rule can match it (not
        counted); None when it must be decoded and normalized."""
        key = rendered_key(text)
        if key is None:
            return None
        verdict = self._verdict(key)
        if type(verdict) is TextFilter:
            return None if verdict.may_match(text) else verdict.family
        return verdict if type(verdict) is str else None

    def _verdict(self, key: str) -> _Verdict:
        """The verdict on the records whose :func:`rendered_key` is ``key``, made once per key."""
        try:
            return self._by_key[key]
        except KeyError:
            pass
        event_class = rendered_key_class(key)
        verdict: _Verdict = None
        if event_class is not None:
            candidates = self._prefilter.candidates(event_class)
            verdict = event_class.family if not candidates else self._text_filter(event_class.family, candidates)
        if len(self._by_key) >= _CACHE_LIMIT:
            self._by_key.clear()
        self._by_key[key] = verdict
        return verdict

    def _text_filter(self, family: str, candidates: tuple[int, ...]) -> TextFilter | None:
        key = (family, candidates)
        if key not in self._filters:
            sources = field_sources(family)
            needed = [requirement(self._roots[index], sources.__contains__) for index in candidates]
            made = None
            if sources and all(need is not None for need in needed):
                made = TextFilter.of(family, tuple(need for need in needed if need is not None))
            if len(self._filters) >= _CACHE_LIMIT:
                self._filters.clear()
            self._filters[key] = made
            return made
        return self._filters[key]
