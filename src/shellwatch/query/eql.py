"""The EQL front end: Elasticsearch EQL text becomes an IR test, with Elasticsearch's semantics decided here.

Parsing is the eql package's (its Lark grammar and its tree walker, in Elasticsearch syntax, without its
optimizer, which folds case and rewrites comparisons with the old case-insensitive EQL rules). The walker
loses the ``~`` of ``in~``, ``like~``, ``regex~`` and of ``startsWith~(...)`` and the like; a subclass
records, for every AST node it builds, which operator token produced it (read from the tokens themselves, so
strings that contain ``~`` or ``in~`` cannot confuse it) and where it stands in the text. The eql package's
own entry points are not used, so its extension loader (which imports every module named ``eql_*`` on
sys.path) never runs.

Semantics, as Elasticsearch runs a single-event EQL query (x-pack/plugin/eql: ``QueryTranslator``,
``ExpressionTranslators``, ``InternalEqlScriptUtils``; docs: eql-syntax and eql-function-ref):

* ``process where ...`` requires ``event.category`` to hold ``"process"`` (a case-sensitive term query);
  ``any where`` tests no category.
* ``==``, ``!=``, ``in``, ``like``, ``regex`` and ``<`` ``<=`` ``>`` ``>=`` are case-sensitive; ``:``,
  ``in~``, ``like~``, ``regex~`` and the ``~`` function variants are not. ``==``/``!=`` never expand
  wildcards; ``:`` and ``like`` take ``*`` and ``?`` (a backslash is an ordinary character in them). ``regex``
  is a Lucene regular expression matched against the whole value.
* Null and missing fields: a comparison with a field translates to a query that a document without the field
  does not match, and ``not``/``!=`` translate to ``must_not`` of that query, so ``field != "x"`` and ``not
  (field : "x")`` *match* an event without the field. That is the IR's two-valued convention, so it needs no
  encoding. Comparisons on computed values (``length(f) > 0``) run as scripts that are false on null, whatever
  the operator. ``field == null`` is "missing", ``field != null`` is "present"; ``?field`` (optional) reads
  like any field (a field absent from an event is null either way).
* A list-valued field satisfies a test when any of its values does.
* Elasticsearch coerces a literal to the type of the field it is compared with; lacking mappings, equality
  tests accept both forms (``pid == 4`` matches ``4`` and ``"4"``; ``code == "4688"`` matches ``"4688"`` and
  ``4688``). Ordering comparisons compare numbers with numbers and strings with strings only.
* ``endsWith(f, "x")`` and ``stringContains(f, "x")`` on a field run as Lucene wildcard queries ``*x`` and
  ``*x*`` with the literal unescaped (so ``*``, ``?`` and ``\\`` in it act as wildcard syntax, as rules such
  as ``stringContains(..., "principal=\\\\*")`` expect); ``startsWith`` is a literal prefix query.

Not runnable (:class:`UnsupportedQuery`): sequences, samples, joins, pipes, lineage (``descendant of``), the
eql package's functions that Elasticsearch does not have (``arrayContains``, ``arraySearch``, ``match``,
``wildcard``, ``safe``...), field-to-field comparisons, array indexes and Lucene regex operators ``&`` ``~``
``<n-m>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import eql
from eql import ast as eql_ast
from eql.errors import EqlError, EqlParseError
from eql.functions import list_functions as eql_function_names
from eql.parser import LarkToEQL, lark_parser
from lark.exceptions import LarkError, UnexpectedInput

from shellwatch.engine.compile_python import compare_scalars
from shellwatch.engine.functions import (
    ELASTICSEARCH_FUNCTIONS,
    FUNCTIONS,
    FunctionError,
    arity_text,
    call_function,
    java_string,
    parse_network,
)
from shellwatch.engine.patterns import PatternError, escape_wildcard, lucene_to_python
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import (
    FALSE,
    TRUE,
    And,
    Call,
    Case,
    Cidr,
    Compare,
    CompareOp,
    Const,
    Equals,
    Exists,
    FieldRef,
    Literal,
    Node,
    Not,
    Or,
    Predicate,
    Regex,
    Scalar,
    Value,
    Wildcard,
)

CATEGORY_FIELD = "event.category"
"""Where Elasticsearch EQL reads the event category (``process where`` tests it)."""

Position = tuple[int, int]


def parse_eql(text: str) -> Node:
    """Parse an Elasticsearch EQL query (its category condition included) into an IR test.

    Raises :class:`QueryError` for an invalid query (with its line and column when known) and
    :class:`UnsupportedQuery` for a valid query shellwatch cannot run (sequences, pipes...).
    """
    parsed, marks = _parse(text)
    return _Lowering(marks).query(parsed)


# ============================================================================================================
# Parsing


@dataclass(frozen=True, slots=True)
class _Mark:
    """What the walker knew about an AST node that the AST itself forgets."""

    operator: str
    """``":"``, ``"like"``, ``"like~"``, ``"regex"``, ``"regex~"``, ``"in"``, ``"in~"``, ``"call"`` or
    ``"call~"``."""
    position: Position | None


class _Marks:
    """Marks by AST node identity (the nodes are kept alive here, so identities stay unique)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[object, _Mark]] = {}

    def put(self, node: object, mark: _Mark) -> None:
        self._by_id[id(node)] = (node, mark)

    def get(self, node: object) -> _Mark | None:
        found = self._by_id.get(id(node))
        return found[1] if found is not None and found[0] is node else None


