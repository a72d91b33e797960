"""Sigma YAML files (one rule, or several YAML documents) -> rule outcomes, through pySigma.

Multi-document files follow pySigma's ``SigmaCollection.from_dicts`` (pySigma 1.5): ``action: global`` sets a
template merged into every later document (its values win, as in pySigma), ``action: reset`` drops it,
``action: repeat`` merges the document into the previous rule and yields a new rule. The loop is written out
here, rather than calling ``SigmaCollection``, so that each document gets its own outcome (one broken document
does not take the file down) and so that each rule's merged document is at hand for its derived id.

Metadata mapping to the Kibana-shaped :class:`~shellwatch.rules.model.Rule`:

* ``title`` -> name; ``id`` -> rule_id. A rule without ``id`` gets :func:`derived_rule_id`: the UUIDv5, under
  :data:`SIGMA_RULE_ID_NAMESPACE`, of the rule's merged document (without its ``action`` key) serialized as
  canonical JSON -- keys sorted, separators ``,`` and ``:``, non-ASCII characters kept, dates and other
  non-JSON scalars as ``str()`` -- so the same rule gets the same id on every run and machine, whatever its
  formatting or comments, and any change to its content gives a new id.
* ``level`` -> severity and risk_score (:data:`~shellwatch.rules.model.SIGMA_LEVEL_SEVERITY`); a rule without
  a level is treated as informational (low, 21), the lowest level Sigma defines.
* ``attack.*`` tags -> threat (:func:`shellwatch.rules.attack.threat_from_sigma_tags`); every tag is kept as a
  tag.
* ``author`` split on commas; ``falsepositives``, ``references``, ``status``, ``license`` and ``logsource``
  (category, product, service) kept; query = the ``detection`` section dumped as YAML.
* interval / from / max_signals are Kibana's defaults (5m, now-6m, 100); version 1.

Sigma correlation rules are reported unsupported. A Sigma filter (meta rule, ``filter:`` instead of
``detection:``; :mod:`shellwatch.rules.sigma_filters`) is checked here and gets an ok outcome without a rule
(language ``sigma-filter``) or an error naming its line; :func:`~shellwatch.rules.loader.load_rules` reads it again
with :func:`sigma_filters_in` and applies it to the rules of the load. A rule whose logsource the field mapping only
partly supports still loads (status ok) with the reason noted, because its fields may still match events that
carry them; a rule the query front end cannot map at all is unsupported with its reason.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from sigma.collection import deep_dict_update
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader

from shellwatch.query.errors import QueryError, UnsupportedQuery

# Imported before any rule is parsed: importing it registers the spec's utf16 modifiers with pySigma, which
# parses modifiers while building a SigmaRule.
from shellwatch.query.sigma import logsource_support, sigma_rule_to_ir
from shellwatch.rules.attack import threat_from_sigma_tags
from shellwatch.rules.model import SIGMA_LEVEL_SEVERITY, Rule, RuleError, RuleSource
from shellwatch.rules.outcome import LoadOutcome
from shellwatch.rules.sigma_filters import FILTER_LANGUAGE, FilterError, SigmaFilter, parse_sigma_filter
from shellwatch.rules.yaml_limits import yaml_problem

SIGMA_RULE_ID_NAMESPACE = uuid.UUID("c3ebb530-12de-4a2a-a4ee-52d91077f7bf")
"""UUIDv5 namespace of the ids derived for Sigma rules that have none (see :func:`derived_rule_id`)."""

DEFAULT_LEVEL = "informational"
"""The level assumed for a Sigma rule that states none."""


def derived_rule_id(document: Mapping[str, Any]) -> str:
    """The stable id of a Sigma rule without one: UUIDv5 of its merged document as canonical JSON."""
    content = {key: value for key, value in document.items() if key != "action"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(uuid.uuid5(SIGMA_RULE_ID_NAMESPACE, canonical))


DocumentKind = Literal["rule", "correlation", "filter", "not-a-mapping", "unknown-action"]


def _read_documents(text: str, path: str) -> list[Any] | LoadOutcome:
    """The file's YAML documents, or the error outcome that says why they cannot be read."""
    problem = yaml_problem(text)
    if problem is not None:
        return LoadOutcome(path=path, status="error", reason=f"refused YAML: {problem}")
    try:
        return list(yaml.load_all(text, Loader=SigmaYAMLLoader))
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        # ValueError: a scalar YAML resolves but cannot build (``date: 2020-13-45``); RecursionError: absurd nesting.
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return LoadOutcome(
            path=path,
            status="error",
            reason=f"invalid YAML: {problem}",
            line=mark.line + 1 if mark is not None else None,
        )


