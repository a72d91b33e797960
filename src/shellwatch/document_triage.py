"""Which JSON documents no rule can match, told from the few fields the rules' requirements name.

Most of the time a hunt spends on an Elastic Defend or other ECS document goes to flattening and normalizing every
field the rules read, and then to evaluating the rules. A rule can match only if, for each group of its
requirement (:func:`shellwatch.engine.literals.requirement`), some piece occurs in its field's value,
ASCII-lower-cased. So a document is first normalized for the fields of one group per rule only (the
normalizer's demand mode, :func:`shellwatch.normalize.ecs_document.normalize_ecs_document`, gives those fields the
values the full normalization gives them), and the scanner counts and drops a document none of whose groups
holds; the others go on as before.
The EVTX triage (:mod:`shellwatch.triage`) does the same from a record's raw text.

Only for the sources whose normalizer remembers nothing between records (:data:`PASS_THROUGH_SOURCES`): a
document the triage lets through is normalized a second time, which a normalizer that remembers records would see
as two records.

Left to the full evaluation, as the requirement's pieces do not decide them: a searched field holding a value
that is not a string (a number may equal a string literal), and a value holding a character whose lower case
holds an ASCII letter (:data:`~shellwatch.engine.literals.ASCII_LOWERING_EXCEPTIONS`), which a case-insensitive
rule compares as one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from shellwatch.engine.literals import ASCII_LOWERING_EXCEPTIONS, Piece, ascii_lower, requirement
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.dispatch import ECS, ELASTIC_DEFEND
from shellwatch.normalize.ecs_document import normalize_ecs_document
from shellwatch.rules.model import Rule

PASS_THROUGH_SOURCES: Final = frozenset((ELASTIC_DEFEND, ECS))
"""The sources whose normalizer passes a document through, remembering nothing between records
(:class:`~shellwatch.normalize.context.SourceContext` unused): a document of them may be normalized twice (this
triage), and a file of them reads the same in pieces (the workers' split of a large file, the columnar path)."""

SAMPLE_DOCUMENTS: Final = 64
"""Documents a triage checks against every group before it settles on one group per rule."""

_Group = tuple[tuple[str, tuple[str, ...]], ...]
"""A group of pieces as searched: (field, the texts of its pieces on that field) for each field it names."""


def _searchable(field: str) -> bool:
    return True  # the demanded value of any field is the one the rules see


def _as_searched(group: frozenset[Piece]) -> _Group:
    by_field: dict[str, set[str]] = {}
    for piece in group:
        by_field.setdefault(piece.field, set()).add(piece.text)
    return tuple((field, tuple(sorted(texts))) for field, texts in sorted(by_field.items()))


class _Undecided(Exception):
    """A searched value the pieces do not decide."""


class DocumentTriage:
    """Rules out documents of :data:`PASS_THROUGH_SOURCES` that no rule of a set can match.

    Build it with :meth:`for_rules`, which gives None when some rule requires no text (then every document may
    match). :meth:`may_match` is False only for a document no rule matches.

    Any one group of a rule's requirement is a necessary condition, and some rule out far more documents than
    others (``process`` in ``event.category`` is in every process event, a web server's name seldom is), which
    the rules do not tell. So the first documents (:data:`SAMPLE_DOCUMENTS`) are checked against every group, and from
    then on each rule is represented by the group the fewest of them held, and only the fields of those groups
    are read.
    """

    def __init__(
        self,
        groups_by_rule: Sequence[Sequence[frozenset[Piece]]],
        sample: int = SAMPLE_DOCUMENTS,
        always: Iterable[str] = (),
    ) -> None:
        self._sample_size = sample
        self._always = frozenset(always)
        self._groups_by_rule = tuple(tuple(_as_searched(group) for group in groups) for groups in groups_by_rule)
        self._held = {group: 0 for groups in self._groups_by_rule for group in groups}
        self._sampled = 0
        self._chosen: tuple[_Group, ...] | None = None
        self._demand = _demand_of(self._held, self._always)

    @classmethod
    def for_rules(
        cls, rules: Sequence[Rule], sample: int = SAMPLE_DOCUMENTS, always: Iterable[str] = ()
    ) -> DocumentTriage | None:
        """The triage of ``rules``, or None when one of them requires no piece of text; ``sample``: the documents
        checked against every group before one group per rule is chosen; ``always``: fields read from every
        document whatever the groups (those whose reading the full normalization may fail on: a document it
        fails on must not be ruled out here, where it is counted under its source rather than as unreadable)."""
        groups_by_rule: list[tuple[frozenset[Piece], ...]] = []
        for rule in rules:
            found = requirement(rule.ir, _searchable)
            if found is None:
                return None
            groups_by_rule.append(found.groups)
        return cls(groups_by_rule, sample, always)

    def may_match(self, document: Mapping[str, Any]) -> bool:
        """Whether some rule may match the event of ``document``, a decoded JSON object of one of
        :data:`PASS_THROUGH_SOURCES`; False only when none can."""
        texts: dict[str, list[str]] = {}
        try:
            event = normalize_ecs_document(document, windows_log=False, demand=self._demand)
        except Exception:  # attacker-written input: the full normalization reports it
            return True
        try:
            chosen = self._chosen
            if chosen is None:
                return self._sample(event, texts)
            return any(_holds(group, event, texts) for group in chosen)
        except _Undecided:
            return True

    def _sample(self, event: Mapping[str, Any], texts: dict[str, list[str]]) -> bool:
        """Every group checked, and counted for the choice of groups."""
        held = self._held
        found = {group: _holds(group, event, texts) for group in held}
        for group, holds in found.items():
            held[group] += holds
        self._sampled += 1
        if self._sampled == self._sample_size:
            self._chosen = tuple(min(groups, key=held.__getitem__) for groups in self._groups_by_rule)
            self._demand = _demand_of(self._chosen, self._always)
        return any(all(found[group] for group in groups) for groups in self._groups_by_rule)


def _demand_of(groups: Iterable[_Group], always: frozenset[str]) -> FieldDemand:
    return FieldDemand({field for group in groups for field, _ in group} | always)


def _holds(group: _Group, event: Mapping[str, Any], texts: dict[str, list[str]]) -> bool:
    """Whether a piece of ``group`` occurs in its field's value (``texts``: the lowered values, kept per event)."""
    for field, pieces in group:
        values = texts.get(field)
        if values is None:
            values = texts[field] = _lowered(event.get(field))
        for value in values:
            for piece in pieces:
                if piece in value:
                    return True
    return False


def _lowered(value: Any) -> list[str]:
    """The string values of a field, ASCII-lower-cased; raises :class:`_Undecided` for what pieces cannot
    decide."""
    if value is None:
        return []
    found: list[str] = []
    for item in value if type(value) is list else (value,):
        if item is None:
            continue
        if type(item) is not str:
            raise _Undecided
        for character in ASCII_LOWERING_EXCEPTIONS:
            if character in item:
                raise _Undecided
        found.append(ascii_lower(item))
    return found
