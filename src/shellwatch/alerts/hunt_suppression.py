"""Alert suppression over a hunt: what a rule's ``alert_suppression`` means when the rule has no schedule.

Kibana suppresses per rule execution, or for ``duration`` from the moment a group's alert was created
(:mod:`shellwatch.alerts.suppression` reproduces that run by run, for ``backtest`` and ``watch``). A hunt reads
history in one pass, so it takes the two settings this way:

- without ``duration`` (per rule execution), the hunt is one execution: one alert per group over everything read;
- with ``duration``, the rule is taken to run continuously: a group's alert is created at its first event's time,
  and the group's later events fold into it while they are no later than that time plus ``duration``; the first
  event after that opens a new alert.

Groups, terms, ``kibana.alert.instance.id``, alert ids and the ``kibana.alert.suppression.*`` fields are Kibana's
(:func:`~shellwatch.alerts.suppression.group_terms`). Events are taken in time order (timestamp_override, then
@timestamp), whatever order the inputs gave them in, so the alerts of suppressed rules are held until the hunt ends:
memory grows with the matches of those rules, not with the input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from shellwatch.alerts.suppression import (
    SuppressionSettings,
    group_alert_uuid,
    group_terms,
    instance_id,
    iso_moment,
    suppression_settings,
)
from shellwatch.rules.model import Rule
from shellwatch.sinks.base import DOCS_COUNT

_EARLIEST = datetime.min.replace(tzinfo=UTC)


def settings_of(rule: Rule) -> SuppressionSettings | None:
    """The rule's suppression setting, or None (the rule model validated it when the rule loaded); hunt, backtest
    and watch all read it here."""
    if rule.alert_suppression is None:
        return None
    return suppression_settings(
        {"type": rule.type, "alert_suppression": rule.alert_suppression, "threshold": rule.threshold}
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def event_time(alert: Mapping[str, Any], rule: Rule) -> datetime | None:
    """The event's time as Kibana orders a rule's search: the timestamp_override field, else @timestamp."""
    if rule.timestamp_override:
        field = rule.timestamp_override
        if field.startswith("event."):
            original = alert.get("kibana.alert.original_event")
            value = original.get(field[len("event.") :]) if isinstance(original, Mapping) else None
        else:
            value = alert.get(field)
        moment = _time(value)
        if moment is not None:
            return moment
    return _time(alert.get("kibana.alert.original_time"))


class _Group(NamedTuple):
    """A group's live alert and the time it was created (its first event's)."""

    created: datetime
    document: dict[str, Any]


class HuntSuppression:
    """Holds the alerts of the rules that suppress, and gives back one alert per group when the hunt ends."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = list(rules)
        self._settings: dict[int, SuppressionSettings] = {}
        for position, rule in enumerate(rules):
            settings = settings_of(rule)
            if settings is not None:
                self._settings[position] = settings
        self._held: dict[int, list[tuple[datetime, str, dict[str, Any]]]] = {}
        self.suppressed: Counter[int] = Counter()
        """Events folded into another event's alert, by rule position."""

    def applies(self, rule_index: int) -> bool:
        """Whether the rule at this position suppresses (its alerts go through :meth:`hold`)."""
        return rule_index in self._settings

    def __bool__(self) -> bool:
        return bool(self._settings)

    def hold(self, rule_index: int, alert: dict[str, Any]) -> None:
        """Keep an alert of a suppressing rule until :meth:`release`."""
        moment = event_time(alert, self._rules[rule_index]) or _EARLIEST
        self._held.setdefault(rule_index, []).append((moment, str(alert["kibana.alert.uuid"]), alert))

    def release(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The alerts left after suppression, rule by rule (in rule order), each rule's in event-time order."""
        for rule_index in sorted(self._held):
            held = self._held.pop(rule_index)
            held.sort(key=lambda item: (item[0], item[1]))
            for alert in self._suppress(rule_index, held):
                yield rule_index, alert

    def _suppress(self, rule_index: int, held: list[tuple[datetime, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        settings = self._settings[rule_index]
        window = None if settings.duration_seconds is None else timedelta(seconds=settings.duration_seconds)
        live: dict[str, _Group] = {}
        created: list[dict[str, Any]] = []
        made: set[str] = set()
        for moment, base_uuid, alert in held:
            groups = group_terms(alert, settings)
            if groups is None:
                # doNotSuppress and a group-by field missing: a plain alert.
                if base_uuid not in made:
                    made.add(base_uuid)
                    created.append(alert)
                continue
            for terms in groups:
                uuid = group_alert_uuid(base_uuid, terms, settings, len(groups))
                if uuid in made:
                    continue
                group_id = instance_id(terms, str(alert["kibana.alert.rule.uuid"]))
                current = live.get(group_id)
                if current is not None and (window is None or moment <= current.created + window):
                    # Held alerts are in time order: the folded event is the group's latest so far.
                    current.document[DOCS_COUNT] += 1
                    current.document["kibana.alert.suppression.end"] = iso_moment(moment)
                    self.suppressed[rule_index] += 1
                    continue
                document = dict(alert)
                stamp = iso_moment(moment)
                document.update(
                    {
                        "kibana.alert.uuid": uuid,
                        "kibana.alert.instance.id": group_id,
                        "kibana.alert.suppression.terms": terms,
                        "kibana.alert.suppression.start": stamp,
                        "kibana.alert.suppression.end": stamp,
                        DOCS_COUNT: 0,
                    }
                )
                made.add(uuid)
                live[group_id] = _Group(moment, document)
                created.append(document)
        return created
