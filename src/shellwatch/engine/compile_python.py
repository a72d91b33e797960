"""Compiles an IR test into a fast predicate over one flat ECS event: the streaming engine's hot path.

:func:`compile_predicate` is a pure function of the node. It builds the predicate in two layers:

* **Closures** (:func:`compile_closure`): every IR node becomes a small closure. This compiler is complete
  (every node, every value type, multi-valued fields, function calls) and straightforward; it defines the
  semantics, handles the nodes the generator leaves to it, and is the fallback whenever the generated code
  meets an event it does not expect (an exception inside the generated function re-evaluates that event with
  the closures).
* **Generated source**: the nodes that dominate real rules (``And``/``Or``/``Not``, ``Equals``, ``Wildcard``,
  ``Exists``, ``Const``) are emitted as one Python function per rule, compiled with :func:`compile`. The
  top-level conjuncts are ordered so that tests on distinctive fields come before tests on fields most events
  share (``event.category``, ``host.os.type``...): conjunction is commutative and tests have no side effects,
  so only speed changes. Single-field conjuncts become ``if``/``return False`` statements; each field is read
  once (``e.get``) and lower-cased once, at the first conjunct that needs it; equality sets are frozensets
  (a list value is one ``isdisjoint`` call); wildcard lists become ``startswith``/``endswith`` tuples,
  substring tests and one combined regular expression; the first false conjunct returns.

Security invariant of the generated source: nothing taken from a rule or an event is ever written into the
source text. The text consists only of this module's templates and identifiers it generates itself (``k0``,
``k1``... for constants, ``v0``... for field values, ``l0``... for their lower-cased forms). Every
rule-derived value — field names, strings, numbers, patterns, compiled matchers, fallback closures — is passed
to the generated factory as an argument bound to one of the ``k`` identifiers. Events are data handed to the
compiled function, never code.

Semantics (the IR's conventions, :mod:`shellwatch.query.ir`): a field is missing when absent, ``None`` or an
empty list; a test on a missing field is false and ``Not`` inverts; a list-valued field satisfies a test when
any element does; strings compare exactly or lower-cased under ``Case.INSENSITIVE``; numbers compare
numerically and never equal strings or booleans; ordering between mismatched types is false. Function calls
apply to every combination of their multi-valued arguments (any-of) and a function error gives ``null`` for
that event.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import product
from typing import Any

from shellwatch.engine.functions import FUNCTIONS, FunctionError, IPNetwork, ip_in_networks, parse_network
from shellwatch.engine.patterns import (
    PatternError,
    WildcardSet,
    compile_lucene,
    compile_python_regex,
    compile_wildcards,
    ordered_runs,
    repeated_literals,
    runs_in_order,
)
from shellwatch.query.errors import QueryError
from shellwatch.query.ir import (
    And,
    Call,
    Case,
    Cidr,
    Compare,
    Const,
    Equals,
    Exists,
    FieldRef,
    Keyword,
    Literal,
    Node,
    Not,
    Or,
    Predicate,
    Regex,
    Value,
    Wildcard,
)

Event = Mapping[str, Any]
Test = Callable[[Event], bool]
RawTest = Callable[[Any], bool]
"""A test on the raw value of one field (scalar, list or None)."""
ValuesOf = Callable[[Event], list[Any]]
"""The candidate values of an expression for one event (a missing field gives ``[None]``)."""


def compile_predicate(node: Node) -> Callable[[Mapping[str, Any]], bool]:
    """A fast predicate deciding ``node`` over one flat ECS event (see the module docstring)."""
    fallback = compile_closure(node)
    try:
        return _generate(node, fallback)
    except (RecursionError, SyntaxError, MemoryError):
        # A tree too deep for Python's parser: the closures decide alone.
        return fallback


# ============================================================================================================
# Closures


def compile_closure(node: Node) -> Test:
    """The closure-only predicate for ``node``: complete and simple; the reference for the generated code."""
    if isinstance(node, Const):
        value = node.value
        return lambda e: value
    if isinstance(node, And):
        children = tuple(compile_closure(c) for c in node.children)
        return lambda e: all(c(e) for c in children)
    if isinstance(node, Or):
        children = tuple(compile_closure(c) for c in node.children)
        return lambda e: any(c(e) for c in children)
    if isinstance(node, Not):
        child = compile_closure(node.child)
        return lambda e: not child(e)
    if isinstance(node, Exists | Equals | Wildcard | Regex | Cidr):
        raw_test = raw_field_test(node)
        path = node.field
        return lambda e: raw_test(e.get(path))
    if isinstance(node, Compare):
        return _compare_closure(node)
    if isinstance(node, Predicate):
        values = _values_closure(node.call)
        return lambda e: any(v is True for v in values(e))
    if isinstance(node, Keyword):
        return _keyword_closure(node)
    raise QueryError(f"cannot compile IR node {type(node).__name__}")


def raw_field_test(node: Exists | Equals | Wildcard | Regex | Cidr) -> RawTest:
    """A test on one field's raw value (``None``, a scalar or a list) for the single-field nodes."""
    if isinstance(node, Exists):
        return _exists_raw
    scalar = _scalar_test(node)

    def test(raw: Any) -> bool:
        if raw is None:
            return False
        if isinstance(raw, list | tuple):
            return any(x is not None and scalar(x) for x in raw)
        return scalar(raw)

    return test


