"""Sigma filters (meta rules): a filter document read into a :class:`SigmaFilter`, and filters applied to the rules
they name.

The definition followed is the Sigma Filters specification v2 (https://github.com/SigmaHQ/sigma-specification,
``specification/sigma-filters-specification.md``; SigmaHQ's guide https://sigmahq.io/docs/meta/filters.html) as
pySigma 1.5 implements it (``sigma/filters.py``, ``SigmaFilter`` and ``SigmaGlobalFilter``):

* A filter is a YAML document with ``title``, optional ``id``, a mandatory ``logsource`` and a ``filter`` section:
  ``rules`` (one rule reference, a list of them, or ``any``; an empty list means ``any``), detection items as in a
  rule's ``detection``, and one ``condition`` (a string).
* A reference names a rule by ``id`` when it reads as a UUID, otherwise by the rule's ``name`` attribute (not its
  title): pySigma's ``SigmaCollection.__getitem__``. A Sigma rule without ``id`` is named here by the id
  shellwatch derived for it (:func:`shellwatch.rules.sigma_yaml.derived_rule_id`), the id every command shows.
* A filter applies to a rule it names only when the filter's log source covers the rule's: each of category,
  product and service the filter states equals the rule's (``SigmaLogSource.__contains__``); otherwise it is
  silently not applied. ``rules: any`` applies it to every rule whose log source it covers.
* Applying it turns the rule's condition into ``(rule condition) and (filter condition)``: the filter's condition is
  used as written, so an exclusion says ``not selection`` itself. The filter's detection items are renamed with one
  prefix starting with ``_`` and its condition rewritten token by token as pySigma does, so ``them`` in a filter
  means all of the filter's items, and a rule's own ``them`` never sees them.
* The filter's items become part of the rule, so their fields are mapped with the *rule's* log source: here the
  filter's detection is compiled by the same Sigma front end (:func:`shellwatch.query.sigma.sigma_rule_to_ir`) once
  per distinct rule log source, and the rule's IR becomes the conjunction of both.

Filters are applied after the compiled-rule cache (:mod:`shellwatch.rules.loader`), so a cached rule never misses
the filters of the load it is part of. Only Sigma rules are filtered: pySigma applies filters to ``SigmaRule``
objects only (not to correlation rules), and Elastic rules have no Sigma log source.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import FALSE, TRUE, And, Node
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.rules.outcome import LoadOutcome, LoadResult

FILTER_LANGUAGE = "sigma-filter"
"""``LoadOutcome.language`` of a Sigma filter document's outcome."""

LOGSOURCE_KEYS = ("category", "product", "service")
"""The log source attributes a filter's log source is compared on."""

ITEM_PREFIX = "_filter"
"""Prefix of the filter's renamed detection items; like pySigma's random ``_filt_...`` prefix it starts with ``_``,
which keeps the items out of the rule's ``them`` and puts every one of them in the filter's own ``them``."""

_CONDITION_KEYWORDS = frozenset({"not", "and", "or", "all", "any", "of", "1"})
_CONDITION_TOKEN = re.compile(r"[a-zA-Z*][a-zA-Z0-9*_-]*")