def _sigma_documents(documents: list[Any]) -> Iterator[tuple[int, DocumentKind, Any]]:
    """(index, kind, document) of every document that is a rule, meta rule or fault; rules come merged with the
    global template (or the previous rule, for ``action: repeat``), as pySigma's ``SigmaCollection.from_dicts``
    merges them. Filters and correlations are never merged (pySigma does not merge them either)."""
    global_rule: dict[str, Any] = {}
    previous_rule: dict[str, Any] = {}
    for index, document in enumerate(documents):
        if document is None:  # an empty document, e.g. after a trailing '---'
            continue
        if not isinstance(document, dict):
            yield index, "not-a-mapping", document
            continue
        action = document.get("action")
        if action is None:
            if "correlation" in document:
                yield index, "correlation", document
            elif "filter" in document:
                yield index, "filter", document
            else:
                merged = deep_dict_update(document, global_rule)
                previous_rule = merged
                yield index, "rule", merged
        elif action == "global":
            del document["action"]
            global_rule = document
            previous_rule = global_rule
        elif action == "reset":
            global_rule = {}
        elif action == "repeat":
            previous_rule = deep_dict_update(previous_rule, document)
            yield index, "rule", previous_rule
        else:
            yield index, "unknown-action", document


def load_sigma_yaml(text: str, path: str) -> list[LoadOutcome]:
    """An outcome for every rule (or broken document) in a Sigma YAML file; ``path`` names it in messages."""
    documents = _read_documents(text, path)
    if isinstance(documents, LoadOutcome):
        return [documents]
    outcomes: list[LoadOutcome] = []
    lines: list[dict[str, int]] | None = None
    for index, kind, document in _sigma_documents(documents):
        if kind == "rule":
            outcomes.append(_rule_outcome(document, path, index))
        elif kind == "filter":
            if lines is None:
                lines = document_lines(text)
            outcomes.append(_filter_outcome(document, path, index, lines[index] if index < len(lines) else {}))
        elif kind == "correlation":
            outcomes.append(_unsupported(path, index, "Sigma correlation rule", document))
        elif kind == "not-a-mapping":
            outcomes.append(_error(path, index, "a Sigma document must be a YAML mapping", document))
        else:
            outcomes.append(
                _error(path, index, f"unknown Sigma collection action {document.get('action')!r}", document)
            )
    if not outcomes:
        outcomes.append(LoadOutcome(path=path, status="error", reason="no Sigma rule in the file"))
    return outcomes


def sigma_filters_in(text: str, path: str) -> dict[int, SigmaFilter | LoadOutcome]:
    """The file's Sigma filters by document index, each a filter or the outcome that says why it is not one."""
    documents = _read_documents(text, path)
    if isinstance(documents, LoadOutcome):
        return {}
    found: dict[int, SigmaFilter | LoadOutcome] = {}
    lines: list[dict[str, int]] | None = None
    for index, kind, document in _sigma_documents(documents):
        if kind != "filter":
            continue
        if lines is None:
            lines = document_lines(text)
        where = lines[index] if index < len(lines) else {}
        try:
            found[index] = parse_sigma_filter(document, path=path, index=index, lines=where)
        except FilterError as exc:
            found[index] = _filter_problem(document, path, index, exc, where)
    return found


_NAME_KEY = re.compile(r"""^\s*["']?name["']?\s*:""", re.MULTILINE)


def sigma_rule_names(text: str) -> dict[int, str]:
    """The Sigma ``name`` attribute of each rule of a file, by document index (rules without one left out).

    Filters may name rules by it (pySigma resolves a reference that is no UUID against rule names). A file
    where no line starts with a ``name`` key is not parsed.
    """
    if _NAME_KEY.search(text) is None:
        return {}
    documents = _read_documents(text, "")
    if isinstance(documents, LoadOutcome):
        return {}
    return {
        index: document["name"]
        for index, kind, document in _sigma_documents(documents)
        if kind == "rule" and isinstance(document.get("name"), str)
    }


def document_lines(text: str) -> list[dict[str, int]]:
    """Per YAML document: 1-based lines of the document (key ``""``), of its top-level keys, and of the keys of
    its ``filter`` section (``filter.<key>``). Only read for files holding a filter, to place its errors."""
    found: list[dict[str, int]] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=SigmaYAMLLoader))
    except (yaml.YAMLError, ValueError, RecursionError):
        return found
    for node in nodes:
        lines: dict[str, int] = {"": node.start_mark.line + 1} if node is not None else {}
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                lines.setdefault(str(key.value), key.start_mark.line + 1)
                if key.value == "filter" and isinstance(value, yaml.MappingNode):
                    for inner, _ in value.value:
                        if isinstance(inner, yaml.ScalarNode):
                            lines.setdefault(f"filter.{inner.value}", inner.start_mark.line + 1)
        found.append(lines)
    return found


def _filter_outcome(document: dict[str, Any], path: str, index: int, lines: Mapping[str, int]) -> LoadOutcome:
    try:
        sigma_filter = parse_sigma_filter(document, path=path, index=index, lines=lines)
    except FilterError as exc:
        return _filter_problem(document, path, index, exc, lines)
    return LoadOutcome(
        path=path,
        status="ok",
        reason="Sigma filter (meta rule): applied to the rules it names when loaded with them",
        index=index,
        line=sigma_filter.line,
        rule_id=sigma_filter.filter_id,
        name=sigma_filter.title,
        language=FILTER_LANGUAGE,
    )