def list_field_test(node: Equals | Wildcard) -> Callable[[list[Any]], bool]:
    """:func:`raw_field_test` for a list value (``process.args``), its string elements tested without a call per
    element where the test allows (a set lookup; one call to the wildcard matcher)."""
    scalar = _scalar_test(node)
    insensitive = node.case is Case.INSENSITIVE
    text_test: Callable[[str], bool]
    if isinstance(node, Equals):
        text_test = split_values(node.values, insensitive)[0].__contains__
    else:
        text_test = _wildcard_set(node.patterns, insensitive).matches

    def test(items: list[Any]) -> bool:
        for item in items:
            if item.__class__ is str:
                if text_test(str.lower(item) if insensitive else item):
                    return True
            elif item is not None and scalar(item):
                return True
        return False

    return test


def _exists_raw(raw: Any) -> bool:
    if raw is None:
        return False
    if isinstance(raw, list | tuple):
        return any(x is not None for x in raw)
    return True


def _scalar_test(node: Equals | Wildcard | Regex | Cidr) -> Callable[[Any], bool]:
    if isinstance(node, Equals):
        return _EqualsMatcher(node.values, node.case is Case.INSENSITIVE)
    if isinstance(node, Wildcard):
        return _wildcard_matcher(node.patterns, node.case is Case.INSENSITIVE)
    if isinstance(node, Regex):
        pattern = compile_regex(node)
        search = pattern.fullmatch if node.anchored else pattern.search
        runs = None if node.anchored else ordered_runs(pattern)
        if runs is not None:
            dotall = bool(pattern.flags & re.DOTALL)
            return lambda x: isinstance(x, str) and runs_in_order(x, runs, dotall)
        counts = repeated_literals(pattern)
        if counts:
            return _counted_search(search, counts)
        return lambda x: isinstance(x, str) and search(x) is not None
    networks = _networks(node.networks)
    return lambda x: isinstance(x, str) and ip_in_networks(x, networks)


def _counted_search(
    search: Callable[[str], re.Match[str] | None], counts: tuple[tuple[str, int], ...]
) -> Callable[[Any], bool]:
    """A regular expression's test that first counts the characters every match repeats
    (:func:`~shellwatch.engine.patterns.repeated_literals`): a value with too few of one is decided without
    running the pattern, which on such values may backtrack for a long time."""

    def test(x: Any) -> bool:
        if not isinstance(x, str):
            return False
        for char, least in counts:
            if x.count(char) < least:
                return False
        return search(x) is not None

    return test


class _EqualsMatcher:
    """Scalar membership with the IR's typing: strings (case per node), numbers, booleans kept apart."""

    __slots__ = ("booleans", "insensitive", "numbers", "strings")

    def __init__(self, values: Sequence[object], insensitive: bool) -> None:
        self.insensitive = insensitive
        self.strings, self.numbers, self.booleans = split_values(values, insensitive)

    def __call__(self, x: Any) -> bool:
        if isinstance(x, str):
            return (str.lower(x) if self.insensitive else x) in self.strings
        if isinstance(x, bool):
            return x in self.booleans
        if isinstance(x, int | float):
            return x in self.numbers
        return False