class FilterError(ValueError):
    """A filter document is invalid; ``line`` (1-based) says where, when known."""

    def __init__(self, message: str, line: int | None = None, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.line = line
        self.unsupported = unsupported


@dataclass(frozen=True, kw_only=True, slots=True)
class SigmaFilter:
    """One Sigma filter as written: what it names, where it applies, and its detection."""

    filter_id: str | None
    title: str
    logsource: Mapping[str, str]
    """The filter's log source: those of category, product and service it states."""
    references: tuple[str, ...] | None
    """Rule ids or names from ``filter.rules``; None for ``any``."""
    detection: Mapping[str, Any]
    """The ``filter`` section without ``rules``: its detection items and ``condition``, as written."""
    source: RuleSource
    line: int | None = None
    """1-based line where the document starts."""

    @property
    def label(self) -> str:
        """The filter's id, or its title when it has none."""
        return self.filter_id or self.title

    @property
    def where(self) -> str:
        text = str(self.source)
        return f"{text}:{self.line}" if self.line is not None else text

    def covers(self, logsource: Mapping[str, str]) -> bool:
        """Whether the filter's log source covers a rule's (each attribute the filter states is the rule's)."""
        return all(logsource.get(key) == value for key, value in self.logsource.items())

    def names(self, rule: Rule, sigma_name: str | None) -> bool:
        """Whether ``filter.rules`` names the rule (True for ``any``), by id or by Sigma ``name``."""
        if self.references is None:
            return True
        return any(reference_names(reference, rule.rule_id, sigma_name) for reference in self.references)


def reference_names(reference: str, rule_id: str, sigma_name: str | None) -> bool:
    """Whether one rule reference names a rule: as a UUID against its id, else as a name against its Sigma
    ``name`` (pySigma's ``SigmaCollection.__getitem__``: UUID first, the name only when the reference is no
    UUID)."""
    try:
        wanted = uuid.UUID(reference)
    except ValueError:
        return sigma_name is not None and reference == sigma_name
    try:
        return uuid.UUID(rule_id) == wanted
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------------------
# Reading a filter document.


def parse_sigma_filter(
    document: Mapping[str, Any], *, path: str, index: int, lines: Mapping[str, int] | None = None
) -> SigmaFilter:
    """The filter a YAML document describes; raises :class:`FilterError` naming the line of the fault.

    ``lines`` maps ``""`` (the document), top-level keys and ``filter.<key>`` to 1-based lines, for messages.
    The filter's detection is compiled once against its own log source, so that a condition or modifier error
    is reported here, with the filter, rather than when it meets a rule.
    """
    # pySigma is imported here, not with the module: reading a load's filter report needs no parser.
    from sigma.exceptions import SigmaError, SigmaRuleLocation
    from sigma.filters import SigmaFilter as PySigmaFilter

    lines = lines or {}
    document_line = lines.get("")
    try:
        parsed = PySigmaFilter.from_dict(dict(document), collect_errors=True, source=SigmaRuleLocation(Path(path)))
    except (SigmaError, TypeError, ValueError, AttributeError, KeyError) as exc:
        # pySigma collects most faults, but some shapes (a list where a mapping belongs) still raise.
        raise FilterError(_message(exc), _error_line(exc, lines)) from exc
    if parsed.errors:
        error = parsed.errors[0]
        raise FilterError(_message(error), _error_line(error, lines))

    section = document["filter"]
    references = _references(section.get("rules"), lines)
    logsource = {key: value for key in LOGSOURCE_KEYS if isinstance(value := getattr(parsed.logsource, key), str)}
    sigma_filter = SigmaFilter(
        filter_id=str(parsed.id) if parsed.id is not None else None,
        title=parsed.title,
        logsource=logsource,
        references=references,
        detection={key: value for key, value in section.items() if key != "rules"},
        source=RuleSource(path=path, index=index),
        line=document_line,
    )
    try:
        filter_ir(sigma_filter, logsource)
    except FilterError as exc:
        raise FilterError(
            str(exc), lines.get("filter.condition", lines.get("filter", document_line)), unsupported=exc.unsupported
        ) from exc
    return sigma_filter


def _references(rules: Any, lines: Mapping[str, int]) -> tuple[str, ...] | None:
    # pySigma accepts "any" (any case), one reference, or a list; an empty list means any. It would build a
    # reference from a number too and fail later, so references must be strings here.
    line = lines.get("filter.rules", lines.get("filter"))
    if isinstance(rules, str):
        return None if rules.lower() == "any" else (rules,)
    if isinstance(rules, list):
        if not rules:
            return None
        if not all(isinstance(reference, str) for reference in rules):
            raise FilterError("Sigma filter rules must be rule ids or names (strings)", line)
        return tuple(rules)
    raise FilterError("Sigma filter rules field must be 'any', a rule ID/name, or a list of rule IDs/names", line)


def _message(exc: BaseException) -> str:
    from sigma.exceptions import SigmaError

    # SigmaError's str() appends the absolute path of the file; the outcome names the file already.
    if isinstance(exc, SigmaError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def _error_line(error: BaseException, lines: Mapping[str, int]) -> int | None:
    from sigma.exceptions import (
        SigmaFilterConditionError,
        SigmaFilterError,
        SigmaFilterRuleReferenceError,
        SigmaIdentifierError,
        SigmaLogsourceError,
        SigmaTitleError,
    )

    key = ""
    if isinstance(error, SigmaFilterRuleReferenceError):
        key = "filter.rules" if "filter.rules" in lines else "filter"
    elif isinstance(error, SigmaFilterConditionError):
        key = "filter.condition" if "filter.condition" in lines else "filter"
    elif isinstance(error, SigmaLogsourceError):
        key = "logsource"
    elif isinstance(error, SigmaIdentifierError):
        key = "id"
    elif isinstance(error, SigmaTitleError):
        key = "title"
    elif isinstance(error, SigmaFilterError) or "filter" in lines:
        # Detection items: pySigma's errors do not say which item, the section is the place to look.
        key = "filter"
    return lines.get(key, lines.get(""))


# ------------------------------------------------------------------------------------------------------------
# Compiling a filter for a rule's log source.


def prefixed_detection(detection: Mapping[str, Any]) -> dict[str, Any]:
    """The filter's items renamed with :data:`ITEM_PREFIX` and its condition rewritten to match, token by token,
    as pySigma's ``SigmaFilter.apply_on_rule`` does (``them`` becomes ``<prefix>_*``, keywords stay)."""

    def rename(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.lower() in _CONDITION_KEYWORDS:
            return token
        if token == "them":
            return ITEM_PREFIX + "_*"
        return f"{ITEM_PREFIX}_{token}"

    renamed: dict[str, Any] = {
        f"{ITEM_PREFIX}_{name}": value for name, value in detection.items() if name != "condition"
    }
    condition = detection.get("condition")
    renamed["condition"] = _CONDITION_TOKEN.sub(rename, condition) if isinstance(condition, str) else condition
    return renamed


def filter_ir(sigma_filter: SigmaFilter, logsource: Mapping[str, str]) -> Node:
    """The filter's condition as IR, its fields mapped as in a rule of ``logsource`` (with that log source's
    condition, which the rule's IR holds already). Raises :class:`FilterError`."""
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    from shellwatch.query.sigma import sigma_rule_to_ir

    document = {
        "title": sigma_filter.title,
        "logsource": {key: value for key, value in logsource.items() if key in LOGSOURCE_KEYS},
        "detection": prefixed_detection(sigma_filter.detection),
    }
    try:
        rule = SigmaRule.from_dict(document, collect_errors=True)
        if rule.errors:
            raise FilterError(_unprefixed(_message(rule.errors[0])))
        return sigma_rule_to_ir(rule)
    except UnsupportedQuery as exc:
        raise FilterError(_unprefixed(str(exc)), unsupported=True) from exc
    except (QueryError, SigmaError, TypeError, ValueError, AttributeError, KeyError) as exc:
        if isinstance(exc, FilterError):
            raise
        raise FilterError(_unprefixed(_message(exc))) from exc


def _unprefixed(message: str) -> str:
    # Messages name the filter's items as the user wrote them.
    return message.replace(f"{ITEM_PREFIX}_", "")


def conjunction(nodes: Iterable[Node]) -> Node:
    """All of ``nodes`` as one flat And; a conjunct repeated (the log source condition both sides carry) is kept
    once, an always-true one dropped."""
    children: list[Node] = []
    for node in nodes:
        for child in node.children if isinstance(node, And) else (node,):
            if child == FALSE:
                return FALSE
            if child != TRUE and child not in children:
                children.append(child)
    if not children:
        return TRUE
    return children[0] if len(children) == 1 else And(tuple(children))


# ------------------------------------------------------------------------------------------------------------
# Applying the filters of a load.


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterApplication:
    """What one filter did in a load."""

    sigma_filter: SigmaFilter
    rule_ids: tuple[str, ...] = ()
    """The rules it was applied to, in load order."""
    not_covered: tuple[str, ...] = ()
    """Rules it names whose log source its own does not cover (not applied, as the specification says)."""
    failed: tuple[tuple[str, str], ...] = ()
    """(rule id, why) of rules it could not be applied to; those rules are not loaded."""

    @property
    def warning(self) -> str | None:
        """What a user should hear about: a filter that filtered nothing, or named rules it could not cover."""
        label = f"Sigma filter {self.sigma_filter.label!r} ({self.sigma_filter.where})"
        if self.not_covered:
            logsource = _logsource_text(self.sigma_filter.logsource)
            return (
                f"{label}: its log source ({logsource}) does not cover the log source of "
                f"{', '.join(self.not_covered)}: not applied there"
            )
        if not self.rule_ids and not self.failed:
            refs = self.sigma_filter.references
            named = "any rule of its log source" if refs is None else ", ".join(refs)
            return f"{label} names no loaded rule ({named})"
        return None

    def outcome(self) -> LoadOutcome:
        """The filter document's outcome in the load: ok, with what it did as the note."""
        sigma_filter = self.sigma_filter
        if self.rule_ids:
            count = len(self.rule_ids)
            reason = f"Sigma filter applied to {count} rule{'s' if count != 1 else ''}: {', '.join(self.rule_ids)}"
        else:
            reason = "Sigma filter applied to no rule"
        if (warning := self.warning) is not None:
            reason += f"; warning: {warning}"
        return LoadOutcome(
            path=sigma_filter.source.path,
            status="ok",
            reason=reason,
            index=sigma_filter.source.index,
            line=sigma_filter.line,
            rule_id=sigma_filter.filter_id,
            name=sigma_filter.title,
            language=FILTER_LANGUAGE,
        )


def _logsource_text(logsource: Mapping[str, str]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in logsource.items()) or "none"


@dataclass(frozen=True, slots=True)
class SigmaFilterReport:
    """Every filter of a load and what it did."""

    applications: tuple[FilterApplication, ...] = ()

    def for_rule(self, rule_id: str) -> tuple[SigmaFilter, ...]:
        """The filters applied to the rule with this id, in the order they were applied."""
        return tuple(a.sigma_filter for a in self.applications if rule_id in a.rule_ids)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(warning for a in self.applications if (warning := a.warning) is not None)


@dataclass(frozen=True, slots=True)
class FilteredLoadResult(LoadResult):
    """A load whose rules had Sigma filters applied, with the report of what each filter did."""

    sigma_filters: SigmaFilterReport = field(default_factory=SigmaFilterReport)


def sigma_filter_report(result: LoadResult) -> SigmaFilterReport:
    """The Sigma filters of a load (empty when it had none)."""
    return result.sigma_filters if isinstance(result, FilteredLoadResult) else SigmaFilterReport()


FilterSlot = SigmaFilter | LoadOutcome
"""A filter document read again after the cache: the filter, or the outcome that says why it cannot be used."""


def apply_sigma_filters(
    outcomes: Sequence[LoadOutcome],
    filters: Mapping[tuple[str, int], FilterSlot],
    sigma_name: Callable[[Rule], str | None],
) -> FilteredLoadResult:
    """The load with every filter applied to the Sigma rules it names and covers.

    ``filters`` holds, by (path, document index), each filter outcome's filter (or a replacement outcome);
    ``sigma_name`` gives a rule's Sigma ``name`` attribute and is asked only about rules a filter might name by
    name. Filters apply in load order (the order of pySigma's collection). A rule a filter cannot be applied to
    becomes an error (or unsupported) outcome: running it without the filter would raise what the filter
    silences.
    """
    # A file named twice in one load holds the same filters: each applies once.
    positions = dict.fromkeys(_position(o) for o in outcomes if _is_filter(o))
    active = [slot for position in positions if isinstance(slot := filters.get(position), SigmaFilter)]
    by_name = any(
        reference_names_by_name(reference) for f in active if f.references is not None for reference in f.references
    )
    applied: dict[int, list[str]] = {i: [] for i in range(len(active))}
    not_covered: dict[int, list[str]] = {i: [] for i in range(len(active))}
    failed: dict[int, list[tuple[str, str]]] = {i: [] for i in range(len(active))}
    compiled: dict[tuple[int, tuple[tuple[str, str], ...]], Node | FilterError] = {}

    result: list[LoadOutcome] = []
    for outcome in outcomes:
        if _is_filter(outcome):
            slot = filters.get(_position(outcome))
            # A filter's own outcome is replaced below, once what it did is known.
            result.append(slot if isinstance(slot, LoadOutcome) else outcome)
            continue
        rule = outcome.rule
        if rule is None or rule.language != "sigma" or not active:
            result.append(outcome)
            continue
        name = sigma_name(rule) if by_name else None
        conjuncts: list[Node] = []
        problem: FilterError | None = None
        problem_filter: SigmaFilter | None = None
        for number, sigma_filter in enumerate(active):
            if not sigma_filter.names(rule, name):
                continue
            if not sigma_filter.covers(rule.logsource):
                if sigma_filter.references is not None:
                    not_covered[number].append(rule.rule_id)
                continue
            key = (number, tuple(sorted(rule.logsource.items())))
            if key not in compiled:
                try:
                    compiled[key] = filter_ir(sigma_filter, rule.logsource)
                except FilterError as exc:
                    compiled[key] = exc
            node = compiled[key]
            if isinstance(node, FilterError):
                failed[number].append((rule.rule_id, str(node)))
                problem, problem_filter = problem or node, problem_filter or sigma_filter
                continue
            applied[number].append(rule.rule_id)
            conjuncts.append(node)
        if problem is not None and problem_filter is not None:
            result.append(
                replace(
                    outcome,
                    status="unsupported" if problem.unsupported else "error",
                    reason=f"Sigma filter {problem_filter.label!r} ({problem_filter.where}) cannot be applied: "
                    f"{problem}",
                    rule=None,
                )
            )
        elif conjuncts:
            result.append(replace(outcome, rule=replace(rule, ir=conjunction((rule.ir, *conjuncts)))))
        else:
            result.append(outcome)

    applications = tuple(
        FilterApplication(
            sigma_filter=sigma_filter,
            rule_ids=tuple(applied[number]),
            not_covered=tuple(not_covered[number]),
            failed=tuple(failed[number]),
        )
        for number, sigma_filter in enumerate(active)
    )
    by_position = {(a.sigma_filter.source.path, a.sigma_filter.source.index): a for a in applications}
    final = [
        by_position[_position(o)].outcome() if _is_filter(o) and _position(o) in by_position else o for o in result
    ]
    return FilteredLoadResult(tuple(final), SigmaFilterReport(applications))


def reference_names_by_name(reference: str) -> bool:
    """Whether a reference is a name (not a UUID), so that rules' Sigma names must be read to resolve it."""
    try:
        uuid.UUID(reference)
    except ValueError:
        return True
    return False


def _is_filter(outcome: LoadOutcome) -> bool:
    return outcome.language == FILTER_LANGUAGE and outcome.status == "ok"


def _position(outcome: LoadOutcome) -> tuple[str, int]:
    return (outcome.path, outcome.index or 0)