def _filter_problem(
    document: dict[str, Any], path: str, index: int, exc: FilterError, lines: Mapping[str, int]
) -> LoadOutcome:
    filter_id = document.get("id")
    return LoadOutcome(
        path=path,
        status="unsupported" if exc.unsupported else "error",
        reason=str(exc) if str(exc).startswith("Sigma filter") else f"Sigma filter: {exc}",
        index=index,
        line=exc.line if exc.line is not None else lines.get(""),
        rule_id=str(filter_id) if filter_id is not None else None,
        name=_title(document),
        language=FILTER_LANGUAGE,
    )


def _rule_outcome(document: dict[str, Any], path: str, index: int) -> LoadOutcome:
    rule_id = derived_rule_id(document) if document.get("id") is None else str(document["id"])
    try:
        sigma_rule = SigmaRule.from_dict(document, collect_errors=True, source=SigmaRuleLocation(Path(path)))
    except (SigmaError, TypeError, ValueError, AttributeError, KeyError) as exc:
        # pySigma validates most malformed input into rule.errors, but a few shapes (a list where a mapping
        # belongs deep in a detection) still raise.
        return _error(path, index, _sigma_message(exc), document, rule_id)
    if sigma_rule.errors:
        return _error(path, index, _sigma_message(sigma_rule.errors[0]), document, rule_id)

    try:
        ir = sigma_rule_to_ir(sigma_rule)
    except UnsupportedQuery as exc:
        return _unsupported(path, index, str(exc), document, rule_id)
    except (QueryError, SigmaError) as exc:
        return _error(path, index, f"detection: {_sigma_message(exc)}", document, rule_id)
    note = _logsource_note(sigma_rule)

    level = sigma_rule.level.name.lower() if sigma_rule.level is not None else DEFAULT_LEVEL
    severity, risk_score = SIGMA_LEVEL_SEVERITY[level]
    tags = tuple(str(tag) for tag in sigma_rule.tags)
    try:
        rule = Rule(
            rule_id=rule_id,
            name=sigma_rule.title,
            description=sigma_rule.description or "",
            type="sigma",
            language="sigma",
            query=_detection_text(document.get("detection")),
            ir=ir,
            source=RuleSource(path=path, index=index),
            severity=severity,
            risk_score=risk_score,
            tags=tags,
            threat=threat_from_sigma_tags(tags),
            false_positives=tuple(str(item) for item in sigma_rule.falsepositives or () if item is not None),
            references=tuple(str(item) for item in sigma_rule.references or () if item is not None),
            author=tuple(part.strip() for part in (sigma_rule.author or "").split(",") if part.strip()),
            license=sigma_rule.license,
            status=sigma_rule.status.name.lower() if sigma_rule.status is not None else None,
            logsource={
                key: value
                for key in ("category", "product", "service")
                if (value := getattr(sigma_rule.logsource, key)) is not None
            },
        )
    except (RuleError, yaml.YAMLError) as exc:
        return _error(path, index, str(exc), document, rule_id)
    return LoadOutcome(
        path=path,
        status="ok",
        reason=note or "",
        index=index,
        rule_id=rule_id,
        name=rule.name,
        language="sigma",
        rule=rule,
    )


def _logsource_note(sigma_rule: SigmaRule) -> str | None:

    return logsource_support(sigma_rule)


def _sigma_message(exc: BaseException) -> str:
    # SigmaError's str() appends the absolute path of the file; the outcome names the file already.
    if isinstance(exc, SigmaError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _title(document: Any) -> str | None:
    title = document.get("title") if isinstance(document, Mapping) else None
    return title if isinstance(title, str) else None


def _error(path: str, index: int, reason: str, document: Any, rule_id: str | None = None) -> LoadOutcome:
    return LoadOutcome(
        path=path,
        status="error",
        reason=reason,
        index=index,
        rule_id=rule_id,
        name=_title(document),
        language="sigma",
    )


def _unsupported(path: str, index: int, reason: str, document: Any, rule_id: str | None = None) -> LoadOutcome:
    if rule_id is None and isinstance(document, Mapping) and isinstance(document.get("id"), str):
        rule_id = document["id"]
    return LoadOutcome(
        path=path,
        status="unsupported",
        reason=reason,
        index=index,
        rule_id=rule_id,
        name=_title(document),
        language="sigma",
    )


def _detection_text(detection: Any) -> str:
    """The rule's detection as YAML text (the rule's query, as shown to users)."""
    # libyaml's dumper writes the same text as PyYAML's, a quarter faster, except that it escapes characters
    # beyond the Basic Multilingual Plane: PyYAML's text is kept there.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(detection, Dumper=dumper, sort_keys=False, allow_unicode=True)
    if "\\U" in text:
        text = yaml.safe_dump(detection, sort_keys=False, allow_unicode=True)
    return text
