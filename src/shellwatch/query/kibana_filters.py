"""Kibana ``filters``: the query-DSL conditions a rule carries beside its query, compiled to the IR.

A Kibana filter is ``{"meta": {...}, "query": {<query DSL>}}`` (older exports put the DSL beside ``meta``
instead of under ``query``). Kibana's detection engine drops disabled filters (``meta.disabled``), puts the
others in the search's ``bool.filter`` and the negated ones (``meta.negate``) in ``bool.must_not``, next to the
rule's query (kbn-es-query ``es_query/from_filters.ts``, security_solution ``get_query_filter.ts``): the rule
matches an event when its query and every enabled filter hold.

The DSL subset compiled here, with Elasticsearch's meaning on ECS mappings (:mod:`shellwatch.query.ecs_field_types`,
the same field semantics as KQL's): ``match_all``, ``match_none``, ``exists``, ``term``/``terms`` (with
``case_insensitive``), ``match``/``match_phrase``, ``wildcard``/``prefix`` (with ``case_insensitive``; the
wildcard syntax ``*``, ``?`` and ``\\`` escapes is the IR's own), ``range`` (``gt``/``gte``/``lt``/``lte``; a
``null`` bound is no bound; on date fields ``time_zone`` as an offset or IANA zone, and ``format`` among
``strict_date_optional_time`` / ``date_optional_time`` / ``strict_date_optional_time_nanos`` / ``epoch_millis``) and
``bool`` (``must``, ``filter``, ``should`` with ``minimum_should_match``, ``must_not``). Anything else
(``query_string``, ``script``, ``nested``, ``regexp``...) raises :class:`UnsupportedQuery` naming it: a filter left
out would widen the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shellwatch.engine.patterns import escape_wildcard
from shellwatch.query.ecs_field_types import base_field, field_type, is_caseless
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import FALSE, TRUE, And, Case, CompareOp, Equals, Exists, Node, Not, Or, Wildcard
from shellwatch.query.kql import keyword_forms, match_test, range_test

_RANGE_OPERATORS: Mapping[str, CompareOp] = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_MAX_DEPTH = 64


def compile_filters(filters: Sequence[Mapping[str, Any]]) -> Node:
    """The IR test all enabled ``filters`` make together (TRUE when there are none)."""
    tests: list[Node] = []
    for position, item in enumerate(filters):
        try:
            test = compile_filter(item)
        except UnsupportedQuery as exc:
            where = f"in filters[{position}]"
            raise UnsupportedQuery(exc.feature, f"{exc.detail} ({where})" if exc.detail else where) from None
        except QueryError as exc:
            raise QueryError(f"filters[{position}]: {exc.message}") from None
        if test is not None:
            tests.append(test)
    if not tests:
        return TRUE
    return tests[0] if len(tests) == 1 else And(tuple(tests))


def compile_filter(item: Mapping[str, Any]) -> Node | None:
    """One Kibana filter as an IR test, or None when it is disabled."""
    if not isinstance(item, Mapping):
        raise QueryError("a filter must be an object")
    meta = item.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise QueryError("a filter's meta must be an object")
    if meta.get("disabled") is True:
        return None
    query = item.get("query")
    if query is None:
        query = {key: value for key, value in item.items() if key not in ("meta", "$state")}
    if not isinstance(query, Mapping) or not query:
        raise QueryError("a filter has no query")
    test = compile_dsl(query)
    return Not(test) if meta.get("negate") is True else test


def compile_dsl(query: Mapping[str, Any], depth: int = 0) -> Node:
    """An Elasticsearch query-DSL object (the subset in the module docstring) as an IR test."""
    if depth > _MAX_DEPTH:
        raise QueryError(f"the filter nests deeper than {_MAX_DEPTH} levels")
    if not isinstance(query, Mapping) or len(query) != 1:
        raise QueryError("a query must be an object with exactly one query type")
    [(kind, body)] = query.items()
    if kind == "match_all":
        return TRUE
    if kind == "match_none":
        return FALSE
    if kind == "bool":
        return _bool(_object(body, kind), depth)
    if kind == "exists":
        field = _object(body, kind).get("field")
        if not isinstance(field, str) or not field:
            raise QueryError("exists needs a field")
        if "*" in field:
            raise UnsupportedQuery("filter field name pattern", field)
        return Exists(base_field(field))
    if kind in ("term", "terms", "match", "match_phrase", "wildcard", "prefix", "range"):
        field, params = _field_body(_object(body, kind), kind)
        if "*" in field:
            raise UnsupportedQuery("filter field name pattern", field)
        return _field_query(kind, field, params)
    raise UnsupportedQuery(f"filter query {kind!r}")


def _object(body: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise QueryError(f"{kind} must be an object")
    return body


def _field_body(body: Mapping[str, Any], kind: str) -> tuple[str, Any]:
    fields = [key for key in body if key not in ("boost", "_name")]
    if len(fields) != 1:
        raise QueryError(f"{kind} must name exactly one field")
    return fields[0], body[fields[0]]


def _field_query(kind: str, field: str, params: Any) -> Node:
    if kind == "terms":
        if not isinstance(params, list) or not params:
            raise QueryError(f"terms on {field} needs a list of values")
        return _any_of([_term(field, value, False) for value in params])
    if kind == "range":
        return _range(field, _object(params, "range"))
    value_key = {"term": "value", "prefix": "value", "wildcard": "value", "match": "query", "match_phrase": "query"}[
        kind
    ]
    options: Mapping[str, Any] = {}
    if isinstance(params, Mapping):
        options = params
        value = params.get(value_key, params.get("wildcard") if kind == "wildcard" else None)
    else:
        value = params
    if value is None or isinstance(value, list | Mapping):
        raise QueryError(f"{kind} on {field} needs a value")
    insensitive = options.get("case_insensitive") is True
    if kind == "term":
        return _term(field, value, insensitive)
    if kind in ("match", "match_phrase"):
        operator = str(options.get("operator", "or")).lower()
        return match_test(field, _text(value), phrase=kind == "match_phrase", operator=operator)
    pattern = _text(value)
    if kind == "prefix":
        pattern = escape_wildcard(pattern) + "*"
    return _wildcard(field, pattern, insensitive)


def _range(field: str, params: Mapping[str, Any]) -> Node:
    unknown = sorted(set(params) - set(_RANGE_OPERATORS) - {"format", "time_zone", "boost", "_name"})
    if unknown:
        raise UnsupportedQuery("filter range option", ", ".join(unknown))
    # A null bound is an open end (RangeQueryBuilder: from/to null); with neither end Elasticsearch rewrites the
    # range to an exists query.
    bounds = [(op, params[key]) for key, op in _RANGE_OPERATORS.items() if params.get(key) is not None]
    if not bounds:
        return Exists(base_field(field))
    # time_zone and format only concern dates (the field's own date format reads numbers as epoch milliseconds).
    is_date = field_type(field) == "date"
    zone = _time_zone(params.get("time_zone")) if is_date else UTC
    epoch = _epoch_millis_allowed(params) if is_date else True
    tests = [range_test(field, op, _text(value), time_zone=zone, epoch_millis=epoch) for op, value in bounds]
    return tests[0] if len(tests) == 1 else And(tuple(tests))


_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})?")
_ISO_FORMATS = frozenset({"strict_date_optional_time", "date_optional_time", "strict_date_optional_time_nanos"})


def _time_zone(value: Any) -> tzinfo:
    """A range's ``time_zone``: a UTC offset or an IANA zone id (java.time ZoneId), UTC when absent."""
    if value is None:
        return UTC
    if not isinstance(value, str) or not value:
        raise QueryError(f"time_zone must be a zone name or offset, not {value!r}")
    if value in ("Z", "UTC", "GMT"):
        return UTC
    offset = _OFFSET.fullmatch(value)
    if offset is not None:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=18) or int(minutes or 0) > 59:
            raise QueryError(f"time_zone {value!r} is out of range")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Without the zone database the zone cannot be resolved here; Elasticsearch may know it.
        raise UnsupportedQuery("filter range time_zone", value) from None


