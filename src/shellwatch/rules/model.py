"""The rule model: one frozen, validated description of a detection rule, whatever format it was written in.

Elastic TOML, Kibana JSON / NDJSON exports and Sigma YAML differ only in their loaders; each produces a
:class:`Rule` whose metadata follows Kibana's rule schema (field names as Kibana writes them, ``from_`` for the
reserved word ``from``) and whose query is already compiled to the IR, so an invalid rule never reaches the engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shellwatch.query.ir import Node

SEVERITIES = ("low", "medium", "high", "critical")

SIGMA_LEVEL_SEVERITY: Mapping[str, tuple[str, int]] = {
    "informational": ("low", 21),
    "low": ("low", 21),
    "medium": ("medium", 47),
    "high": ("high", 73),
    "critical": ("critical", 99),
}
"""Sigma ``level`` -> (Kibana severity, risk score), the defaults Kibana's severity/risk mapping uses."""

_DURATION = re.compile(r"^(\d+)([smhd])$")
_DATE_MATH_FROM = re.compile(r"^now(-\d+[smhd])?$")


class RuleError(ValueError):
    """A rule file or rule is invalid; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleSource:
    """Where a rule was loaded from: the file and, for files holding several rules, which one (0-based)."""

    path: str
    index: int = 0

    def __str__(self) -> str:
        return self.path if self.index == 0 else f"{self.path}#{self.index}"


@dataclass(frozen=True, kw_only=True, slots=True)
class AttackEntry:
    """An ATT&CK tactic, technique or sub-technique: id, name and reference URL."""

    id: str
    name: str
    reference: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Technique:
    """An ATT&CK technique with its sub-techniques."""

    id: str
    name: str
    reference: str
    subtechniques: tuple[AttackEntry, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Threat:
    """One entry of Kibana's ``threat`` array: a tactic and the techniques under it."""

    framework: str
    tactic: AttackEntry
    techniques: tuple[Technique, ...] = ()

    def to_kibana(self) -> dict[str, Any]:
        """This entry as Kibana writes it in a rule and in ``kibana.alert.rule.threat``."""
        return {
            "framework": self.framework,
            "tactic": _entry(self.tactic),
            "technique": [{**_entry(t), "subtechnique": [_entry(s) for s in t.subtechniques]} for t in self.techniques],
        }


def _entry(e: AttackEntry | Technique) -> dict[str, str]:
    return {"id": e.id, "name": e.name, "reference": e.reference}


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """A detection rule: Kibana rule metadata, the query text, its IR, and where it came from."""

    rule_id: str
    name: str
    description: str
    type: str
    """Kibana rule type: "eql", "query", "new_terms", ..., or "sigma" for a Sigma rule."""
    language: str
    """Query language: "eql", "kuery", "lucene", "esql" or "sigma"."""
    query: str
    """The query as written (for Sigma: the rule's ``detection`` section, as YAML)."""
    ir: Node
    """The query compiled to the IR; it already includes the event category / logsource conditions."""
    source: RuleSource
    severity: str = "low"
    risk_score: int = 21
    index: tuple[str, ...] = ()
    interval: str = "5m"
    from_: str = "now-6m"
    max_signals: int = 100
    tags: tuple[str, ...] = ()
    threat: tuple[Threat, ...] = ()
    note: str | None = None
    false_positives: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    license: str | None = None
    version: int = 1
    exceptions_list: tuple[Mapping[str, Any], ...] = ()
    timestamp_override: str | None = None
    building_block_type: str | None = None
    status: str | None = None
    """Sigma status (stable, test, experimental, ...) or Elastic maturity."""
    logsource: Mapping[str, str] = field(default_factory=dict)
    """Sigma logsource (product, category, service); empty for Elastic rules."""
    filters: tuple[Mapping[str, Any], ...] = ()
    """Kibana filters beside the query (``meta.negate``, ``query`` DSL), as written; already part of ``ir``."""
    alert_suppression: Mapping[str, Any] | None = None
    """Kibana's ``alert_suppression`` object as written (group_by, duration, missing_fields_strategy)."""
    new_terms_fields: tuple[str, ...] = ()
    """new_terms rules: the fields whose value combination must be new."""
    history_window_start: str | None = None
    """new_terms rules: date math (``now-7d``) where the history a combination must be new in begins."""
    threshold: Mapping[str, Any] | None = None
    """threshold rules: Kibana's ``threshold`` object as written (field, value, cardinality)."""

    def __post_init__(self) -> None:
        if not self.rule_id:
            raise RuleError("rule has no rule_id")
        if not self.name:
            raise RuleError("rule has no name")
        if self.severity not in SEVERITIES:
            raise RuleError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if not 0 <= self.risk_score <= 100:
            raise RuleError(f"risk_score {self.risk_score} is outside 0..100")
        if not _DURATION.match(self.interval):
            raise RuleError(f"interval {self.interval!r} is not a duration like 5m")
        if not _DATE_MATH_FROM.match(self.from_):
            raise RuleError(f"from {self.from_!r} is not date math like now-9m")
        if self.max_signals < 1:
            raise RuleError(f"max_signals {self.max_signals} must be at least 1")
        if self.type == "new_terms":
            if not self.new_terms_fields:
                raise RuleError("a new_terms rule needs new_terms_fields")
            if self.history_window_start is None or not _DATE_MATH_FROM.match(self.history_window_start):
                raise RuleError(f"history_window_start {self.history_window_start!r} is not date math like now-7d")
        if self.type == "threshold" and self.threshold is None:
            raise RuleError("a threshold rule needs a threshold")
        if self.alert_suppression is not None:
            # Imported here: the suppression module reads rules, and the model must stay importable on its own.
            from shellwatch.alerts.suppression import SuppressionError, suppression_settings

            try:
                suppression_settings(
                    {"type": self.type, "alert_suppression": self.alert_suppression, "threshold": self.threshold}
                )
            except SuppressionError as exc:
                raise RuleError(str(exc)) from None

    @property
    def tactic_ids(self) -> tuple[str, ...]:
        """The ATT&CK tactic ids the rule maps to, in order."""
        return tuple(t.tactic.id for t in self.threat)

    @property
    def technique_ids(self) -> tuple[str, ...]:
        """Every ATT&CK technique and sub-technique id the rule maps to, in order."""
        ids: list[str] = []
        for threat in self.threat:
            for technique in threat.techniques:
                ids.append(technique.id)
                ids.extend(s.id for s in technique.subtechniques)
        return tuple(ids)


def duration_seconds(text: str) -> int:
    """Seconds in a Kibana duration such as ``5m`` or ``1h``."""
    match = _DURATION.match(text)
    if not match:
        raise RuleError(f"{text!r} is not a duration like 5m")
    amount, unit = int(match.group(1)), match.group(2)
    return amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