def split_values(
    values: Sequence[object], insensitive: bool
) -> tuple[frozenset[str], frozenset[int | float], frozenset[bool]]:
    """Equality constants split by type: strings (lower-cased when insensitive), numbers, booleans."""
    strings: set[str] = set()
    numbers: set[int | float] = set()
    booleans: set[bool] = set()
    for value in values:
        if isinstance(value, str):
            strings.add(str.lower(value) if insensitive else value)
        elif isinstance(value, bool):
            booleans.add(value)
        elif isinstance(value, int | float):
            numbers.add(value)
    return frozenset(strings), frozenset(numbers), frozenset(booleans)


@lru_cache(maxsize=1 << 13)
def _compiled_wildcards(patterns: tuple[str, ...], insensitive: bool) -> WildcardSet:
    return compile_wildcards(patterns, insensitive=insensitive)


def _wildcard_set(patterns: Sequence[str], insensitive: bool) -> WildcardSet:
    """The patterns' :class:`WildcardSet`, compiled once for the generated code, the closures and the list tests
    of a rule (and shared by rules testing the same patterns: the set is immutable)."""
    return _compiled_wildcards(tuple(patterns), insensitive)


def _wildcard_matcher(patterns: Sequence[str], insensitive: bool) -> Callable[[Any], bool]:
    matcher = _wildcard_set(patterns, insensitive)
    if insensitive:
        return lambda x: isinstance(x, str) and matcher.matches(str.lower(x))
    return lambda x: isinstance(x, str) and matcher.matches(x)


def compile_regex(node: Regex) -> re.Pattern[str]:
    """The Python pattern for a :class:`Regex` node (Lucene patterns translated); QueryError when invalid."""
    insensitive = node.case is Case.INSENSITIVE
    try:
        if node.dialect == "lucene":
            return compile_lucene(node.pattern, insensitive)
        return compile_python_regex(node.pattern, insensitive=insensitive, multiline=node.multiline, dotall=node.dotall)
    except PatternError as exc:
        raise QueryError(str(exc)) from None


def _networks(blocks: Sequence[str]) -> tuple[IPNetwork, ...]:
    try:
        return tuple(parse_network(block) for block in blocks)
    except FunctionError as exc:
        raise QueryError(str(exc)) from None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare_scalars(left: Any, op: str, right: Any, insensitive: bool) -> bool:
    """One comparison under the IR's typing rules (None or mismatched types: false)."""
    if left is None or right is None:
        return False
    if isinstance(left, str) and isinstance(right, str):
        if insensitive:
            left, right = str.lower(left), str.lower(right)
    elif isinstance(left, bool) or isinstance(right, bool):
        if not (isinstance(left, bool) and isinstance(right, bool) and op in ("==", "!=")):
            return False
    elif not (isinstance(left, int | float) and isinstance(right, int | float)):
        return False
    return bool(_ORDER[op](left, right))


def _compare_closure(node: Compare) -> Test:
    left = _values_closure(node.left)
    right = _values_closure(node.right)
    op = node.op
    insensitive = node.case is Case.INSENSITIVE
    if op not in _ORDER:
        raise QueryError(f"unknown comparison operator {op!r}")

    def test(e: Event) -> bool:
        rights = right(e)
        return any(compare_scalars(a, op, b, insensitive) for a in left(e) for b in rights)

    return test


def field_candidates(raw: Any) -> list[Any]:
    """The values a field contributes to a comparison or a call: its non-null values, or ``[None]``."""
    if raw is None:
        return [None]
    if isinstance(raw, list | tuple):
        present = [x for x in raw if x is not None]
        return present or [None]
    return [raw]


def _values_closure(value: Value) -> ValuesOf:
    if isinstance(value, FieldRef):
        path = value.name
        return lambda e: field_candidates(e.get(path))
    if isinstance(value, Literal):
        constant = [value.value]
        return lambda e: constant
    return _call_closure(value)


