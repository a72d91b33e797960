"""A rule set's literal tests compiled into one index, so that the work shared by its rules is done once per event.

Most rules can match only if some field holds one of a few literals: a parent process name equal to ``w3wp.exe``,
an executable ending in ``\\whoami.exe``, a command line containing ``-encodedcommand``. :func:`gate_of` writes
such a necessary condition down for a rule as its *gate*: a set of :class:`Atom` tests on single fields, at least
one of which holds whenever the rule matches. :class:`RuleIndex` gathers the gates of every rule by field and by
kind, so that per event each field is read once, lower-cased once, and looked up once for all the rules:

* exact values in a hash table (``Equals``);
* prefixes and suffixes (``abc*``, ``*abc``) in a table of every head, or tail, of the indexed literals, walked
  from the start, or the end, of the value until no literal continues;
* substrings (``*abc*``, and the longest literal run of any other pattern) by sampled grams of the value: each
  literal is filed under one of its grams (the one fewest other literals share) and checked with ``in`` only when
  the value holds that gram; the shorter literals, and all of them on a field with few, are checked directly
  (:class:`_InfixIndex`);
* presence of the field, for the tests that need a value without naming one (``Exists``, ``Regex``...).

The gates a value holds depend on the field and the value alone, and values repeat from event to event: each
field remembers them for the values it has seen, within a bounded number of characters (:data:`MEMO_CHARS`).
The rules whose gate holds, and those without a gate, are the event's candidates; only they are evaluated in full.

Why a gate is sound: an atom compares exactly what the engine compares (:mod:`shellwatch.query.ir`): the value as
it is under ``Case.SENSITIVE``, and ``value.lower()`` against literals taken from the lower-cased pattern under
``Case.INSENSITIVE``, as :func:`~shellwatch.engine.patterns.compile_wildcards` and the Equals matcher do. A
wildcard pattern matches only a value holding its literal runs, the first at the start when the pattern begins
with one and the last at the end when it ends with one, so each atom taken from a pattern is implied by the
pattern. No ASCII-only lowering is involved, so the characters whose lower case is ASCII (the Kelvin sign, the
dotted capital I) or context-dependent (the final sigma) need no special case. Gates combine as the logic does:
every conjunct of an ``And`` is necessary (the most selective one is kept); an ``Or`` needs one atom set from
each of its children (their union); ``Not`` and the nodes that do not name literals need nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from typing import Literal as TypingLiteral

from shellwatch.engine.compile_python import COMMON_FIELDS
from shellwatch.engine.literals import ascii_lower
from shellwatch.engine.patterns import SRE_PARSER, SRE_REPEATS, PatternError, lucene_to_python, parse_wildcard
from shellwatch.query.ir import (
    And,
    Case,
    Cidr,
    Compare,
    Const,
    Equals,
    Exists,
    FieldRef,
    Node,
    Or,
    Regex,
    Wildcard,
)

AtomKind = TypingLiteral["equals", "prefix", "suffix", "contains", "present"]
View = TypingLiteral["value", "lower", "ascii"]
"""How an atom sees a string value: as it is (``Case.SENSITIVE``), ``value.lower()`` (``Case.INSENSITIVE``), or
with its ASCII letters lower-cased (a regular expression's ``IGNORECASE``: see :data:`REGEX_ASCII_CASE_VARIANTS`)."""

REGEX_ASCII_CASE_VARIANTS = ("\u0130", "\u0131", "\u017f", "\u212a")
"""The non-ASCII characters that an ASCII letter of a Python regular expression matches under ``IGNORECASE``
(dotted capital I, dotless i, long s, Kelvin sign; checked over every code point by the tests). A value holding
none of them matches an ASCII literal case-insensitively only where its ASCII-lower-cased text holds the literal
lower-cased; an ``ascii`` atom holds for a value holding one of them."""

MIN_GRAM = 4
"""Fewest characters per gram of the substring index: long enough that few literals share one, short enough that
most literals have one."""

_SLICE_LIMIT = 4096
"""Values up to this length have their grams cut by precomputed slices; longer ones (rare) by a generator."""


@dataclass(frozen=True, slots=True)
class Atom:
    """A test on one field's string values that holds whenever the rule's test on that field holds.

    ``kind`` says how ``text`` is compared: the whole value (``equals``), its start (``prefix``), its end
    (``suffix``), anywhere (``contains``); ``present`` holds when the field has a value (``text`` is empty).
    ``view`` says what of the value is compared (:data:`View`).
    """

    field: str
    kind: AtomKind
    text: str = ""
    view: View = "value"

    def holds(self, event: Mapping[str, Any]) -> bool:
        """Whether the atom holds for ``event``: the plain reference the index is tested against."""
        raw = event.get(self.field)
        items = list(raw) if isinstance(raw, list | tuple) else [raw]
        if self.kind == "present":
            return any(item is not None for item in items)
        for item in items:
            if not isinstance(item, str):
                continue
            if self.view == "ascii" and any(char in item for char in REGEX_ASCII_CASE_VARIANTS):
                return True
            value = str.lower(item) if self.view == "lower" else ascii_lower(item) if self.view == "ascii" else item
            if (
                (self.kind == "equals" and value == self.text)
                or (self.kind == "prefix" and value.startswith(self.text))
                or (self.kind == "suffix" and value.endswith(self.text))
                or (self.kind == "contains" and self.text in value)
            ):
                return True
        return False


Gate = frozenset[Atom]
"""Atoms at least one of which holds whenever a rule matches (an empty gate: the rule never matches)."""


# ------------------------------------------------------------------------------------------------------------
# Gates


MAX_GATES = 3
"""Gates kept per rule: all must hold for the rule to be evaluated. The first is looked up, the others checked."""


def gates_of(node: Node) -> tuple[Gate, ...]:
    """The most selective gates of ``node``, best first (see the module docstring); empty when nothing is
    necessary.

    Past the first, a gate with a literal shorter than a gram to find anywhere in a value is left out: such a
    literal is looked for on its own in every value of its field (see :class:`_InfixIndex`), which costs more
    than the rules it would rule out, since it holds for most values anyway.
    """
    ranked = sorted(_gates(node), key=_gate_rank)
    return tuple(ranked[:1] + [gate for gate in ranked[1:] if not _has_short_infix(gate)][: MAX_GATES - 1])


def _has_short_infix(gate: Gate) -> bool:
    return any(atom.kind == "contains" and len(atom.text) < MIN_GRAM for atom in gate)


def _gates(node: Node) -> list[Gate]:
    """Gates every one of which holds whenever ``node`` holds (none: nothing is necessary)."""
    if isinstance(node, And):
        found: list[Gate] = []
        for child in node.children:
            for gate in _gates(child):
                if gate not in found:
                    found.append(gate)
        return found
    if isinstance(node, Or):
        union: set[Atom] = set()
        for child in node.children:
            child_gates = _gates(child)
            if not child_gates:
                return []
            strongest: Gate = min(child_gates, key=_gate_rank)
            union.update(strongest)
        return [frozenset(union)]
    if isinstance(node, Const):
        return [] if node.value else [frozenset()]
    if isinstance(node, Equals):
        return [_equals_gate(node)]
    if isinstance(node, Wildcard):
        return [_wildcard_gate(node)]
    if isinstance(node, Regex):
        return _regex_gates(node)
    if isinstance(node, Exists | Cidr):
        return [frozenset({Atom(node.field, "present")})]
    if isinstance(node, Compare):
        # A missing operand makes a comparison false: each field it compares must be present.
        return [
            frozenset({Atom(side.name, "present")}) for side in (node.left, node.right) if isinstance(side, FieldRef)
        ]
    # Not, Predicate (function calls), Keyword: nothing named is necessary.
    return []


def _equals_gate(node: Equals) -> Gate:
    view: View = "lower" if node.case is Case.INSENSITIVE else "value"
    if not node.values:
        return frozenset()
    if not all(isinstance(value, str) for value in node.values):
        # A number or a boolean matches a value of its own type, which no string atom sees.
        return frozenset({Atom(node.field, "present")})
    return frozenset(
        Atom(node.field, "equals", str.lower(value) if view == "lower" else value, view)
        for value in node.values
        if isinstance(value, str)
    )


def _wildcard_gate(node: Wildcard) -> Gate:
    view: View = "lower" if node.case is Case.INSENSITIVE else "value"
    # Lower-cased before parsing, as compile_wildcards does.
    return frozenset(
        _pattern_atom(node.field, str.lower(raw) if view == "lower" else raw, view) for raw in node.patterns
    )


def _pattern_atom(field: str, pattern: str, view: View) -> Atom:
    """The most selective atom implied by one anchored wildcard pattern."""
    parts = parse_wildcard(pattern)
    runs = [part for part in parts if isinstance(part, str)]
    if not parts:
        return Atom(field, "equals", "", view)
    if len(runs) == len(parts):
        return Atom(field, "equals", runs[0], view)
    options: list[Atom] = []
    if isinstance(parts[0], str):
        options.append(Atom(field, "prefix", parts[0], view))
    if isinstance(parts[-1], str):
        options.append(Atom(field, "suffix", parts[-1], view))
    if runs:
        options.append(Atom(field, "contains", max(runs, key=len), view))
    if not options:
        # Only wildcards (``*``, ``?``): any string value of the right length; at least, a value.
        return Atom(field, "present")
    return min(options, key=_hit_rate)


def _regex_gates(node: Regex) -> list[Gate]:
    """The literal runs a regular expression cannot match without, read from Python's own parse of it."""
    present: list[Gate] = [frozenset({Atom(node.field, "present")})]
    flags = re.IGNORECASE if node.case is Case.INSENSITIVE else 0
    if node.dialect == "lucene":
        if flags:
            return present  # folded to character classes such as [aA]: no literal left
        try:
            source = lucene_to_python(node.pattern)
        except PatternError:
            return present
    else:
        source = node.pattern
    try:
        parsed = SRE_PARSER.parse(source, flags)
        view: View = "ascii" if parsed.state.flags & re.IGNORECASE else "value"
        return present + _regex_runs(node.field, view, parsed.data)
    except Exception:  # the stdlib parser's private structure, or a pattern it refuses: nothing more is known
        return present


def _regex_runs(field: str, view: View, items: Iterable[tuple[Any, Any]]) -> list[Gate]:
    """Gates for a sequence of parsed regular expression items (see :func:`_regex_gates`)."""
    gates: list[Gate] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            gates.append(frozenset({Atom(field, "contains", "".join(run), view)}))
            run.clear()

    for op, argument in items:
        if op is SRE_PARSER.LITERAL:
            char = chr(argument)
            if view == "ascii":
                if not char.isascii():
                    # Case-insensitively, a non-ASCII letter matches more than its lower case.
                    flush()
                    continue
                char = str.lower(char)
            run.append(char)
            continue
        flush()
        if op is SRE_PARSER.SUBPATTERN:
            _group, add_flags, del_flags, sub = argument
            if not (add_flags or del_flags):  # flags scoped to the group may change its case rules
                gates.extend(_regex_runs(field, view, sub))
        elif op is SRE_PARSER.BRANCH:
            union: set[Atom] = set()
            for alternative in argument[1]:
                alternative_gates = _regex_runs(field, view, alternative)
                if not alternative_gates:
                    break
                strongest: Gate = min(alternative_gates, key=_gate_rank)
                union.update(strongest)
            else:
                gates.append(frozenset(union))
        elif op in SRE_REPEATS:
            low, _high, sub = argument
            if low >= 1:
                gates.extend(_regex_runs(field, view, sub))
        # Anything else (classes, any character, anchors, assertions, back references) names no literal.
    flush()
    return gates


_COMMON_FIELDS = COMMON_FIELDS | {"event.action"}
"""Fields whose values most events of a log share: a literal on them tells few events apart."""


@lru_cache(maxsize=1 << 16)
def _hit_rate(atom: Atom) -> float:
    """A guess at the share of events an atom holds for: only the order of these guesses matters."""
    if atom.kind == "present" or atom.field in _COMMON_FIELDS:
        return 1.0
    if atom.kind == "equals":
        return 0.01
    # Non-ASCII characters are rare in logs: each counts as several.
    text = atom.text
    weight = len(text) if text.isascii() else len(text) + 3 * sum(1 for char in text if not char.isascii())
    rate = 0.9 if weight <= 2 else 1.0 / (weight - 1) ** 1.5
    return min(0.9, rate * 2) if atom.kind == "contains" else rate


def is_weak(gate: Gate) -> bool:
    """Whether most events of a log may hold the gate (a common field, or mere presence): not worth a lookup."""
    return any(_hit_rate(atom) >= 1.0 for atom in gate)


def _gate_rank(gate: Gate) -> tuple[bool, float, int]:
    # The chance that some atom holds, as if they were independent; a weak gate ranks last.
    miss = 1.0
    for atom in gate:
        miss *= 1.0 - _hit_rate(atom)
    return (is_weak(gate), 1.0 - miss, len(gate))


# ------------------------------------------------------------------------------------------------------------
# The index

GateIds = tuple[int, ...]
"""The gates (numbered in the index) an atom belongs to."""

_ValueHits = tuple[GateIds, tuple[int, ...]]
"""What one value of a field holds: the gates, and the positions of the rules filed under them."""


class _TextIndex:
    """The literals of one field under one view (:data:`View`), by kind."""

    __slots__ = ("exact", "gates", "heads", "infixes", "tails")

    def __init__(self, atoms: Mapping[Atom, GateIds]) -> None:
        exact: dict[str, GateIds] = {}
        heads: dict[str, GateIds] = {}
        tails: dict[str, GateIds] = {}
        infixes: dict[str, GateIds] = {}
        for atom, numbers in atoms.items():
            if atom.kind == "equals":
                _add(exact, atom.text, numbers)
            elif atom.kind == "prefix":
                _add_path(heads, [atom.text[:end] for end in range(1, len(atom.text) + 1)], numbers)
            elif atom.kind == "suffix":
                _add_path(tails, [atom.text[-end:] for end in range(1, len(atom.text) + 1)], numbers)
            elif atom.kind == "contains":
                _add(infixes, atom.text, numbers)
        self.exact = exact
        self.heads = heads
        self.tails = tails
        self.infixes = _InfixIndex(infixes) if infixes else None
        self.gates: GateIds = tuple(sorted({number for numbers in atoms.values() for number in numbers}))

    def scan(self, value: str, hits: set[int]) -> None:
        """Add to ``hits`` the gate numbers of every literal ``value`` (already in this index's view) holds."""
        found = self.exact.get(value)
        if found:
            hits.update(found)
        heads = self.heads
        if heads:
            for end in range(1, len(value) + 1):
                found = heads.get(value[:end])
                if found is None:
                    break
                if found:
                    hits.update(found)
        tails = self.tails
        if tails:
            for start in range(len(value) - 1, -1, -1):
                found = tails.get(value[start:])
                if found is None:
                    break
                if found:
                    hits.update(found)
        if self.infixes is not None:
            self.infixes.scan(value, hits)


class _InfixIndex:
    """Literals to find anywhere in a value: the shorter ones one by one, the longer ones by sampled grams.

    With ``L`` the shortest literal found by grams, grams are ``K = max(MIN_GRAM, L // 2)`` characters long and the
    value's grams are read every ``S = L - K + 1`` positions: an occurrence of a literal of ``L`` or more characters
    spans ``S`` consecutive gram starts, so one of them is read. Each literal is filed under one gram per residue of
    its gram offsets modulo ``S`` (the gram fewest literals share), so that whichever of its grams the sampling reads
    is filed. Long literals (hashes, long command-line fragments) then cost a few reads per value rather than one
    per character.

    Reading grams costs about as much per value whatever the number of literals, looking for a literal on its own
    costs per literal: ``L`` is chosen so that the literals shorter than ``L`` (looked for one by one, the non-ASCII
    ones only in values that are not ASCII) and the grams read cost least together (:func:`_gram_length`). A field
    with few literals has them all looked for one by one; one with thousands reads every gram.
    """

    __slots__ = ("buckets", "direct", "direct_ascii", "keys", "slices", "span", "step")

    def __init__(self, infixes: Mapping[str, GateIds]) -> None:
        shortest = _gram_length([len(text) for text in infixes])
        long = {text: numbers for text, numbers in infixes.items() if len(text) >= shortest}
        span = max(MIN_GRAM, shortest // 2)
        step = shortest - span + 1
        self.span = span
        self.step = step
        self.slices = tuple(slice(start, start + span) for start in range(0, _SLICE_LIMIT, step)) if long else ()
        sharing: Counter[str] = Counter()
        for text in long:
            sharing.update({text[start : start + span] for start in range(len(text) - span + 1)})
        buckets: dict[str, dict[str, GateIds]] = {}
        for text, numbers in sorted(long.items()):
            offsets = range(len(text) - span + 1)
            for residue in range(step):
                chosen = min((text[o : o + span] for o in offsets[residue::step]), key=sharing.__getitem__)
                buckets.setdefault(chosen, {})[text] = numbers
        self.buckets = {gram: tuple(entries.items()) for gram, entries in buckets.items()}
        self.keys = frozenset(self.buckets)
        direct = tuple((text, numbers) for text, numbers in infixes.items() if len(text) < shortest)
        self.direct = direct
        self.direct_ascii = tuple(entry for entry in direct if entry[0].isascii())

    def scan(self, value: str, hits: set[int]) -> None:
        """Add to ``hits`` the gate numbers of every literal found in ``value``."""
        if self.keys:
            starts = len(value) - self.span + 1
            if starts > 0:
                span, step = self.span, self.step
                if starts <= _SLICE_LIMIT:
                    grams: Iterable[str] = map(value.__getitem__, self.slices[: (starts - 1) // step + 1])
                else:
                    grams = (value[start : start + span] for start in range(0, starts, step))
                present = self.keys.intersection(grams)
                for gram in present:
                    for text, numbers in self.buckets[gram]:
                        if text in value:
                            hits.update(numbers)
        for text, numbers in self.direct_ascii if value.isascii() else self.direct:
            if text in value:
                hits.update(numbers)


_TYPICAL_LENGTH = 64
"""Characters of a typical indexed value (an executable path, a short command line), for :func:`_gram_length`."""

_GRAM_COST = 2.5
"""What reading one gram of a value costs (a slice, a hash, a set probe), against looking for one literal in it
with ``in``, measured on command lines."""


def _gram_length(lengths: Sequence[int]) -> int:
    """The length from which literals (of these lengths) are found by grams rather than one by one: the one whose
    estimated cost per value is least; past the longest literal when looking for each one costs least."""
    best_length = max(lengths, default=0) + 1
    best_cost = float(len(lengths))
    counts = Counter(lengths)
    shorter = sum(count for length, count in counts.items() if length < MIN_GRAM)
    for length in sorted(length for length in counts if length >= MIN_GRAM):
        span = max(MIN_GRAM, length // 2)
        cost = shorter + _GRAM_COST * _TYPICAL_LENGTH / (length - span + 1)
        if cost < best_cost:
            best_length, best_cost = length, cost
        shorter += counts[length]
    return best_length


def _add(table: dict[str, GateIds], key: str, numbers: GateIds) -> None:
    table[key] = tuple(sorted({*table.get(key, ()), *numbers}))


def _add_path(table: dict[str, GateIds], path: Sequence[str], numbers: GateIds) -> None:
    """File gate ``numbers`` under the last step of ``path``; the steps before it lead the walk on (an empty entry)."""
    for step in path[:-1]:
        table.setdefault(step, ())
    _add(table, path[-1], numbers)


MEMO_VALUE_CHARS = 1024
"""Values up to this many characters (a list: its strings together) have their gates remembered per field."""

MEMO_CHARS = 1 << 22
"""Characters of remembered values an index keeps (about 4 MiB of text and as much of bookkeeping), after which
it forgets them all: the memory stays bounded whatever the logs hold."""

_MEMO_ENTRY_CHARS = 64
"""What one remembered value costs besides its characters (dict slot, tuple of gate numbers), in characters."""


class _FieldIndex:
    """Everything the gates ask of one field, by view, and the gates that the values seen so far hold.

    A field's values repeat from event to event (executables, parents, users, services, even command lines of
    scheduled work), and the gates a value holds depend on the value alone: they are worked out once per value
    and remembered (see :data:`MEMO_VALUE_CHARS`, :data:`MEMO_CHARS`).
    """

    __slots__ = ("ascii", "field", "lower", "memo", "present", "scalar_hits", "value")

    def __init__(
        self,
        field: str,
        value: _TextIndex | None,
        lower: _TextIndex | None,
        ascii_view: _TextIndex | None,
        present: GateIds,
    ) -> None:
        self.field = field
        self.value = value
        self.lower = lower
        self.ascii = ascii_view
        self.present = present
        self.memo: dict[str | tuple[str, ...], _ValueHits] = {}
        self.scalar_hits: _ValueHits | None = None
        """What any value that is neither a string nor a list holds (its presence tests), once known."""

    def gates_of(self, raw: Any) -> GateIds:
        """The numbers of the gates that the field's value ``raw`` (not None) holds an atom of."""
        hits: set[int] = set()
        present = self.present
        if raw.__class__ is str:
            texts: Iterable[Any] = (raw,)
        elif isinstance(raw, list | tuple):
            if present and any(item is not None for item in raw):
                hits.update(present)
            texts = raw
            present = ()
        else:
            texts = ()
        if present:
            hits.update(present)
        as_is, lower, ascii_view = self.value, self.lower, self.ascii
        for text in texts:
            if text.__class__ is not str and not isinstance(text, str):
                continue
            if as_is is not None:
                as_is.scan(text, hits)
            if lower is not None:
                lower.scan(str.lower(text), hits)
            if ascii_view is not None:
                if text.isascii():
                    ascii_view.scan(str.lower(text), hits)
                elif any(char in text for char in REGEX_ASCII_CASE_VARIANTS):
                    hits.update(ascii_view.gates)
                else:
                    ascii_view.scan(ascii_lower(text), hits)
        return tuple(hits)


class RuleIndex:
    """The gates of a rule set, indexed by field: which rules an event can possibly match.

    Built from the rules' IR queries in rule-set order; the positions it returns are indexes into that sequence.
    Each rule keeps up to :data:`MAX_GATES` gates, all necessary. A rule's first gate, unless weak, files the rule
    under that gate; a rule without one is looked at for every event. A rule is a candidate when each of its
    gates holds.
    """

    def __init__(self, queries: Sequence[Node]) -> None:
        self.size = len(queries)
        self.gates: tuple[tuple[Gate, ...], ...] = tuple(gates_of(query) for query in queries)
        numbers: dict[Gate, int] = {}
        for gates in self.gates:
            for gate in gates:
                numbers.setdefault(gate, len(numbers))
        self._required: tuple[GateIds, ...] = tuple(tuple(numbers[gate] for gate in gates) for gates in self.gates)
        filed: dict[int, list[int]] = {}
        unfiled: list[int] = []
        for position, gates in enumerate(self.gates):
            if gates and not is_weak(gates[0]):
                filed.setdefault(numbers[gates[0]], []).append(position)
            else:
                unfiled.append(position)
        self._filed = {number: tuple(positions) for number, positions in filed.items()}
        self.unfiled: tuple[int, ...] = tuple(unfiled)
        """Positions of the rules looked at for every event (no gate, or only weak ones)."""
        by_field: dict[str, dict[Atom, list[int]]] = {}
        for gate, number in numbers.items():
            for atom in gate:
                by_field.setdefault(atom.field, {}).setdefault(atom, []).append(number)
        filing_fields = {atom.field for gates in self.gates if gates and not is_weak(gates[0]) for atom in gates[0]}
        fields = sorted(by_field.items())
        # The fields a rule is filed by are read first: an event that hits no filed gate (most events) and meets
        # no unfiled rule needs nothing more.
        self._filing = tuple(_field_index(field, atoms) for field, atoms in fields if field in filing_fields)
        self._checking = tuple(_field_index(field, atoms) for field, atoms in fields if field not in filing_fields)
        self._filing_names = frozenset(each.field for each in self._filing)
        self._checking_names = frozenset(each.field for each in self._checking)
        self._by_name = {each.field: each for each in (*self._filing, *self._checking)}
        self._memo_chars = 0

    def __len__(self) -> int:
        return self.size

    def gates_holding(self, event: Mapping[str, Any]) -> set[int]:
        """The numbers of the gates some atom of which holds for ``event``."""
        holding: set[int] = set()
        self._scan_fields(self._filing_names, event, holding)
        self._scan_fields(self._checking_names, event, holding)
        return holding

    def candidates(self, event: Mapping[str, Any]) -> list[int]:
        """The positions, in order, of the rules that may match ``event``: every gate of theirs holds."""
        holding: set[int] = set()
        found: set[int] = set(self.unfiled)
        self._scan_fields(self._filing_names, event, holding, found)
        if not found:
            return []
        self._scan_fields(self._checking_names, event, holding, found)
        required = self._required
        return [position for position in sorted(found) if holding.issuperset(required[position])]

    def candidates_among(self, event: Mapping[str, Any], among: Iterable[int]) -> list[int]:
        """The positions of ``among`` (kept in its order) whose rule may match ``event``."""
        holding = self.gates_holding(event)
        required = self._required
        return [position for position in among if holding.issuperset(required[position])]

    def _scan_fields(
        self, fields: frozenset[str], event: Mapping[str, Any], hits: set[int], filed: set[int] | None = None
    ) -> None:
        """Add to ``hits`` the numbers of the gates that the values of ``fields`` in ``event`` hold an atom of, and
        to ``filed`` the positions of the rules filed under those gates."""
        # An event holds a few of the indexed fields: the two key sets are intersected in one C call, rather than
        # every indexed field looked up in the event.
        by_name = self._by_name
        for name in event.keys() & fields:
            raw = event[name]
            if raw is None:
                continue
            field_index = by_name[name]
            found = field_index.memo.get(raw) if raw.__class__ is str else None
            if found is None:
                found = self._hits_of(field_index, raw)
            gates, positions = found
            if gates:
                hits.update(gates)
                if positions and filed is not None:
                    filed.update(positions)

    def _hits_of(self, field_index: _FieldIndex, raw: Any) -> _ValueHits:
        """What ``raw`` (not None, not remembered as a string) holds, remembered when it is text."""
        key: str | tuple[str, ...]
        if raw.__class__ is str:
            key, size = raw, len(raw)
        elif raw.__class__ is list and all(item.__class__ is str for item in raw):
            key = tuple(raw)
            found = field_index.memo.get(key)
            if found is not None:
                return found
            size = sum(map(len, key))
        elif isinstance(raw, list | tuple | str):
            return self._value_hits(field_index, raw)
        else:
            # A number or a boolean holds the field's presence tests and nothing else.
            if field_index.scalar_hits is None:
                field_index.scalar_hits = self._value_hits(field_index, raw)
            return field_index.scalar_hits
        found = self._value_hits(field_index, raw)
        if size <= MEMO_VALUE_CHARS:
            self._remember(field_index, key, found, size)
        return found

    def _value_hits(self, field_index: _FieldIndex, raw: Any) -> _ValueHits:
        gates = field_index.gates_of(raw)
        filed = self._filed
        positions = sorted({position for number in gates for position in filed.get(number, ())})
        return gates, tuple(positions)

    def _remember(self, field_index: _FieldIndex, key: str | tuple[str, ...], found: _ValueHits, size: int) -> None:
        size += _MEMO_ENTRY_CHARS
        if self._memo_chars + size > MEMO_CHARS:
            for each in (*self._filing, *self._checking):
                each.memo.clear()
            self._memo_chars = 0
        field_index.memo[key] = found
        self._memo_chars += size


def _field_index(field: str, atoms: Mapping[Atom, list[int]]) -> _FieldIndex:
    def view(name: View) -> _TextIndex | None:
        chosen = {atom: tuple(p) for atom, p in atoms.items() if atom.kind != "present" and atom.view == name}
        return _TextIndex(chosen) if chosen else None

    present = sorted({p for atom, numbers in atoms.items() if atom.kind == "present" for p in numbers})
    return _FieldIndex(field, view("value"), view("lower"), view("ascii"), tuple(present))


__all__ = [
    "MAX_GATES",
    "MIN_GRAM",
    "REGEX_ASCII_CASE_VARIANTS",
    "Atom",
    "Gate",
    "RuleIndex",
    "View",
    "gates_of",
    "is_weak",
]
