"""Rules decided once per event class, before normalization: the events of a class whose settled fields already
make every rule false are counted without being normalized.

Raw Windows events of one provider, channel and event id share the fields the normalizers derive from those alone
(:mod:`shellwatch.normalize.event_class`): ``event.category``, ``event.type``, ``event.code``, ``host.os.type``...
Most rules test some of them, and on a typical log most events belong to classes no rule can match, so deciding
the rules per class saves the normalization of most events.

Why the verdict holds for every event of the class: a rule is a pure function of the field values it reads. Each
rule's IR is evaluated over a view of the class in which a settled field reads as its value (or as missing) and
any other field raises :class:`Undecided`. Boolean nodes combine their children in Kleene's three-valued logic;
every other node is evaluated by the engine's reference closures
(:func:`~shellwatch.engine.compile_python.compile_closure`), and is unknown when it read an unsettled field. A
rule found false reads, on any event of the class, the same values and so is false there too; a rule found true
or unknown is left to the engine on the normalized event. This rests on the normalizer completing (a record it
cannot normalize becomes an ``unknown`` event of its own): the Windows event normalizer is written never to raise
on what a reader hands it, and the hunt's tests check every event of the corpus against its class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shellwatch.engine.compile_python import compile_closure
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.event_class import EventClass
from shellwatch.query.ir import And, Cidr, Const, Equals, Exists, Node, Not, Or, Regex, Wildcard

_CACHE_LIMIT = 4096
"""Verdicts kept; event classes come from the logs, which can hold any number of them."""


class Undecided(BaseException):
    """A rule read a field whose value differs between events of the class.

    A BaseException so that no ``except Exception`` on the way (the engine's fallbacks) can take it for a failed
    test.
    """


class _ClassView(Mapping[str, Any]):
    """An event of the class as far as the class settles it."""

    __slots__ = ("_class",)

    def __init__(self, event_class: EventClass) -> None:
        self._class = event_class

    def __getitem__(self, field: str) -> Any:
        try:
            value = self._class.value(field)
        except KeyError:
            raise Undecided(field) from None
        if value is None:
            raise KeyError(field)
        return value

    def get(self, field: str, default: Any = None) -> Any:
        try:
            return self[field]
        except KeyError:
            return default

    def settles(self, field: str) -> bool:
        """Whether every event of the class has the same value for ``field`` (or none has it)."""
        try:
            self._class.value(field)
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        raise Undecided("all fields")

    def __len__(self) -> int:
        raise Undecided("all fields")


Test = Callable[[Mapping[str, Any]], bool]

_ONE_FIELD_TESTS = (Exists, Equals, Wildcard, Regex, Cidr)
"""Leaves that read exactly one field, their ``field``."""


@dataclass(slots=True)
class _ClassKnowledge:
    """What deciding the rules for one class has found so far."""

    settles: dict[str, bool]
    """Field -> whether the class settles it."""
    leaves: dict[int, bool | None]
    """Leaf (by identity: equal leaves are one object, see :func:`_sharing_leaves`) -> its verdict."""


def _sharing_leaves(node: Node, shared: dict[Node, Node]) -> Node:
    """``node`` with each leaf replaced by the first equal leaf seen (``shared``)."""
    if isinstance(node, And | Or):
        return replace(node, children=tuple(_sharing_leaves(child, shared) for child in node.children))
    if isinstance(node, Not):
        return replace(node, child=_sharing_leaves(node.child, shared))
    try:
        return shared.setdefault(node, node)
    except TypeError:  # a leaf holding something unhashable is kept as it is
        return node


class ClassPrefilter:
    """Whether any rule of a rule set can match an event of a given class (see the module docstring)."""

    def __init__(self, rules: RuleSet) -> None:
        # Equal leaves of different rules (``event.category == "process"`` in hundreds of them) become one object,
        # so that a class decides each once.
        shared: dict[Node, Node] = {}
        self._roots: tuple[Node, ...] = tuple(_sharing_leaves(rule.ir, shared) for rule in rules.rules)
        self._leaves: dict[int, tuple[Node, Test | None]] = {}
        self._verdicts: dict[EventClass, tuple[int, ...]] = {}

    def may_match(self, event_class: EventClass) -> bool:
        """False when every rule is false for every event of ``event_class``."""
        return bool(self.candidates(event_class))

    def candidates(self, event_class: EventClass) -> tuple[int, ...]:
        """The positions (in rule-set order) of the rules that may match an event of ``event_class``."""
        verdict = self._verdicts.get(event_class)
        if verdict is None:
            view = _ClassView(event_class)
            known = _ClassKnowledge({}, {})
            verdict = tuple(
                index for index, root in enumerate(self._roots) if self._decide(root, view, known) is not False
            )
            if len(self._verdicts) >= _CACHE_LIMIT:
                self._verdicts.clear()
            self._verdicts[event_class] = verdict
        return verdict

    def _decide(self, node: Node, view: _ClassView, known: _ClassKnowledge) -> bool | None:
        """True, False, or None when it depends on the event. ``known``: what was found so far for this class."""
        if isinstance(node, And):
            result: bool | None = True
            for child in node.children:
                decided = self._decide(child, view, known)
                if decided is False:
                    return False
                if decided is None:
                    result = None
            return result
        if isinstance(node, Or):
            result = False
            for child in node.children:
                decided = self._decide(child, view, known)
                if decided is True:
                    return True
                if decided is None:
                    result = None
            return result
        if isinstance(node, Not):
            decided = self._decide(node.child, view, known)
            return None if decided is None else not decided
        if isinstance(node, Const):
            return node.value
        try:
            return known.leaves[id(node)]
        except KeyError:
            pass
        decided = self._decide_leaf(node, view, known.settles)
        known.leaves[id(node)] = decided
        return decided

    def _decide_leaf(self, node: Node, view: _ClassView, settles: dict[str, bool]) -> bool | None:
        if isinstance(node, _ONE_FIELD_TESTS):
            # A test of one field reads it: when the class does not settle it, the test is undecided. Asked once
            # per field and class, rather than learnt from an exception per test (thousands of rules share a few
            # dozen fields).
            settled = settles.get(node.field)
            if settled is None:
                settled = settles[node.field] = view.settles(node.field)
            if not settled:
                return None
        test = self._leaf_test(node)
        if test is None:
            return None
        try:
            return bool(test(view))
        except Undecided:
            return None
        except Exception:  # whatever the reference closure does with a partial event, the engine decides
            return None

    def _leaf_test(self, node: Node) -> Test | None:
        # Keyed by identity, with the node kept alive beside its test so that the id stays its own.
        entry = self._leaves.get(id(node))
        if entry is None:
            try:
                test: Test | None = compile_closure(node)
            except Exception:  # a node the closures cannot compile: never decided here
                test = None
            entry = (node, test)
            self._leaves[id(node)] = entry
        return entry[1]