def _call_closure(call: Call) -> ValuesOf:
    spec = FUNCTIONS.get(call.name)
    if spec is None:
        raise QueryError(f"unknown function {call.name!r}")
    count = len(call.args)
    if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
        raise QueryError(f"function {spec.display} called with {count} arguments")
    insensitive = call.case is Case.INSENSITIVE
    args = tuple(_values_closure(a) for a in call.args)
    impl = spec.impl
    if call.name in ("wildcard", "regex") and all(isinstance(a, Literal) for a in call.args[1:]):
        impl = _precompiled_matcher(call, insensitive)

    def values(e: Event) -> list[Any]:
        results: list[Any] = []
        for combination in product(*(a(e) for a in args)):
            try:
                results.append(impl(combination, insensitive))
            except (ValueError, ArithmeticError, TypeError):
                results.append(None)
        return results

    return values


def _precompiled_matcher(call: Call, insensitive: bool) -> Callable[[Sequence[object], bool], object]:
    """``wildcard``/``regex`` with literal patterns: compile them once, not per event."""
    patterns = [a.value for a in call.args[1:] if isinstance(a, Literal)]
    if not all(isinstance(p, str) for p in patterns):
        raise QueryError(f"{call.name} needs string patterns")
    texts = [p for p in patterns if isinstance(p, str)]
    if call.name == "wildcard":
        matcher = compile_wildcards(texts, insensitive=insensitive)

        def wildcard(args: Sequence[object], _: bool) -> object:
            source = args[0]
            if source is None:
                return None
            if not isinstance(source, str):
                raise FunctionError("wildcard needs a string")
            return matcher.matches(str.lower(source) if insensitive else source)

        return wildcard
    try:
        compiled = [compile_lucene(p, insensitive) for p in texts]
    except PatternError as exc:
        raise QueryError(str(exc)) from None

    def regex(args: Sequence[object], _: bool) -> object:
        source = args[0]
        if source is None:
            return None
        if not isinstance(source, str):
            raise FunctionError("regex needs a string")
        return any(p.fullmatch(source) is not None for p in compiled)

    return regex


def _keyword_closure(node: Keyword) -> Test:
    scalar = _wildcard_matcher(node.patterns, node.case is Case.INSENSITIVE)

    def test(e: Event) -> bool:
        return any(scalar(x) for x in _all_scalars(e))

    return test


def _all_scalars(e: Event) -> Iterator[Any]:
    for value in e.values():
        if isinstance(value, list | tuple):
            yield from value
        else:
            yield value


# ============================================================================================================
# Generated source

_FACTORY = "_shellwatch_predicate_factory"


