"""Alert suppression in ``watch``: one :class:`~shellwatch.alerts.suppression.Suppressor` per rule, its state kept in
the watch database and written in the transaction of the run that changed it.

Each watched run is one Kibana rule execution. Its search window, for the suppressor, starts at the run itself:
a run's events are those ingested since the previous run and none is searched twice, so there is no look-back
overlap to recognize. Hence:

- without ``duration`` (per rule execution): one alert per group per run, over the events the run read;
- with ``duration``: a group's alert takes the group's events of later runs for ``duration`` after the run that
  created it, and each such run delivers the alert again, whole, with its larger ``docs_count``, later ``end`` and
  ``last_detected``. An event offered by a later run that is no later than its live group's ``end`` counts as
  already suppressed (Kibana's overlap rule): in watch only an event that arrived late does that, and it does not
  raise ``docs_count``.

How an update reaches an append-only sink: as a new line. The update batch's idempotency key is
:func:`~shellwatch.sinks.base.revision_key`, a hash of every alert's id *and* ``docs_count``, so it never collides
with the batch that created the alert (nor with another update); a sink that dedupes by key (the webhook receiver)
stores each revision once. What is unique in the sink is therefore the pair (``kibana.alert.uuid``,
``kibana.alert.suppression.docs_count``), :func:`~shellwatch.sinks.base.revision`: the same alert appears once per
revision, the revision with the largest ``docs_count`` being current.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from shellwatch.alerts.document import rule_uuid
from shellwatch.alerts.hunt_suppression import settings_of
from shellwatch.alerts.suppression import RunResult, SuppressionSettings, Suppressor
from shellwatch.rules.model import Rule


class WatchedSuppression:
    """One rule's suppression state in the watch database."""

    def __init__(self, rule: Rule, settings: SuppressionSettings, connection: sqlite3.Connection) -> None:
        self.rule = rule
        self.settings = settings
        self._db = connection
        self._db.execute("CREATE TABLE IF NOT EXISTS watch_suppression (rule_id TEXT PRIMARY KEY, state BLOB NOT NULL)")

    @classmethod
    def of(cls, rule: Rule, connection: sqlite3.Connection) -> WatchedSuppression | None:
        """The rule's suppression, or None when the rule has no ``alert_suppression``."""
        settings = settings_of(rule)
        return None if settings is None else cls(rule, settings, connection)

    def _load(self) -> Suppressor:
        row = self._db.execute("SELECT state FROM watch_suppression WHERE rule_id = ?", (self.rule.rule_id,)).fetchone()
        if row is None:
            return Suppressor(self.settings, rule_uuid=rule_uuid(self.rule))
        return Suppressor.from_state(self.settings, orjson.loads(row[0]))

    def run(
        self,
        run_id: str,
        offers: Sequence[tuple[Mapping[str, Any], datetime]],
        *,
        started_at: datetime,
        max_new_alerts: int | None,
    ) -> RunResult:
        """Offer the run's alerts (in event-time order, with their event times) and store the state (inside the
        run's transaction)."""
        suppressor = self._load()
        suppressor.begin_run(run_id, started_at=started_at, search_from=started_at, max_new_alerts=max_new_alerts)
        for alert, moment in offers:
            suppressor.offer(alert, moment)
        result = suppressor.end_run()
        self._db.execute(
            "INSERT OR REPLACE INTO watch_suppression VALUES (?, ?)",
            (self.rule.rule_id, orjson.dumps(suppressor.to_state(), default=str)),
        )
        return result
