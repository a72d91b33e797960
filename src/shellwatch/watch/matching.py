"""Records to rule matches, exactly as the hunt decides them: the same normalizers, rule set and exception lists,
and the same alert ids (:func:`shellwatch.alerts.document.alert_uuid` of the rule and the event's identity).

The hunt also skips, before normalizing, the Windows events of classes no rule can match; that only saves time
(those records can raise no alert), so the watcher, which reads a few records at a time, normalizes every record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shellwatch.alerts.document import alert_uuid, event_identity
from shellwatch.alerts.exceptions import ExceptionLists, RuleExceptions
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.context import SourceContext
from shellwatch.normalize.dispatch import normalize_with_family
from shellwatch.rules.model import Rule
from shellwatch.sources.record import Origin, RawRecord


@dataclass(frozen=True, slots=True)
class Match:
    """A rule matching an event, with the id its alert has."""

    rule: Rule
    alert_id: str
    event: dict[str, Any]
    origin: Origin


class RecordMatcher:
    """Normalizes records and matches them against a rule set, leaving out what exception lists silence."""

    def __init__(self, rules: RuleSet, *, source: str | None = None, exceptions: ExceptionLists | None = None) -> None:
        self.rules = rules
        self.source = source
        self.excluded: Counter[str] = Counter()
        """Rule id -> matches silenced by its exception lists."""
        self._exceptions = exceptions
        self._by_rule: dict[str, RuleExceptions] = {}
        self._checked_at: datetime | None = None

    def _exceptions_of(self, rule: Rule, now: datetime) -> RuleExceptions | None:
        if self._exceptions is None:
            return None
        if self._checked_at is None or (now - self._checked_at).total_seconds() >= 60:
            # Items can expire while the watcher runs: the lists in force are worked out again every minute.
            self._by_rule = {r.rule_id: self._exceptions.for_rule(r, at=now) for r in self.rules.rules}
            self._checked_at = now
        return self._by_rule.get(rule.rule_id)

    def matches(self, records: Iterable[RawRecord], context: SourceContext) -> tuple[int, list[Match]]:
        """(events read, matches) of records of one input, in record order then rule order."""
        now = datetime.now(UTC)
        found: list[Match] = []
        events = 0
        for record in records:
            if record.shape == "claimed":
                continue
            events += 1
            event = normalize_with_family(record, context=context, source=self.source)[1]
            for rule in self.rules.matching(event):
                exceptions = self._exceptions_of(rule, now)
                if exceptions is not None and exceptions.excludes(event):
                    self.excluded[rule.rule_id] += 1
                    continue
                identity = event_identity(event, record.origin)
                found.append(Match(rule, alert_uuid(rule, identity), event, record.origin))
        return events, found