class _Generator:
    """Builds the source of one predicate from templates; rule values become ``k`` constants, never text."""

    def __init__(self) -> None:
        self.constants: list[object] = []
        self.slots: dict[str, int] = {}
        self.read: set[int] = set()
        self.lowered: set[int] = set()
        self.want_read: list[int] = []
        self.want_lower: list[int] = []

    # -- names -----------------------------------------------------------------------------------------------

    def const(self, value: object) -> str:
        self.constants.append(value)
        return f"k{len(self.constants) - 1}"

    def value_local(self, path: str) -> str:
        slot = self.slots.setdefault(path, len(self.slots))
        if slot not in self.read and slot not in self.want_read:
            self.want_read.append(slot)
        return f"v{slot}"

    def lower_local(self, path: str) -> str:
        self.value_local(path)
        slot = self.slots[path]
        if slot not in self.lowered and slot not in self.want_lower:
            self.want_lower.append(slot)
        return f"l{slot}"

    def flush_reads(self, lines: list[str], indent: str) -> None:
        """Emit the field reads and lower-casings that the expression just generated needs."""
        paths = {slot: path for path, slot in self.slots.items()}
        for slot in self.want_read:
            lines.append(f"{indent}v{slot} = g({self.const(paths[slot])})")
            self.read.add(slot)
        for slot in self.want_lower:
            lines.append(f"{indent}l{slot} = v{slot}.lower() if v{slot}.__class__ is str else None")
            self.lowered.add(slot)
        self.want_read.clear()
        self.want_lower.clear()

    # -- statements ------------------------------------------------------------------------------------------

    def statement(self, node: Node, lines: list[str], indent: str) -> bool:
        """Emit a top-level single-field test as ``if``/``return False`` statements, which run faster than the
        expression form; False when ``node`` has no statement form."""
        if isinstance(node, Equals):
            insensitive = node.case is Case.INSENSITIVE
            strings, numbers, booleans = split_values(node.values, insensitive)
            if not strings or numbers or booleans:
                return False
            test_const = self.const(strings)
        elif isinstance(node, Wildcard):
            insensitive = node.case is Case.INSENSITIVE
            matcher = _wildcard_set(node.patterns, insensitive)
            if matcher.match_any:
                return False
        else:
            return False
        v = self.value_local(node.field)
        slot = self.slots[node.field]
        # A field lower-cased here for the first time gets its ``l`` local inside the branches below, so other
        # types pay no lower(); later conjuncts find it set (None when the value is not a string).
        lower_now = insensitive and slot not in self.lowered
        if lower_now:
            self.lowered.add(slot)
        x = f"l{slot}" if insensitive else v
        slow = self.const(raw_field_test(node))
        failed = f"{x} not in {test_const}" if isinstance(node, Equals) else f"not ({self.wildcard_tests(matcher, x)})"
        self.flush_reads(lines, indent)
        lines.append(f"{indent}if {v}.__class__ is str:")
        if lower_now:
            lines.append(f"{indent}    {x} = {v}.lower()")
        lines.append(f"{indent}    if {failed}:")
        lines.append(f"{indent}        return False")
        if isinstance(node, Equals) and not insensitive:
            lines.append(f"{indent}elif {v}.__class__ is list:")
            lines.append(f"{indent}    if {test_const}.isdisjoint({v}):")
            lines.append(f"{indent}        return False")
        else:
            lines.append(f"{indent}elif {v}.__class__ is list:")
            if lower_now:
                lines.append(f"{indent}    {x} = None")
            lines.append(f"{indent}    if not {self.const(list_field_test(node))}({v}):")
            lines.append(f"{indent}        return False")
        lines.append(f"{indent}else:")
        if lower_now:
            lines.append(f"{indent}    {x} = None")
        lines.append(f"{indent}    if {v} is None or not {slow}({v}):")
        lines.append(f"{indent}        return False")
        return True

    # -- expressions -----------------------------------------------------------------------------------------

    def expr(self, node: Node) -> str:
        if isinstance(node, Const):
            return "True" if node.value else "False"
        if isinstance(node, And):
            if not node.children:
                return "True"
            return "(" + " and ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, Or):
            if not node.children:
                return "False"
            return "(" + " or ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"(not {self.expr(node.child)})"
        if isinstance(node, Equals):
            return self.equals(node)
        if isinstance(node, Wildcard):
            return self.wildcard(node)
        if isinstance(node, Exists):
            v = self.value_local(node.field)
            return f"({v} is not None and ({v}.__class__ is not list or {self.const(_exists_raw)}({v})))"
        # Everything else is decided by its closure.
        return f"{self.const(compile_closure(node))}(e)"

    def equals(self, node: Equals) -> str:
        insensitive = node.case is Case.INSENSITIVE
        strings, numbers, booleans = split_values(node.values, insensitive)
        if not (strings or numbers or booleans):
            return "False"
        v = self.value_local(node.field)
        slow = self.const(raw_field_test(node))
        if strings:
            s = self.const(strings)
            if insensitive:
                low = self.lower_local(node.field)
                in_list = f"{self.const(list_field_test(node))}({v})"
                return (
                    f"(({low} in {s}) if {low} is not None else "
                    f"{in_list} if {v}.__class__ is list else {v} is not None and {slow}({v}))"
                )
            if not (numbers or booleans):
                # Lists of strings: one C-level set test. (Unhashable elements raise: the closures take over.)
                return (
                    f"(({v} in {s}) if {v}.__class__ is str else {v} is not None and "
                    f"((not {s}.isdisjoint({v})) if {v}.__class__ is list else {slow}({v})))"
                )
            return f"(({v} in {s}) if {v}.__class__ is str else {v} is not None and {slow}({v}))"
        if numbers and not booleans:
            n = self.const(numbers)
            return f"(({v} in {n}) if {v}.__class__ is int else {v} is not None and {slow}({v}))"
        return f"({v} is not None and {slow}({v}))"

    def wildcard(self, node: Wildcard) -> str:
        insensitive = node.case is Case.INSENSITIVE
        matcher = _wildcard_set(node.patterns, insensitive)
        v = self.value_local(node.field)
        slow = self.const(raw_field_test(node))
        x = self.lower_local(node.field) if insensitive else v
        is_str = f"{x} is not None" if insensitive else f"{v}.__class__ is str"
        in_list = f"{self.const(list_field_test(node))}({v})"
        return (
            f"(({self.wildcard_tests(matcher, x)}) if {is_str} else "
            f"{in_list} if {v}.__class__ is list else {v} is not None and {slow}({v}))"
        )

    def wildcard_tests(self, matcher: WildcardSet, x: str) -> str:
        """The ``or`` of the cheapest tests deciding ``matcher`` on the string local ``x``."""
        if matcher.match_any:
            return "True"
        tests: list[str] = []
        if len(matcher.exact) == 1:
            tests.append(f"{x} == {self.const(next(iter(matcher.exact)))}")
        elif matcher.exact:
            tests.append(f"{x} in {self.const(matcher.exact)}")
        if matcher.prefixes:
            tests.append(f"{x}.startswith({self.const(matcher.prefixes)})")
        if matcher.suffixes:
            tests.append(f"{x}.endswith({self.const(matcher.suffixes)})")
        tests.extend(f"{self.const(infix)} in {x}" for infix in matcher.infixes)
        if matcher.regex is not None:
            tests.append(f"{self.const(matcher.regex.fullmatch)}({x}) is not None")
        return " or ".join(tests) if tests else "False"