def _epoch_millis_allowed(params: Mapping[str, Any]) -> bool:
    """Whether a range's ``format`` (default: the field's ``strict_date_optional_time||epoch_millis``) reads
    numbers as epoch milliseconds; UnsupportedQuery for a format shellwatch does not parse."""
    fmt = params.get("format")
    if fmt is None:
        return True
    names = str(fmt).split("||")
    others = sorted(set(names) - _ISO_FORMATS - {"epoch_millis"})
    if others:
        raise UnsupportedQuery("filter range format", "||".join(others))
    return "epoch_millis" in names


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _term(field: str, value: Any, insensitive: bool) -> Node:
    kind = field_type(field)
    if kind == "text":
        raise UnsupportedQuery("filter term on a text field", field)
    boolean = value if isinstance(value, bool) else None
    if insensitive and kind in ("keyword", "wildcard", "unknown"):
        return Equals(base_field(field), keyword_forms(_text(value), boolean), Case.INSENSITIVE)
    return match_test(field, _text(value), phrase=False, boolean=boolean)


def _wildcard(field: str, pattern: str, insensitive: bool) -> Node:
    kind = field_type(field)
    if kind not in ("keyword", "wildcard", "unknown"):
        raise UnsupportedQuery(f"filter wildcard on a {kind} field", field)
    case = Case.INSENSITIVE if insensitive or is_caseless(field) else Case.SENSITIVE
    return Wildcard(base_field(field), (pattern,), case)


def _clauses(body: Mapping[str, Any], key: str, depth: int) -> list[Node]:
    value = body.get(key)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [compile_dsl(_object(item, key), depth + 1) for item in items]


def _bool(body: Mapping[str, Any], depth: int) -> Node:
    unknown = sorted(set(body) - {"must", "filter", "should", "must_not", "minimum_should_match", "boost", "_name"})
    if unknown:
        raise UnsupportedQuery("filter bool option", ", ".join(unknown))
    required = _clauses(body, "must", depth) + _clauses(body, "filter", depth)
    should = _clauses(body, "should", depth)
    excluded = _clauses(body, "must_not", depth)
    # Elasticsearch: with no must/filter clause at least one should clause must match, else none need to.
    minimum = body.get("minimum_should_match", 0 if required else 1)
    if should:
        if minimum in (0, "0", "0%"):
            pass
        elif minimum in (1, "1") or (minimum == "100%" and len(should) == 1):
            required.append(_any_of(should))
        elif minimum in (len(should), str(len(should)), "100%"):
            required.extend(should)
        else:
            raise UnsupportedQuery("filter bool minimum_should_match", str(minimum))
    required.extend(Not(test) for test in excluded)
    if not required:
        return TRUE
    return required[0] if len(required) == 1 else And(tuple(required))


def _any_of(tests: list[Node]) -> Node:
    return tests[0] if len(tests) == 1 else Or(tuple(tests))