def _position(tree: Any) -> Position | None:
    meta = getattr(tree, "meta", None)
    line = getattr(meta, "line", None)
    column = getattr(meta, "column", None)
    if isinstance(line, int) and isinstance(column, int):
        return (line, column)
    return None


class _MarkingWalker(LarkToEQL):  # type: ignore[misc]  # the eql package is untyped
    """eql's Lark-to-AST walker, recording the operator token behind each node it builds."""

    def __init__(self, text: str, marks: _Marks) -> None:
        super().__init__(text)
        self.marks = marks

    def in_set(self, node: Any) -> Any:
        info = super().in_set(node)
        operator = "in~" if str(node.get("IN")) == "in~" else "in"
        self.marks.put(info.node, _Mark(operator, _position(node)))
        return info

    def string_predicate(self, node: Any) -> Any:
        info = super().string_predicate(node)
        self.marks.put(info.node, _Mark(str(node["STRING_PREDICATE"]), _position(node)))
        return info

    def function_call(self, node: Any, prev_node: Any = None, prev_arg: Any = None) -> Any:
        info = super().function_call(node, prev_node, prev_arg)
        name_text = str(node["method_name"]["METHOD_START"]) if node.data == "method" else str(node.children[0])
        operator = "call~" if name_text.endswith("~") else "call"
        self.marks.put(info.node, _Mark(operator, _position(node)))
        return info


def _parse(text: str) -> tuple[Any, _Marks]:
    if not text.strip():
        raise QueryError("the query is empty")
    source = text if text.endswith("\n") else text + "\n"
    marks = _Marks()
    # Sample, runs and missing-event syntax parse here so they can be reported as unsupported, not invalid.
    extra = eql.parser.ParserConfig(allow_sample=True, allow_runs=True, allow_negation=True)
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions, extra:
        walker = _MarkingWalker(source, marks)
        try:
            tree = lark_parser.parse(source, start="piped_query")
        except UnexpectedInput as exc:
            raise QueryError("invalid syntax", _lark_position(exc)) from None
        except LarkError as exc:
            raise QueryError(f"invalid syntax: {exc}") from None
        try:
            parsed = walker.visit(tree)
        except EqlParseError as exc:
            raise QueryError(str(exc.error_msg), (exc.line + 1, exc.column + 1)) from None
        except EqlError as exc:
            raise QueryError(str(exc)) from None
    return parsed, marks


def _lark_position(exc: UnexpectedInput) -> Position | None:
    line, column = getattr(exc, "line", -1), getattr(exc, "column", -1)
    if isinstance(line, int) and isinstance(column, int) and line > 0 and column > 0:
        return (line, column)
    return None


# ============================================================================================================
# Lowering

_NOT_ELASTICSEARCH = frozenset(name.lower() for name in eql_function_names()) - ELASTICSEARCH_FUNCTIONS
_FLIP: dict[str, CompareOp] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_COMPARE_OPS: dict[str, CompareOp] = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_INT_TEXT = re.compile(r"[+-]?\d+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")
_STRING_PREDICATES = frozenset({":", "like", "like~", "regex", "regex~"})