# Fields whose values most events share (the category and type of the event, the OS, the shipper): a test on
# them rejects few events, so conjunctions test them after the fields that tell events apart.
COMMON_FIELDS = frozenset(
    {
        "event.category",
        "event.type",
        "event.kind",
        "event.outcome",
        "event.module",
        "event.dataset",
        "event.provider",
        "host.os.type",
        "host.os.family",
        "host.os.platform",
        "host.os.name",
        "agent.type",
        "data_stream.dataset",
        "data_stream.type",
        "data_stream.namespace",
        "ecs.version",
    }
)


def _conjunct_rank(node: Node) -> int:
    """Where a conjunct goes in the generated ``and`` chain: cheap tests that reject many events first.

    Conjunction is commutative in the IR's two-valued logic and tests have no side effects, so the order only
    changes speed. The sort is stable: equal ranks keep the rule's order.
    """
    if isinstance(node, Const):
        return 0
    if isinstance(node, Equals | Wildcard | Exists):
        common = node.field in COMMON_FIELDS
        kind = 0 if isinstance(node, Equals) else 1 if isinstance(node, Wildcard) else 2
        return 1 + kind + (3 if common else 0)
    if isinstance(node, Regex | Cidr):
        return 7
    if isinstance(node, And | Or | Not):
        return 8
    return 9


def _generate(node: Node, fallback: Test) -> Callable[[Mapping[str, Any]], bool]:
    gen = _Generator()
    body: list[str] = []
    indent = "            "
    conjuncts = node.children if isinstance(node, And) and node.children else (node,)
    conjuncts = tuple(sorted(conjuncts, key=_conjunct_rank))
    for conjunct in conjuncts:
        if gen.statement(conjunct, body, indent):
            continue
        if isinstance(conjunct, Not):
            text = gen.expr(conjunct.child)
            condition = f"if {text}:"
        else:
            text = gen.expr(conjunct)
            condition = f"if not {text}:"
        gen.flush_reads(body, indent)
        body.append(f"{indent}{condition}")
        body.append(f"{indent}    return False")
    body.append(f"{indent}return True")
    fallback_name = gen.const(fallback)
    params = ", ".join(f"k{i}" for i in range(len(gen.constants)))
    source = "\n".join(
        [
            f"def {_FACTORY}({params}):",
            "    def predicate(e):",
            "        try:",
            "            g = e.get",
            *body,
            "        except Exception:",
            f"            return {fallback_name}(e)",
            "    return predicate",
        ]
    )
    code = compile(source, "<shellwatch generated predicate>", "exec")
    namespace: dict[str, Any] = {"__builtins__": {}, "str": str, "list": list, "int": int}
    namespace["Exception"] = Exception
    # The source holds only this module's templates and generated identifiers (see the module docstring).
    exec(code, namespace)  # noqa: S102
    factory = namespace[_FACTORY]
    predicate: Callable[[Mapping[str, Any]], bool] = factory(*gen.constants)
    predicate.__doc__ = "Generated predicate; source:\n" + source
    return predicate
