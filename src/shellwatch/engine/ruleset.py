"""A set of rules compiled once and evaluated together over each event.

Each rule is compiled to a predicate (:mod:`shellwatch.engine.compile_python`), and the rules' literal tests to one
:class:`~shellwatch.engine.rule_index.RuleIndex`: per event the index says which rules can possibly match, from one
read and one lookup per field for all the rules, and only those rules' predicates run. The result is the same as
running every predicate (the index only leaves out rules whose necessary condition fails).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.rule_index import RuleIndex
from shellwatch.rules.model import Rule

Predicate = Callable[[Mapping[str, Any]], bool]

INDEX_FROM_RULES = 8
"""Rule sets at least this large go through the index; below, running every predicate costs less than the
index's per-field lookups (bench/bench_rule_index.py prints both)."""


_MEMBER_SETS_LIMIT = 4096
"""Candidate tuples whose set is kept (one per event class seen)."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule and its compiled predicate."""

    rule: Rule
    predicate: Predicate


class RuleSet:
    """Rules compiled to predicates, in a fixed order (the order given), so output order is deterministic."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.compiled: tuple[CompiledRule, ...] = tuple(CompiledRule(r, compile_predicate(r.ir)) for r in rules)
        self._rules = tuple(c.rule for c in self.compiled)
        self._predicates = tuple(c.predicate for c in self.compiled)
        self._index: RuleIndex | None = None
        self._member_sets: dict[int, tuple[tuple[int, ...], frozenset[int]]] = {}

    def __len__(self) -> int:
        return len(self.compiled)

    def __reduce__(self) -> tuple[type[RuleSet], tuple[tuple[Rule, ...]]]:
        # Compiled predicates are generated code, which pickle cannot carry: a rule set sent to a worker process
        # started afresh (spawn, forkserver) is compiled again there from its rules.
        return (RuleSet, (self._rules,))

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in evaluation order."""
        return self._rules

    @property
    def index(self) -> RuleIndex:
        """The rules' literal tests indexed by field (built on first use: a rule set handed to worker processes
        is never matched in the parent)."""
        if self._index is None:
            self._index = RuleIndex([rule.ir for rule in self._rules])
        return self._index

    def matching(self, event: Mapping[str, Any]) -> list[Rule]:
        """The rules whose query matches ``event``, in rule order."""
        if len(self._rules) < INDEX_FROM_RULES:
            return self.matching_each(event)
        rules, predicates = self._rules, self._predicates
        return [rules[position] for position in self.index.candidates(event) if predicates[position](event)]

    def matching_among(self, event: Mapping[str, Any], candidates: Iterable[int]) -> list[Rule]:
        """The rules at ``candidates`` (positions in rule order, ascending, e.g. what the per-class prefilter
        leaves) whose query matches ``event``, in rule order."""
        rules, predicates = self._rules, self._predicates
        if len(rules) < INDEX_FROM_RULES:
            return [rules[position] for position in candidates if predicates[position](event)]
        # The index's candidates are few; the class's are many but the same tuple for every event of the class:
        # it is turned into a set once.
        members = self._members_of(candidates)
        return [
            rules[position]
            for position in self.index.candidates(event)
            if position in members and predicates[position](event)
        ]

    def _members_of(self, candidates: Iterable[int]) -> frozenset[int]:
        if type(candidates) is not tuple:
            return frozenset(candidates)
        found = self._member_sets.get(id(candidates))
        if found is None or found[0] is not candidates:
            if len(self._member_sets) >= _MEMBER_SETS_LIMIT:
                self._member_sets.clear()
            # Kept with the tuple itself, so that the id stays the tuple's while the entry lives.
            found = self._member_sets[id(candidates)] = (candidates, frozenset(candidates))
        return found[1]

    def matching_each(self, event: Mapping[str, Any]) -> list[Rule]:
        """The rules whose query matches ``event``, every predicate run: the reference :meth:`matching` equals."""
        return [compiled.rule for compiled in self.compiled if compiled.predicate(event)]