class _Lowering:
    """Walks the eql AST of one query and builds the IR."""

    def __init__(self, marks: _Marks) -> None:
        self.marks = marks

    # -- the query -------------------------------------------------------------------------------------------

    def query(self, parsed: Any) -> Node:
        if not isinstance(parsed, eql_ast.PipedQuery):
            raise UnsupportedQuery("query form", f"{type(parsed).__name__} is not a runnable query")
        if parsed.pipes:
            names = ", ".join(f"| {getattr(pipe, 'name', type(pipe).__name__)}" for pipe in parsed.pipes)
            raise UnsupportedQuery("pipes", f"pipes ({names}) are not supported yet")
        first = parsed.first
        if isinstance(first, eql_ast.Sequence):
            raise UnsupportedQuery("sequence", "sequence queries are not supported yet")
        if isinstance(first, eql_ast.Sample):
            raise UnsupportedQuery("sample", "sample queries are not supported yet")
        if isinstance(first, eql_ast.Join):
            raise UnsupportedQuery("join", "join queries are not Elasticsearch EQL")
        if not isinstance(first, eql_ast.EventQuery):
            raise UnsupportedQuery("query form", f"{type(first).__name__} is not a runnable query")
        condition = self.test(first.query)
        if first.event_type == "any":
            return condition
        return _and((Equals(CATEGORY_FIELD, (first.event_type,)), condition))

    # -- conditions ------------------------------------------------------------------------------------------

    def test(self, expr: Any) -> Node:
        if isinstance(expr, eql_ast.Boolean):
            return Const(bool(expr.value))
        if isinstance(expr, eql_ast.Null):
            return FALSE
        if isinstance(expr, eql_ast.And):
            return _and(self.test(term) for term in expr.terms)
        if isinstance(expr, eql_ast.Or):
            return _or(self.test(term) for term in expr.terms)
        if isinstance(expr, eql_ast.Not):
            return _not(self.test(expr.term))
        if isinstance(expr, eql_ast.Field):
            # A bare field is a boolean test: Elasticsearch translates it to a term query for `true`.
            return self.equals(self.field_name(expr), [True], Case.SENSITIVE)
        if isinstance(expr, eql_ast.Comparison):
            return self.comparison(expr)
        if isinstance(expr, eql_ast.InSet):
            return self.in_set(expr)
        if isinstance(expr, eql_ast.IsNull):
            return self.null_test(expr.expr, present=False)
        if isinstance(expr, eql_ast.IsNotNull):
            return self.null_test(expr.expr, present=True)
        if isinstance(expr, eql_ast.FunctionCall):
            return self.call_test(expr)
        if isinstance(expr, eql_ast.NamedSubquery):
            raise UnsupportedQuery(
                "lineage",
                f"`{expr.query_type} of [...]` needs process lineage, which Elasticsearch EQL lacks",
            )
        raise QueryError(f"`{_render(expr)}` is not a condition")

    def is_test(self, expr: Any) -> bool:
        if isinstance(
            expr,
            eql_ast.And
            | eql_ast.Or
            | eql_ast.Not
            | eql_ast.Comparison
            | eql_ast.InSet
            | eql_ast.IsNull
            | eql_ast.IsNotNull
            | eql_ast.NamedSubquery,
        ):
            return True
        if isinstance(expr, eql_ast.FunctionCall):
            mark = self.marks.get(expr)
            if mark is not None and mark.operator in _STRING_PREDICATES:
                return True
            spec = FUNCTIONS.get(expr.name.lower())
            return spec is not None and spec.predicate and expr.name.lower() in ELASTICSEARCH_FUNCTIONS
        return False

    def comparison(self, expr: Any) -> Node:
        op = _COMPARE_OPS[expr.comparator]
        if self.is_test(expr.left) or self.is_test(expr.right):
            return self.condition_comparison(expr.left, op, expr.right)
        left = self.value(expr.left)
        right = self.value(expr.right)
        if isinstance(left, Literal) and isinstance(right, Literal):
            return Const(_literal_compare(left.value, op, right.value))
        if isinstance(left, Literal):
            # Elasticsearch's optimizer moves literals to the right (LiteralsOnTheRight).
            left, right, op = right, left, _FLIP[op]
        if isinstance(right, Literal) and right.value is None:
            return FALSE  # an ordering against null is null
        if isinstance(left, FieldRef) and isinstance(right, Literal):
            if op == "==":
                return self.equals(left.name, [right.value], Case.SENSITIVE)
            if op == "!=":
                return _not(self.equals(left.name, [right.value], Case.SENSITIVE))
        if not isinstance(right, Literal):
            raise UnsupportedQuery("field comparison", "Elasticsearch EQL cannot compare a field with another field")
        return Compare(left, op, right)

    def condition_comparison(self, left: Any, op: CompareOp, right: Any) -> Node:
        """``f(...) == true`` and friends (Elasticsearch's BooleanFunctionEqualsElimination)."""
        condition, other = (left, right) if self.is_test(left) else (right, left)
        if isinstance(other, eql_ast.Boolean) and op in ("==", "!="):
            test = self.test(condition)
            return test if (bool(other.value) is True) == (op == "==") else _not(test)
        raise UnsupportedQuery("condition comparison", f"`{_render(condition)}` compared with `{_render(other)}`")

    def in_set(self, expr: Any) -> Node:
        mark = self.marks.get(expr)
        case = Case.INSENSITIVE if mark is not None and mark.operator == "in~" else Case.SENSITIVE
        if not all(isinstance(item, eql_ast.Literal) for item in expr.container):
            raise UnsupportedQuery("field comparison", "Elasticsearch EQL cannot compare a field with another field")
        values: list[Scalar] = [item.value for item in expr.container]
        subject = self.value(expr.expression)
        if isinstance(subject, Literal):
            insensitive = case is Case.INSENSITIVE
            return Const(any(_literal_compare(subject.value, "==", v, insensitive) for v in values))
        if isinstance(subject, FieldRef):
            return self.equals(subject.name, values, case)
        return _or(Compare(subject, "==", Literal(v), case) for v in values if v is not None)

    def null_test(self, expr: Any, *, present: bool) -> Node:
        if self.is_test(expr):
            # A condition is null when one of its operands is (only comparisons have operands to look at).
            if not isinstance(expr, eql_ast.Comparison):
                raise UnsupportedQuery("null test", f"`{_render(expr)}` compared with null")
            operands = [self.value(expr.left), self.value(expr.right)]
            is_null = _or(self.null_test_value(v, present=False) for v in operands)
            return _not(is_null) if present else is_null
        return self.null_test_value(self.value(expr), present=present)

    @staticmethod
    def null_test_value(value: Value, *, present: bool) -> Node:
        if isinstance(value, FieldRef):
            return Exists(value.name) if present else Not(Exists(value.name))
        if isinstance(value, Literal):
            return Const((value.value is not None) == present)
        return Predicate(Call("is_not_null" if present else "is_null", (value,)))

    def call_test(self, expr: Any) -> Node:
        mark = self.marks.get(expr)
        if mark is not None and mark.operator in _STRING_PREDICATES:
            return self.string_predicate(expr, mark.operator)
        name, case = self.function(expr)
        spec = FUNCTIONS[name]
        if not spec.predicate:
            raise QueryError(f"{spec.display}(...) returns a value, not a condition", self.position(expr))
        args = tuple(self.value(a) for a in expr.arguments)
        subject = args[0]
        literal = args[1].value if len(args) == 2 and isinstance(args[1], Literal) else None
        if isinstance(subject, FieldRef) and isinstance(literal, str):
            # The query Elasticsearch builds for a field and a constant (QueryTranslator, doKnownTranslate).
            if name == "startswith":
                return Wildcard(subject.name, (escape_wildcard(literal) + "*",), case)
            if name == "endswith":
                return Wildcard(subject.name, ("*" + literal,), case)
            if name == "stringcontains":
                return Wildcard(subject.name, ("*" + literal + "*",), case)
        if name == "cidrmatch" and isinstance(subject, FieldRef):
            blocks = [a.value for a in args[1:] if isinstance(a, Literal) and isinstance(a.value, str)]
            if len(blocks) == len(args) - 1:
                for block in blocks:
                    try:
                        parse_network(block)
                    except FunctionError as exc:
                        raise QueryError(str(exc), self.position(expr)) from None
                return Cidr(subject.name, tuple(blocks))
        return self.predicate(Call(name, args, case), expr)

    def predicate(self, call: Call, expr: Any) -> Node:
        folded = self.fold(call, expr)
        if isinstance(folded, Literal):
            return Const(folded.value is True)
        assert isinstance(folded, Call)
        return Predicate(folded)

    def string_predicate(self, expr: Any, operator: str) -> Node:
        subject_expr, pattern_exprs = expr.arguments[0], expr.arguments[1:]
        case = Case.INSENSITIVE if operator in (":", "like~", "regex~") else Case.SENSITIVE
        if any(isinstance(p, eql_ast.Null) for p in pattern_exprs):
            if operator == ":" and len(pattern_exprs) == 1:
                return self.null_test(subject_expr, present=False)
            raise QueryError(f"`{operator}` needs string patterns, not null", self.position(expr))
        if not all(isinstance(p, eql_ast.String) for p in pattern_exprs):
            raise UnsupportedQuery("field comparison", "Elasticsearch EQL cannot compare a field with another field")
        texts: list[str] = [p.value for p in pattern_exprs]
        subject = self.value(subject_expr)
        if operator.startswith("regex"):
            return self.regex(subject, texts, case, expr)
        if isinstance(subject, FieldRef):
            exact = [t for t in texts if "*" not in t and "?" not in t]
            wild = tuple(_eql_wildcard(t) for t in texts if "*" in t or "?" in t)
            parts: list[Node] = []
            if exact:
                parts.append(self.equals(subject.name, exact, case))
            if wild:
                parts.append(Wildcard(subject.name, wild, case))
            return _or(parts)
        call = Call("wildcard", (subject, *(Literal(_eql_wildcard(t)) for t in texts)), case)
        return self.predicate(call, expr)

    def regex(self, subject: Value, texts: Sequence[str], case: Case, expr: Any) -> Node:
        for text in texts:
            try:
                lucene_to_python(text, insensitive=case is Case.INSENSITIVE)
            except PatternError as exc:
                if "not supported" in str(exc):
                    raise UnsupportedQuery("regular expression", str(exc)) from None
                raise QueryError(str(exc), self.position(expr)) from None
        if isinstance(subject, FieldRef):
            return _or(Regex(subject.name, text, case, anchored=True, dialect="lucene") for text in texts)
        return self.predicate(Call("regex", (subject, *(Literal(t) for t in texts)), case), expr)

    def equals(self, field: str, values: Iterable[Scalar], case: Case) -> Node:
        coerced = _equality_values(values)
        if not coerced:
            return FALSE
        return Equals(field, coerced, case)

    # -- values ----------------------------------------------------------------------------------------------

    def value(self, expr: Any) -> Value:
        if isinstance(expr, eql_ast.Field):
            return FieldRef(self.field_name(expr))
        if isinstance(expr, eql_ast.Literal):
            value = expr.value
            if value is not None and not isinstance(value, str | int | float | bool):
                raise QueryError(f"unsupported literal {value!r}")
            return Literal(value)
        if isinstance(expr, eql_ast.MathOperation):
            name = eql_ast.MathOperation.func_lookup[expr.operator]
            call = Call(name, (self.value(expr.left), self.value(expr.right)))
            return self.fold(call, expr)
        if isinstance(expr, eql_ast.FunctionCall):
            mark = self.marks.get(expr)
            if mark is not None and mark.operator in _STRING_PREDICATES:
                raise UnsupportedQuery("condition as value", f"`{_render(expr)}` used as a value")
            name, case = self.function(expr)
            call = Call(name, tuple(self.value(a) for a in expr.arguments), case)
            self.check_constant_arguments(call, expr)
            return self.fold(call, expr)
        if self.is_test(expr):
            raise UnsupportedQuery("condition as value", f"`{_render(expr)}` used as a value")
        raise QueryError(f"`{_render(expr)}` is not a value")

    def field_name(self, expr: Any) -> str:
        parts = [expr.base, *expr.path]
        if any(not isinstance(part, str) for part in parts):
            raise UnsupportedQuery("array index", f"`{_render(expr)}`: Elasticsearch EQL has no array indexes")
        return ".".join(parts)

    def function(self, expr: Any) -> tuple[str, Case]:
        """The canonical name and case of a function call, checked against Elasticsearch's function list."""
        name = expr.name.lower()
        position = self.position(expr)
        if getattr(expr, "as_method", False):
            raise UnsupportedQuery("method call", f"`:{expr.name}(...)` method syntax is not Elasticsearch EQL")
        if name not in ELASTICSEARCH_FUNCTIONS:
            if name in _NOT_ELASTICSEARCH:
                raise UnsupportedQuery(f"function {expr.name}", "not an Elasticsearch EQL function")
            raise QueryError(f"unknown function {expr.name}", position)
        spec = FUNCTIONS[name]
        count = len(expr.arguments)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            raise QueryError(f"{spec.display} takes {arity_text(spec)} arguments, not {count}", position)
        mark = self.marks.get(expr)
        insensitive = mark is not None and mark.operator == "call~"
        if insensitive and not spec.case_variant:
            raise QueryError(f"{spec.display} has no case-insensitive variant", position)
        return name, Case.INSENSITIVE if insensitive else Case.SENSITIVE

    def check_constant_arguments(self, call: Call, expr: Any) -> None:
        """Arguments Elasticsearch requires to be constants (``between``'s greedy flag, ``number``'s base)."""
        if call.name == "between" and len(call.args) == 4:
            greedy = call.args[3]
            if not (isinstance(greedy, Literal) and isinstance(greedy.value, bool)):
                raise QueryError("between's fourth argument must be true or false", self.position(expr))
        if call.name == "number" and len(call.args) == 2:
            base = call.args[1]
            if not (isinstance(base, Literal) and (base.value is None or type(base.value) is int)):
                raise QueryError("number's base must be an integer constant", self.position(expr))

    def fold(self, call: Call, expr: Any) -> Value:
        """A call on constants is computed now, as Elasticsearch's constant folding does."""
        if not all(isinstance(a, Literal) for a in call.args):
            return call
        values = [a.value for a in call.args if isinstance(a, Literal)]
        try:
            result = call_function(call.name, values, call.case is Case.INSENSITIVE)
        except FunctionError as exc:
            raise QueryError(f"{_render(expr)}: {exc}", self.position(expr)) from None
        if result is not None and not isinstance(result, str | int | float | bool):
            raise QueryError(f"{_render(expr)} does not give a scalar")
        return Literal(result)

    def position(self, expr: Any) -> Position | None:
        mark = self.marks.get(expr)
        return mark.position if mark is not None else None


