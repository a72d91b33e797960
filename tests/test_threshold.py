"""threshold rules as Kibana runs them: groups, counts, cardinality, max_signals, alert shape and the signal history.

Kibana sources cited as TH/<file> live in elastic/kibana under ``x-pack/solutions/security/plugins/
security_solution/server/lib/detection_engine/rule_types/threshold/``.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shellwatch.alerts.document import build_alert
from shellwatch.query.ir import TRUE
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.schedule.runs import RuleSchedule, replay_search
from shellwatch.schedule.threshold import (
    TOTAL_HITS_COUNTED,
    MemoryThresholdStore,
    SqliteThresholdStore,
    ThresholdEvent,
    ThresholdRecord,
    ThresholdSearch,
    ThresholdSettings,
    terms_hash,
    threshold_alert_uuid,
    threshold_buckets,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
T0_MS = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def make_rule(threshold: dict[str, Any], max_signals: int = 100) -> Rule:
    return Rule(
        rule_id="th-logons",
        name="many logons",
        description="d",
        type="threshold",
        language="kuery",
        query="event.action:logon",
        ir=TRUE,
        source=RuleSource(path="test"),
        interval="5m",
        from_="now-9m",
        max_signals=max_signals,
        threshold=threshold,
    )


def ev(minute: float, seq: int, **values: Any) -> ThresholdEvent:
    return ThresholdEvent(T0_MS + int(minute * 60_000), seq, values)


def summary(buckets: list[Any]) -> list[tuple[Any, ...]]:
    return [(tuple(v for _, v in b.terms), b.count, b.cardinality) for b in buckets]


def test_settings_normalized_as_kibana_does() -> None:
    """``field`` is a string or a list (Kibana normalizes to a list; an empty string means no field), at most 5;
    only the first cardinality condition is used.

    Source: TH/find_threshold_signals.ts (``hasThresholdFields = !!threshold.field.length``); Kibana's rule schema
    ``ThresholdField`` (string or array of at most 5 strings) in common/api/detection_engine/model/rule_schema.
    """
    assert ThresholdSettings.from_mapping({"field": "host.name", "value": 3}).fields == ("host.name",)
    assert ThresholdSettings.from_mapping({"field": "", "value": 3}).fields == ()
    assert ThresholdSettings.from_mapping({"field": [], "value": 1}).fields == ()
    both = ThresholdSettings.from_mapping(
        {"field": ["a", "b"], "value": 2, "cardinality": [{"field": "u", "value": 3}, {"field": "v", "value": 9}]}
    )
    assert both.condition is not None and both.condition.field == "u"
    with pytest.raises(ValueError, match="at most 5"):
        ThresholdSettings.from_mapping({"field": list("abcdef"), "value": 1})
    with pytest.raises(ValueError):
        ThresholdSettings.from_mapping({"field": "a", "value": 0})


def test_groups_count_and_order() -> None:
    """Composite aggregation over the fields: a bucket per value combination (arrays give the cross product, a
    missing field none), kept when ``doc_count >= value``, in key order; min/max of the timestamp.

    Source: TH/build_threshold_aggregation.ts (``count_check``: ``params.docCount >= value``; ``max_timestamp``,
    ``min_timestamp``).
    """
    settings = ThresholdSettings.from_mapping({"field": ["host.name", "user.name"], "value": 2})
    events = [
        ev(0, 0, **{"host.name": "web2", "user.name": "bob"}),
        ev(1, 1, **{"host.name": "web2", "user.name": "bob"}),
        ev(2, 2, **{"host.name": "web1", "user.name": ["amy", "bob"]}),
        ev(3, 3, **{"host.name": "web1", "user.name": "amy"}),
        ev(4, 4, **{"host.name": "web1"}),  # no user.name: in no bucket
        ev(5, 5, **{"host.name": "web1", "user.name": "bob"}),
        ev(6, 6, **{"host.name": "web3", "user.name": "cy"}),
    ]
    buckets = threshold_buckets(settings, events)
    assert summary(buckets) == [(("web1", "amy"), 2, None), (("web1", "bob"), 2, None), (("web2", "bob"), 2, None)]
    assert buckets[0].min_time == T0_MS + 2 * 60_000 and buckets[0].max_time == T0_MS + 3 * 60_000
    assert threshold_buckets(ThresholdSettings.from_mapping({"field": "host.name", "value": 5}), events) == []


def test_cardinality_condition() -> None:
    """``cardinality(field) >= value`` on each bucket (distinct values; multi-valued fields count each value; events
    without the field add none).

    Source: TH/build_threshold_aggregation.ts (``cardinality_check``: ``params.cardinalityCount >= value``).
    """
    settings = ThresholdSettings.from_mapping(
        {"field": "source.ip", "value": 3, "cardinality": [{"field": "user.name", "value": 3}]}
    )
    events = [
        ev(0, 0, **{"source.ip": "10.0.0.1", "user.name": "a"}),
        ev(1, 1, **{"source.ip": "10.0.0.1", "user.name": ["b", "c"]}),
        ev(2, 2, **{"source.ip": "10.0.0.1"}),
        ev(3, 3, **{"source.ip": "10.0.0.2", "user.name": "a"}),
        ev(4, 4, **{"source.ip": "10.0.0.2", "user.name": "a"}),
        ev(5, 5, **{"source.ip": "10.0.0.2", "user.name": "b"}),
    ]
    buckets = threshold_buckets(settings, events)
    assert summary(buckets) == [(("10.0.0.1",), 3, 3)]
    assert buckets[0].result(settings)["cardinality"] == [{"field": "user.name", "value": 3}]


def test_no_fields_counts_the_whole_window_up_to_ten_thousand() -> None:
    """Without fields the count is the search's ``hits.total.value``, exact only up to 10,000 because the search
    leaves ``track_total_hits`` unset.

    Sources: TH/find_threshold_signals.ts (``docCount = searchResult.hits.total.value``); utils/build_events_query.ts
    (``track_total_hits: trackTotalHits``, undefined here); Elasticsearch search API docs (``track_total_hits``
    defaults to 10,000).
    """
    many = [ev(i / 1000, i) for i in range(TOTAL_HITS_COUNTED + 5)]
    at_limit = threshold_buckets(ThresholdSettings.from_mapping({"field": [], "value": TOTAL_HITS_COUNTED}), many)
    assert summary(at_limit) == [((), TOTAL_HITS_COUNTED, None)]
    over = ThresholdSettings.from_mapping({"field": [], "value": TOTAL_HITS_COUNTED + 1})
    assert threshold_buckets(over, many) == []


def test_signal_history_excludes_whole_events_up_to_the_last_alert() -> None:
    """An alerted group's events at or before its last alert's time are filtered out of the search, as events: one
    whose multi-valued field also puts it in another group leaves that group too.

    Source: TH/get_threshold_bucket_filters.ts (``must_not: [{range: {ts: {lte: lastSignalTimestamp}}, term:
    {field: "value"}}]``).
    """
    settings = ThresholdSettings.from_mapping({"field": "user.name", "value": 2})
    events = [
        ev(0, 0, **{"user.name": ["amy", "bob"]}),
        ev(1, 1, **{"user.name": "bob"}),
        ev(2, 2, **{"user.name": "amy"}),
        ev(3, 3, **{"user.name": "amy"}),
    ]
    history = {terms_hash((("user.name", "amy"),)): ThresholdRecord((("user.name", "amy"),), T0_MS + 2 * 60_000)}
    assert summary(threshold_buckets(settings, events)) == [(("amy",), 3, None), (("bob",), 2, None)]
    # amy's events up to minute 2 are gone, and with them the event that also counted for bob.
    assert summary(threshold_buckets(settings, events, history)) == []
    history_late = {terms_hash((("user.name", "amy"),)): ThresholdRecord((("user.name", "amy"),), T0_MS)}
    assert summary(threshold_buckets(settings, events, history_late)) == [(("amy",), 2, None)]


def test_alert_id_and_document_shape() -> None:
    """The alert id is uuidv5(rule_id + startedAt + fields + sorted values) in namespace 0684ec03-...; the alert's
    original time is the bucket's max timestamp; ``kibana.alert.threshold_result`` holds terms, count, from.

    Sources: TH/utils.ts (``calculateThresholdSignalUuid``); TH/bulk_create_threshold_signals.ts
    (``transformBucketIntoHit``).
    """
    started = T0_MS + 10 * 60_000
    expected = uuid.uuid5(
        uuid.UUID("0684ec03-7201-4ee0-8ee0-3a3f6b2479b2"),
        "th-logons2024-03-01T12:10:00.000Zhost.name,user.nameamy,web1",
    )
    assert threshold_alert_uuid("th-logons", started, ["host.name", "user.name"], ["web1", "amy"]) == str(expected)
    rule = make_rule({"field": ["host.name", "user.name"], "value": 2})
    search = ThresholdSearch(rule, [], RuleSchedule.from_rule(rule))
    buckets = threshold_buckets(
        search.state.settings,
        [ev(1, 0, **{"host.name": "web1", "user.name": "amy"}), ev(4, 1, **{"host.name": "web1", "user.name": "amy"})],
    )
    search.found[str(expected)] = (buckets[0], started)
    document = search.alert(str(expected), T0)
    assert document["kibana.alert.uuid"] == str(expected)
    assert document["kibana.alert.original_time"] == "2024-03-01T12:04:00.000Z"
    assert document["host"] == {"name": "web1"}
    assert document["kibana.alert.threshold_result"] == {
        "terms": [{"field": "host.name", "value": "web1"}, {"field": "user.name", "value": "amy"}],
        "count": 2,
        "from": "2024-03-01T12:01:00.000Z",
    }
    assert document["kibana.alert.rule.type"] == "threshold"


def alerts_for(rule: Rule, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [build_alert(rule, e, origin=None, detected_at=T0) for e in events]


def logon(minute: int, host: str, n: int) -> dict[str, Any]:
    stamp = (T0 + minute * MINUTE).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"@timestamp": stamp, "host.name": host, "event.id": f"e{n}"}


def test_runs_count_only_events_after_the_groups_last_alert() -> None:
    """One logon a minute on web1, threshold 3, 5-minute runs over 9 minutes: the first run that reaches 3 alerts
    (count 6); every later run counts only the 5 events after the previous alert, not the 9-10 its window holds.

    Sources: TH/threshold.ts (signal history filter, then ``buildThresholdSignalHistory`` of the created alerts
    merged into the state); TH/utils.ts ``getSignalHistory`` (entries kept while later than ``from``).
    """
    rule = make_rule({"field": "host.name", "value": 3})
    schedule = RuleSchedule.from_rule(rule)
    search = ThresholdSearch(rule, alerts_for(rule, [logon(m, "web1", m) for m in range(31)]), schedule)
    result = replay_search(schedule, search, search.times, T0, T0 + 30 * MINUTE)
    counts = [search.found[a][0].count for run in result.runs for a in run.created]
    assert counts == [6, 5, 5, 5, 5, 5]
    assert result.totals.created == 6
    assert result.totals.duplicates_skipped == 0


def test_max_signals_cuts_buckets_before_writing() -> None:
    """Buckets beyond max_signals are cut in key order before any alert is written, with the warning.

    Source: TH/find_threshold_signals.ts (``buckets.slice(0, maxSignals)``; ``getMaxSignalsWarning`` when
    ``buckets.length > maxSignals``).
    """
    rule = make_rule({"field": "host.name", "value": 1}, max_signals=2)
    schedule = RuleSchedule.from_rule(rule)
    events = [logon(1, host, n) for n, host in enumerate(["web3", "web1", "web2"])]
    search = ThresholdSearch(rule, alerts_for(rule, events), schedule)
    result = replay_search(schedule, search, search.times, T0 + 5 * MINUTE, T0 + 5 * MINUTE)
    (run,) = result.runs
    assert [search.found[a][0].terms[0][1] for a in run.created] == ["web1", "web2"]
    assert len(run.dropped) == 1
    assert run.searches[0].max_signals_warning


def test_sqlite_history_survives_a_restart_and_prunes_like_kibana(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = sqlite3.connect(path)
    store = SqliteThresholdStore(first)
    store.remember("s", [ThresholdRecord((("host.name", "web1"),), 100), ThresholdRecord((("host.name", 7),), 50)])
    store.remember("s", [ThresholdRecord((("host.name", "web1"),), 90)])  # older: kept at 100
    first.commit()
    first.close()
    second = sqlite3.connect(path)
    reopened = SqliteThresholdStore(second)
    memory = MemoryThresholdStore()
    memory.remember("s", [ThresholdRecord((("host.name", "web1"),), 100), ThresholdRecord((("host.name", 7),), 50)])
    assert reopened.history("s") == memory.history("s")
    assert reopened.history("s")[terms_hash((("host.name", "web1"),))].last_signal == 100
    # getSignalHistory keeps entries whose last alert is later than the window's from.
    assert reopened.prune("s", 50) == memory.prune("s", 50) == 1
    assert list(reopened.history("s")) == list(memory.history("s")) == [terms_hash((("host.name", "web1"),))]
    second.close()
