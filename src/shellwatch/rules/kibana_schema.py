"""Kibana's rule schema: a mapping with Kibana's field names -> a validated Rule, or why not.

Elastic's detection-rules TOML (its ``[rule]`` table) and Kibana's rule JSON / saved-objects export use the
same field names, so both loaders hand their rule mapping to :func:`outcome_from_kibana_fields`. It checks the
fields Kibana requires and their types, then compiles the query: EQL through
:func:`shellwatch.query.eql.parse_eql`; the query of ``query``, ``new_terms`` and ``threshold`` rules through
:func:`shellwatch.query.kql.parse_kql` (language ``kuery``, Kibana's default) or
:func:`shellwatch.query.lucene.parse_lucene` (``lucene``, its plain subset). The rule's Kibana ``filters``
(:mod:`shellwatch.query.kibana_filters`) are joined to the query with AND, as Kibana's search does. Every other
rule type (esql, machine_learning, threat_match) is reported as unsupported with its type and language named.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import FALSE, TRUE, And, Case, Equals, Node
from shellwatch.rules.attack import technique_reference
from shellwatch.rules.model import AttackEntry, Rule, RuleError, RuleSource, Technique, Threat
from shellwatch.rules.outcome import LoadOutcome, Status

REQUIRED_FIELDS = ("rule_id", "name", "description", "type", "risk_score", "severity")
"""Fields every Kibana rule must have (Kibana's rule schema marks them required)."""

# The event category an EQL query opens with (``info where ...``), after any leading comments.
_QUERY_CATEGORY = re.compile(r"(?:\s+|//[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z_][A-Za-z0-9_]*)\s+where\b", re.DOTALL)


def outcome_from_kibana_fields(
    fields: Mapping[str, Any], source: RuleSource, *, status: str | None = None, line: int | None = None
) -> LoadOutcome:
    """Validate a Kibana rule mapping and compile its query.

    ``status`` is the rule's maturity or status when the container gives one (detection-rules'
    ``[metadata] maturity``); ``line`` is where the rule starts in its file, for messages.
    """
    rule_id = fields.get("rule_id") if isinstance(fields.get("rule_id"), str) else None
    name = fields.get("name") if isinstance(fields.get("name"), str) else None
    language = fields.get("language") if isinstance(fields.get("language"), str) else None

    def outcome(status: Status, reason: str = "", rule: Rule | None = None) -> LoadOutcome:
        return LoadOutcome(
            path=source.path,
            index=source.index,
            line=line,
            status=status,
            reason=reason,
            rule_id=rule_id,
            name=name,
            language=language,
            rule=rule,
        )

    def error(reason: str) -> LoadOutcome:
        return outcome("error", reason)

    def unsupported(reason: str) -> LoadOutcome:
        return outcome("unsupported", reason)

    try:
        metadata = _metadata(fields, status)
        # Building the rule with a placeholder query validates the metadata whatever the rule type, so an
        # unsupported rule with a bad severity is reported as the error it is.
        Rule(ir=FALSE, source=source, **metadata)
    except RuleError as exc:
        return error(str(exc))

    rule_type = metadata["type"]
    if rule_type in QUERY_RULE_TYPES:
        compiled = _compile_query_rule(rule_type, language, metadata["query"])
    elif rule_type == "eql":
        compiled = _compile_eql_rule(fields, language, metadata["query"])
    else:
        detail = f"rule type {rule_type!r}"
        if language and language != rule_type:
            detail += f" (language {language!r})"
        return unsupported(detail)
    if isinstance(compiled, LoadOutcome):
        return outcome(compiled.status, compiled.reason)
    from shellwatch.query.kibana_filters import compile_filters

    try:
        filters = compile_filters(metadata["filters"])
    except UnsupportedQuery as exc:
        return unsupported(str(exc))
    except QueryError as exc:
        return error(str(exc))
    ir = compiled if filters == TRUE else And((compiled, filters))
    rule = Rule(ir=ir, source=source, **metadata)
    return outcome("ok", rule=rule)


QUERY_RULE_TYPES = ("query", "new_terms", "threshold")
"""Rule types whose events are found by a KQL or Lucene query (new_terms and threshold then group them)."""


def _failed(status: Status, reason: str) -> LoadOutcome:
    """A compile failure, carried back to :func:`outcome_from_kibana_fields`, which fills in the rule's names."""
    return LoadOutcome(path="", status=status, reason=reason)


def _compile_query_rule(rule_type: str, language: str | None, query: str) -> Node | LoadOutcome:
    """The IR of a query / new_terms / threshold rule's query: KQL (Kibana's default language) or plain Lucene."""
    if language in (None, "kuery"):
        from shellwatch.query.kql import parse_kql

        parse = parse_kql
    elif language == "lucene":
        from shellwatch.query.lucene import parse_lucene

        parse = parse_lucene
    else:
        return _failed("unsupported", f"rule type {rule_type!r} (language {language!r})")
    try:
        return parse(query)
    except UnsupportedQuery as exc:
        return _failed("unsupported", str(exc))
    except QueryError as exc:
        return _failed("error", f"query: {exc}")


def _compile_eql_rule(fields: Mapping[str, Any], language: str | None, query: str) -> Node | LoadOutcome:
    if language not in (None, "eql"):
        return _failed("error", f"an eql rule has language {language!r}")
    category_field = fields.get("event_category_override")
    if category_field is not None and not isinstance(category_field, str):
        return _failed("error", "event_category_override must be a string")

    # The query front end is imported here, not at module load, so listing or showing metadata stays cheap.
    from shellwatch.query.eql import parse_eql

    try:
        ir = parse_eql(query)
    except UnsupportedQuery as exc:
        return _failed("unsupported", str(exc))
    except QueryError as exc:
        return _failed("error", f"query: {exc}")
    if category_field:
        overridden = with_category_field(ir, query, category_field)
        if overridden is None:
            return _failed("unsupported", f"event_category_override ({category_field!r}) on this query")
        ir = overridden
    return ir


def with_category_field(ir: Node, query: str, category_field: str) -> Node | None:
    """``ir`` with its event-category test moved to ``category_field`` (Kibana's ``event_category_override``).

    Elasticsearch EQL reads a query's category (``info where ...``) from the search's ``event_category_field``,
    which Kibana sets from the rule's ``event_category_override``: the same exact term test, on another field.
    :func:`~shellwatch.query.eql.parse_eql` places that test first (the whole IR, or the first child of its
    top ``And``); it is moved only when it is found exactly there, else None (the rule is then reported
    unsupported rather than run with a guessed meaning).
    """
    from shellwatch.query.eql import CATEGORY_FIELD

    match = _QUERY_CATEGORY.match(query)
    if match is None:
        return None
    category = match.group(1)
    if category == "any" or category_field == CATEGORY_FIELD:
        return ir
    expected = Equals(CATEGORY_FIELD, (category,), Case.SENSITIVE)
    moved = Equals(category_field, (category,), Case.SENSITIVE)
    if ir == expected:
        return moved
    if isinstance(ir, And) and ir.children and ir.children[0] == expected:
        return And((moved, *ir.children[1:]))
    return None


def _metadata(fields: Mapping[str, Any], status: str | None) -> dict[str, Any]:
    """Every Rule field but ``ir`` and ``source``, type-checked; raises RuleError naming the faulty field."""
    missing = [key for key in REQUIRED_FIELDS if key not in fields]
    rule_type = fields.get("type")
    if rule_type == "eql" and "query" not in fields:
        missing.append("query")
    if missing:
        raise RuleError(f"missing required field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    language = _optional_str(fields, "language")
    return {
        "rule_id": _str(fields, "rule_id"),
        "name": _str(fields, "name"),
        "description": _str(fields, "description"),
        "type": _str(fields, "type"),
        "language": language if language is not None else _str(fields, "type"),
        "query": _optional_str(fields, "query") or "",
        "severity": _str(fields, "severity"),
        "risk_score": _int(fields, "risk_score"),
        "index": _str_tuple(fields, "index"),
        "interval": _optional_str(fields, "interval") or "5m",
        "from_": _optional_str(fields, "from") or "now-6m",
        "max_signals": _int(fields, "max_signals", 100),
        "tags": _str_tuple(fields, "tags"),
        "threat": _threats(fields.get("threat", [])),
        "note": _optional_str(fields, "note"),
        "false_positives": _str_tuple(fields, "false_positives"),
        "references": _str_tuple(fields, "references"),
        "author": _str_tuple(fields, "author"),
        "license": _optional_str(fields, "license"),
        "version": _int(fields, "version", 1),
        "exceptions_list": _mappings(fields, "exceptions_list"),
        "timestamp_override": _optional_str(fields, "timestamp_override"),
        "building_block_type": _optional_str(fields, "building_block_type"),
        "status": status,
        "filters": _mappings(fields, "filters"),
        "alert_suppression": _optional_mapping(fields, "alert_suppression"),
        "new_terms_fields": _new_terms_fields(fields),
        "history_window_start": _history_window_start(fields),
        "threshold": _optional_mapping(fields, "threshold"),
    }


def _optional_mapping(fields: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RuleError(f"{key} must be an object, not {_kind(value)}")
    return value


def _new_terms_fields(fields: Mapping[str, Any]) -> tuple[str, ...]:
    """Kibana's ``new_terms_fields``; detection-rules TOML writes it ``[rule.new_terms] field = "new_terms_fields"
    value = [...]``."""
    if "new_terms_fields" in fields:
        return _str_tuple(fields, "new_terms_fields")
    new_terms = fields.get("new_terms")
    if isinstance(new_terms, Mapping) and new_terms.get("field") == "new_terms_fields":
        return _str_tuple(new_terms, "value")
    return ()


def _history_window_start(fields: Mapping[str, Any]) -> str | None:
    """Kibana's ``history_window_start``; detection-rules TOML writes it as
    ``[[rule.new_terms.history_window_start]] field = "history_window_start" value = "now-7d"``."""
    if "history_window_start" in fields:
        return _optional_str(fields, "history_window_start")
    new_terms = fields.get("new_terms")
    if isinstance(new_terms, Mapping):
        for entry in new_terms.get("history_window_start") or ():
            if isinstance(entry, Mapping) and entry.get("field") == "history_window_start":
                return _optional_str(entry, "value")
    return None


def _str(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str):
        raise RuleError(f"{key} must be a string, not {_kind(value)}")
    return value


def _optional_str(fields: Mapping[str, Any], key: str) -> str | None:
    return None if fields.get(key) is None else _str(fields, key)


def _int(fields: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = fields.get(key, default)
    # bool is an int subclass in Python; Kibana's schema does not accept true as a number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise RuleError(f"{key} must be an integer, not {_kind(value)}")
    return value


def _str_tuple(fields: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = fields.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RuleError(f"{key} must be a list of strings")
    return tuple(value)


def _mappings(fields: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    value = fields.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise RuleError(f"{key} must be a list of objects")
    return tuple(value)


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object"
    )


def _threats(value: Any) -> tuple[Threat, ...]:
    if not isinstance(value, list):
        raise RuleError("threat must be a list")
    threats: list[Threat] = []
    for position, item in enumerate(value):
        where = f"threat[{position}]"
        if not isinstance(item, Mapping):
            raise RuleError(f"{where} must be an object")
        framework = item.get("framework")
        if not isinstance(framework, str):
            raise RuleError(f"{where}.framework must be a string")
        techniques = item.get("technique", [])
        if not isinstance(techniques, list):
            raise RuleError(f"{where}.technique must be a list")
        threats.append(
            Threat(
                framework=framework,
                tactic=_entry(item.get("tactic"), f"{where}.tactic", _tactic_reference),
                techniques=tuple(
                    _technique(technique, f"{where}.technique[{i}]") for i, technique in enumerate(techniques)
                ),
            )
        )
    return tuple(threats)


def _technique(value: Any, where: str) -> Technique:
    entry = _entry(value, where, technique_reference)
    subs = value.get("subtechnique", [])
    if not isinstance(subs, list):
        raise RuleError(f"{where}.subtechnique must be a list")
    return Technique(
        id=entry.id,
        name=entry.name,
        reference=entry.reference,
        subtechniques=tuple(
            _entry(sub, f"{where}.subtechnique[{i}]", technique_reference) for i, sub in enumerate(subs)
        ),
    )


def _tactic_reference(tactic_id: str) -> str:
    return f"https://attack.mitre.org/tactics/{tactic_id}/"


def _entry(value: Any, where: str, default_reference: Callable[[str], str]) -> AttackEntry:
    if not isinstance(value, Mapping):
        raise RuleError(f"{where} must be an object")
    entry_id, name, reference = value.get("id"), value.get("name"), value.get("reference")
    if not isinstance(entry_id, str) or not entry_id:
        raise RuleError(f"{where}.id must be a non-empty string")
    if not isinstance(name, str):
        raise RuleError(f"{where}.name must be a string")
    if reference is None:
        reference = default_reference(entry_id)
    elif not isinstance(reference, str):
        raise RuleError(f"{where}.reference must be a string")
    return AttackEntry(id=entry_id, name=name, reference=reference)