# ============================================================================================================
# Helpers


def _and(children: Iterable[Node]) -> Node:
    kept: list[Node] = []
    for child in children:
        if child == TRUE:
            continue
        if child == FALSE:
            return FALSE
        kept.extend(child.children if isinstance(child, And) else (child,))
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else And(tuple(kept))


def _or(children: Iterable[Node]) -> Node:
    kept: list[Node] = []
    for child in children:
        if child == FALSE:
            continue
        if child == TRUE:
            return TRUE
        kept.extend(child.children if isinstance(child, Or) else (child,))
    if not kept:
        return FALSE
    return kept[0] if len(kept) == 1 else Or(tuple(kept))


def _not(child: Node) -> Node:
    if isinstance(child, Const):
        return Const(not child.value)
    if isinstance(child, Not):
        return child.child
    return Not(child)


def _eql_wildcard(text: str) -> str:
    """An EQL ``:``/``like`` pattern (only ``*`` and ``?`` special) as an IR wildcard (backslash escapes)."""
    return text.replace("\\", "\\\\")


def _equality_values(values: Iterable[Scalar]) -> tuple[Scalar, ...]:
    """The literal and the forms Elasticsearch would coerce it to for a keyword or a numeric field."""
    out: dict[tuple[type, Scalar], Scalar] = {}
    for value in values:
        if value is None:
            continue  # null never equals anything (Elasticsearch drops nulls from term lists)
        forms: list[Scalar] = [value]
        if isinstance(value, bool | int | float):
            forms.append(java_string(value))
        elif isinstance(value, str):
            if _INT_TEXT.fullmatch(value):
                forms.append(int(value))
            elif _FLOAT_TEXT.fullmatch(value):
                forms.append(float(value))
        for form in forms:
            out.setdefault((type(form), form), form)
    return tuple(out.values())


def _literal_compare(left: Scalar, op: str, right: Scalar, insensitive: bool = False) -> bool:
    return compare_scalars(left, op, right, insensitive)


def _render(expr: Any) -> str:
    try:
        return str(expr.render())
    except Exception:  # rendering is for messages only
        return type(expr).__name__
