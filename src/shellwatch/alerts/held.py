"""Rules whose alerts depend on other matches, in a hunt: their matches are held until everything is read.

A plain rule alerts on each matching event as it is read. Three kinds of rule cannot:

- **new_terms**: a match alerts only if its value combination did not appear in the preceding history span
  (:func:`shellwatch.schedule.new_terms.first_appearances`, the hunt meaning written down there);
- **threshold**: alerts are buckets of matches; a hunt is one aggregation over everything it read, as one Kibana
  run over an index holding only these logs (:func:`shellwatch.schedule.threshold.threshold_buckets`), with the
  latest event's time as the run's start in the alert id, so a rerun gives the same ids;
- **alert suppression**: one alert per group (:class:`shellwatch.alerts.hunt_suppression.HuntSuppression`),
  applied after new_terms, as Kibana suppresses the alerts a new_terms rule would create.

Memory grows with the matches of these rules, not with the input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from shellwatch.alerts.hunt_suppression import HuntSuppression
from shellwatch.rules.model import Rule

HELD_TYPES = frozenset({"new_terms", "threshold"})


class HeldAlerts:
    """The matches of the rules that need all of them, and the alerts they make once the hunt has read all."""

    def __init__(self, rules: Sequence[Rule], detected_at: datetime) -> None:
        self._rules = list(rules)
        self._detected_at = detected_at
        self._suppression = HuntSuppression(rules)
        self._typed = {position for position, rule in enumerate(rules) if rule.type in HELD_TYPES}
        self._held: dict[int, list[dict[str, Any]]] = {}
        self.aggregated: Counter[int] = Counter()
        """Matches that went into a threshold rule's buckets or were not new for a new_terms rule, by rule
        position (the matches that made no alert of their own)."""

    def __bool__(self) -> bool:
        return bool(self._typed) or bool(self._suppression)

    def applies(self, rule_index: int) -> bool:
        """Whether the rule's matches are held (:meth:`hold`) rather than alerted at once."""
        return rule_index in self._typed or self._suppression.applies(rule_index)

    @property
    def suppressed(self) -> Counter[int]:
        """Matches folded into another match's alert by alert suppression, by rule position."""
        return self._suppression.suppressed

    def hold(self, rule_index: int, alert: dict[str, Any]) -> None:
        """Keep a match of a held rule until :meth:`release`."""
        if rule_index in self._typed:
            self._held.setdefault(rule_index, []).append(alert)
        else:
            self._suppression.hold(rule_index, alert)

    def release(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The alerts of the held rules, rule by rule in rule order."""
        for rule_index in sorted(self._held):
            matches = self._held.pop(rule_index)
            rule = self._rules[rule_index]
            made = self._threshold(rule, matches) if rule.type == "threshold" else self._new_terms(rule, matches)
            self.aggregated[rule_index] += len(matches) - len(made)
            for alert in made:
                if self._suppression.applies(rule_index) and rule.type != "threshold":
                    self._suppression.hold(rule_index, alert)
                else:
                    yield rule_index, alert
        yield from self._suppression.release()

    def _new_terms(self, rule: Rule, matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from shellwatch.schedule.new_terms import first_appearances

        return list(first_appearances(rule, matches))

    def _threshold(self, rule: Rule, matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from shellwatch.schedule.runs import EventClock, RuleSchedule
        from shellwatch.schedule.threshold import (
            ThresholdSettings,
            event_from_alert,
            threshold_alert,
            threshold_buckets,
        )

        settings = ThresholdSettings.from_rule(rule)
        clock = EventClock(RuleSchedule.from_rule(rule))
        events = [e for seq, m in enumerate(matches) if (e := event_from_alert(m, settings, clock, seq)) is not None]
        if not events:
            return []
        started_at = max(event.effective for event in events)
        return [
            threshold_alert(rule, settings, bucket, started_at=started_at, detected_at=self._detected_at)
            for bucket in threshold_buckets(settings, events)
        ]
