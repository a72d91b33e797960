"""Alert suppression: Kibana's documented behaviour and the scenarios of its own integration tests, replayed.

Sources:
- docs: https://www.elastic.co/guide/en/security/current/alert-suppression.html
  (elastic/docs-content solutions/security/detect-and-alert/suppress-detection-alerts.md)
- algorithm: elastic/kibana x-pack/solutions/security/plugins/security_solution/server/lib/detection_engine/
  rule_types/utils/alert_with_suppression.ts (alertWithSuppression, suppressAlertsInMemory) and
  utils/suppression_utils.ts (getSuppressionTerms)
- scenarios: elastic/kibana x-pack/test/security_solution_api_integration/test_suites/detections_response/
  detection_engine/rule_execution_logic/eql/trial_license_complete_tier/eql_alert_suppression.ts ("FTR" below)
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from shellwatch.alerts.document import build_alert, rule_uuid
from shellwatch.alerts.suppression import (
    Decision,
    RunResult,
    SuppressionError,
    SuppressionSettings,
    Suppressor,
    instance_id,
    suppression_settings,
)
from shellwatch.query.ir import TRUE
from shellwatch.rules.model import Rule, RuleSource

RULE = Rule(
    rule_id="a1b2c3d4-0000-4000-8000-000000000001",
    name="Web server spawns shell",
    description="d",
    type="eql",
    language="eql",
    query="process where true",
    ir=TRUE,
    source=RuleSource(path="rule.toml"),
    interval="30m",
    from_="now-35m",
)
QUERY_RULE = Rule(
    rule_id="a1b2c3d4-0000-4000-8000-000000000002",
    name="Query rule",
    description="d",
    type="query",
    language="kuery",
    query="*",
    ir=TRUE,
    source=RuleSource(path="rule.json"),
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2020-10-28T{text}+00:00")


def iso(text: str) -> str:
    return f"2020-10-28T{text}.000Z"


class Harness:
    """Runs a rule on its schedule over indexed documents, as Kibana's rule preview does in the FTR tests."""

    def __init__(self, settings: SuppressionSettings, rule: Rule = RULE, *, time_field: str = "@timestamp") -> None:
        self.rule = rule
        self.suppressor = Suppressor(settings, rule_uuid=rule_uuid(rule))
        self.time_field = time_field
        self.documents: list[dict[str, Any]] = []
        self.alerts: dict[str, dict[str, Any]] = {}
        self.decisions: list[Decision] = []

    def index(self, *documents: Mapping[str, Any]) -> None:
        for document in documents:
            # Every indexed copy is its own document with its own _id, as in Elasticsearch.
            self.documents.append({**document, "_id": f"doc-{len(self.documents)}"})

    def run(self, end: datetime, lookback: timedelta, *, max_signals: int | None = None) -> RunResult:
        start = end - lookback
        self.suppressor.begin_run(
            f"run@{end.isoformat()}", started_at=end, search_from=start, max_new_alerts=max_signals
        )
        hits = [d for d in self.documents if start <= self._time(d) <= end]
        for document in sorted(hits, key=self._time):
            alert = build_alert(self.rule, document, origin=None, detected_at=end)
            self.decisions.extend(self.suppressor.offer(alert, self._time(document)))
        result = self.suppressor.end_run()
        for alert in [*result.created, *result.updated]:
            self.alerts[alert["kibana.alert.uuid"]] = alert
        return result

    def runs(self, first_end: datetime, count: int, interval: timedelta, lookback: timedelta) -> None:
        for n in range(count):
            self.run(first_end + n * interval, lookback)

    def sorted_alerts(self) -> list[dict[str, Any]]:
        return sorted(
            self.alerts.values(),
            key=lambda a: (str(a.get("kibana.alert.suppression.terms")), a["kibana.alert.original_time"]),
        )

    def _time(self, document: Mapping[str, Any]) -> datetime:
        return datetime.fromisoformat(str(document[self.time_field]).replace("Z", "+00:00"))


def by_host(
    duration: dict[str, Any] | None = None, strategy: str = "suppress", field: str = "host.name"
) -> SuppressionSettings:
    raw: dict[str, Any] = {"group_by": [field], "missing_fields_strategy": strategy}
    if duration is not None:
        raw["duration"] = duration
    settings = suppression_settings({"type": "eql", "alert_suppression": raw})
    assert settings is not None
    return settings


THIRTY = timedelta(minutes=30)
LOOKBACK_35 = timedelta(minutes=35)


# --- per time period ------------------------------------------------------------------------------------------


def test_three_runs_fold_into_one_alert() -> None:
    """FTR "suppresses alerts across three rule executions": 2+2+1 documents over runs at 06:00, 06:30, 07:00
    with a 300m window give one alert; docs_count 4, start/end the first and last event, last_detected the last run,
    kibana.alert.start (creation) unchanged."""
    h = Harness(by_host({"value": 300, "unit": "m"}))
    doc = {"host.name": "host-a", "event.category": "process"}
    h.index(
        {**doc, "@timestamp": iso("05:45:00")},
        {**doc, "@timestamp": iso("05:45:00")},
        {**doc, "@timestamp": iso("06:15:00")},
        {**doc, "@timestamp": iso("06:15:00")},
        {**doc, "@timestamp": iso("06:45:00")},
    )
    h.runs(at("06:00:00"), 3, THIRTY, LOOKBACK_35)
    [alert] = h.alerts.values()
    assert alert["kibana.alert.suppression.terms"] == [{"field": "host.name", "value": ["host-a"]}]
    assert alert["kibana.alert.suppression.docs_count"] == 4
    assert alert["kibana.alert.suppression.start"] == iso("05:45:00")
    assert alert["kibana.alert.suppression.end"] == iso("06:45:00")
    assert alert["kibana.alert.original_time"] == iso("05:45:00")
    assert alert["kibana.alert.start"] == iso("06:00:00")
    assert alert["@timestamp"] == iso("06:00:00")
    assert alert["kibana.alert.last_detected"] == iso("07:00:00")


def test_later_run_reports_the_earlier_alert_as_updated() -> None:
    """A fold into an alert of an earlier run is an update of that alert (Kibana reports it to the alerts client
    with the new docs_count, end and last_detected): the run returns the whole updated document."""
    h = Harness(by_host({"value": 300, "unit": "m"}))
    h.index(
        {"host.name": "host-a", "@timestamp": iso("05:45:00")}, {"host.name": "host-a", "@timestamp": iso("06:15:00")}
    )
    first = h.run(at("06:00:00"), LOOKBACK_35)
    second = h.run(at("06:30:00"), LOOKBACK_35)
    assert len(first.created) == 1 and first.updated == []
    assert second.created == []
    [updated] = second.updated
    assert updated["kibana.alert.uuid"] == first.created[0]["kibana.alert.uuid"]
    assert updated["kibana.alert.suppression.docs_count"] == 1
    assert second.decisions == {"folded": 1}


def test_window_shorter_than_interval_does_not_suppress_across_runs() -> None:
    """FTR "does not suppress alerts when suppression duration is less than rule interval": 20m window, 30m
    interval: each run's event gets its own alert. The window counts from the alert's creation (the run time),
    "beginning from when an event first meets the rule criteria and creates the alert" (docs)."""
    h = Harness(by_host({"value": 20, "unit": "m"}))
    h.index(
        {"host.name": "host-a", "@timestamp": iso("05:45:00")}, {"host.name": "host-a", "@timestamp": iso("06:15:00")}
    )
    h.runs(at("06:00:00"), 2, THIRTY, LOOKBACK_35)
    first, second = sorted(h.alerts.values(), key=lambda a: a["@timestamp"])
    assert (first["@timestamp"], first["kibana.alert.suppression.docs_count"]) == (iso("06:00:00"), 0)
    assert (second["@timestamp"], second["kibana.alert.suppression.start"]) == (iso("06:30:00"), iso("06:15:00"))
    assert first["kibana.alert.instance.id"] == second["kibana.alert.instance.id"]


def test_lookback_overlap_neither_duplicates_nor_recounts() -> None:
    """FTR "ignores duplicate alerts while suppressing new ones": a 1h look-back makes the second run see the first
    run's two 05:45 documents again; the alerted one is a duplicate, the suppressed one was already counted
    (its time is not after the group's end), so docs_count is 1 + 3 = 4."""
    h = Harness(by_host({"value": 300, "unit": "m"}))
    doc1 = {"host.name": "host-a", "@timestamp": iso("05:45:00")}
    doc2 = {"host.name": "host-a", "@timestamp": iso("06:10:00")}
    h.index(doc1, doc1, doc2, doc2, doc2)
    h.runs(at("06:00:00"), 2, THIRTY, timedelta(hours=1))
    [alert] = h.alerts.values()
    assert alert["kibana.alert.suppression.docs_count"] == 4
    assert (alert["kibana.alert.suppression.start"], alert["kibana.alert.suppression.end"]) == (
        iso("05:45:00"),
        iso("06:10:00"),
    )
    kinds = [d.kind for d in h.decisions]
    assert kinds == ["created", "folded", "duplicate", "already_suppressed", "folded", "folded", "folded"]


def test_timestamp_override_sets_the_suppression_times() -> None:
    """FTR "suppresses alerts when using a timestamp override": with timestamp_override event.ingested, a late
    document (old @timestamp, ingested 06:10) is searched and suppressed by its ingest time."""
    h = Harness(by_host({"value": 300, "unit": "m"}), time_field="event.ingested")
    h.index(
        {"host.name": "host-a", "@timestamp": iso("05:45:00"), "event.ingested": iso("05:45:00")},
        {"host.name": "host-a", "@timestamp": iso("03:00:00"), "event.ingested": iso("06:10:00")},
    )
    h.runs(at("06:00:00"), 2, THIRTY, LOOKBACK_35)
    [alert] = h.alerts.values()
    assert alert["kibana.alert.suppression.docs_count"] == 1
    assert alert["kibana.alert.suppression.start"] == iso("05:45:00")
    assert alert["kibana.alert.suppression.end"] == iso("06:10:00")


def test_closed_alert_stops_suppression() -> None:
    """FTR "does not suppress a new alert ... if the original alert is closed" and the docs' "Impact of closing
    suppressed alerts": after closing, the next matching event opens a new alert."""
    h = Harness(by_host({"value": 300, "unit": "m"}))
    h.index(
        {"host.name": "host-a", "@timestamp": iso("05:45:00")}, {"host.name": "host-a", "@timestamp": iso("06:15:00")}
    )
    first = h.run(at("06:00:00"), LOOKBACK_35)
    h.suppressor.close_alert(first.created[0]["kibana.alert.uuid"])
    second = h.run(at("06:30:00"), LOOKBACK_35)
    assert len(second.created) == 1 and second.updated == []
    assert second.created[0]["kibana.alert.suppression.docs_count"] == 0


# --- per rule execution ---------------------------------------------------------------------------------------


def test_per_execution_suppresses_within_the_run() -> None:
    """FTR "only suppresses alerts within the rule execution": three documents (06:45, 06:50, 06:45) in one run
    give one alert for the earliest, docs_count 2, end 06:50."""
    h = Harness(by_host())
    h.index(
        {"host.name": "host-a", "@timestamp": iso("06:45:00")},
        {"host.name": "host-a", "@timestamp": iso("06:50:00")},
        {"host.name": "host-a", "@timestamp": iso("06:45:00")},
    )
    h.run(at("07:00:00"), LOOKBACK_35)
    [alert] = h.alerts.values()
    assert alert["kibana.alert.original_time"] == iso("06:45:00")
    assert alert["kibana.alert.suppression.start"] == iso("06:45:00")
    assert alert["kibana.alert.suppression.end"] == iso("06:50:00")
    assert alert["kibana.alert.suppression.docs_count"] == 2
    assert alert["kibana.alert.last_detected"] == iso("07:00:00")


def test_per_execution_opens_a_new_alert_each_run() -> None:
    """Docs: "Per rule execution: Create an alert each time the rule runs and an event meets its criteria" -
    Kibana suppresses only against alerts of the same execution (isRuleExecutionOnly)."""
    h = Harness(by_host())
    h.index(
        {"host.name": "host-a", "@timestamp": iso("05:45:00")}, {"host.name": "host-a", "@timestamp": iso("06:15:00")}
    )
    h.runs(at("06:00:00"), 2, THIRTY, LOOKBACK_35)
    assert sorted(a["kibana.alert.suppression.start"] for a in h.alerts.values()) == [iso("05:45:00"), iso("06:15:00")]
    assert all(a["kibana.alert.suppression.docs_count"] == 0 for a in h.alerts.values())


def test_per_execution_overlap_is_not_recounted() -> None:
    """Per rule execution, events of the look-back overlap already counted by the previous run's alert are
    dropped (the already-suppressed filter runs before the per-execution split in alertWithSuppression); a newer
    event in the same group opens this run's alert."""
    h = Harness(by_host())
    h.index(
        {"host.name": "host-a", "@timestamp": iso("05:58:00")},
        {"host.name": "host-a", "@timestamp": iso("05:58:00")},
        {"host.name": "host-a", "@timestamp": iso("06:10:00")},
    )
    first = h.run(at("06:00:00"), LOOKBACK_35)
    second = h.run(at("06:30:00"), LOOKBACK_35)
    assert first.created[0]["kibana.alert.suppression.docs_count"] == 1
    assert [a["kibana.alert.suppression.start"] for a in second.created] == [iso("06:10:00")]
    assert second.decisions == {"duplicate": 1, "already_suppressed": 1, "created": 1}


# --- missing fields -------------------------------------------------------------------------------------------

MISSING_DOCS = (
    {"host.name": "host-a", "agent.name": "agent-1", "@timestamp": iso("05:45:00")},
    {"host.name": "host-a", "agent.name": "agent-1", "@timestamp": iso("05:45:00")},
    {"host.name": "host-a", "@timestamp": iso("05:45:00")},
    {"host.name": "host-a", "@timestamp": iso("05:45:00")},
    {"host.name": "host-a", "@timestamp": iso("06:10:00")},
    {"host.name": "host-a", "agent.name": "agent-1", "@timestamp": iso("06:10:00")},
)


def test_missing_fields_suppress_groups_them_under_null() -> None:
    """FTR "suppress alerts with missing fields when rule is configured to do so": two alerts, one for agent-1 and
    one whose term value is null, each with docs_count 2. Docs: "Missing fields get a null value"."""
    h = Harness(by_host({"value": 300, "unit": "m"}, field="agent.name"))
    h.index(*MISSING_DOCS)
    h.runs(at("06:00:00"), 2, THIRTY, LOOKBACK_35)
    by_value = {str(a["kibana.alert.suppression.terms"][0]["value"]): a for a in h.alerts.values()}
    assert set(by_value) == {"['agent-1']", "None"}
    assert by_value["None"]["kibana.alert.suppression.terms"] == [{"field": "agent.name", "value": None}]
    for alert in by_value.values():
        assert alert["kibana.alert.suppression.docs_count"] == 2
        assert alert["kibana.alert.suppression.end"] == iso("06:10:00")


def test_missing_fields_do_not_suppress_alerts_each_event() -> None:
    """FTR "does not suppress alerts with missing fields if configured as such": one suppressed alert for agent-1
    (docs_count 2) and three plain alerts without any suppression field."""
    h = Harness(by_host({"value": 300, "unit": "m"}, strategy="doNotSuppress", field="agent.name"))
    h.index(*MISSING_DOCS)
    h.runs(at("06:00:00"), 2, THIRTY, LOOKBACK_35)
    suppressed = [a for a in h.alerts.values() if "kibana.alert.suppression.terms" in a]
    plain = [a for a in h.alerts.values() if "kibana.alert.suppression.terms" not in a]
    assert len(suppressed) == 1 and suppressed[0]["kibana.alert.suppression.docs_count"] == 2
    assert len(plain) == 3
    assert not any(
        k.startswith("kibana.alert.suppression") or k == "kibana.alert.instance.id" for a in plain for k in a
    )


@pytest.mark.parametrize("empty", [None, [], [None]])
def test_null_and_empty_arrays_are_missing(empty: Any) -> None:
    """Kibana reads group-by values through Elasticsearch's fields API, which leaves out null values and empty
    arrays: such a field is missing (partitionMissingFieldsEvents)."""
    h = Harness(by_host(strategy="doNotSuppress"))
    h.index({"host.name": empty, "@timestamp": iso("06:45:00")}, {"host.name": empty, "@timestamp": iso("06:46:00")})
    h.run(at("07:00:00"), LOOKBACK_35)
    assert [d.kind for d in h.decisions] == ["unsuppressed", "unsuppressed"]


# --- multi-valued fields --------------------------------------------------------------------------------------


def test_eql_groups_by_the_whole_sorted_array() -> None:
    """Docs ("Suppression for fields with an array of values"): for event correlation rules "alerts with identical
    array values are grouped together"; FTR "suppresses alerts on a field with array values" expects the term value
    ['host-a', 'host-b']. getSuppressionTerms sorts the array, so the order of values does not matter, but a
    different set of values is a different group."""
    h = Harness(by_host())
    h.index(
        {"host.name": ["host-b", "host-a"], "@timestamp": iso("06:45:00")},
        {"host.name": ["host-a", "host-b"], "@timestamp": iso("06:45:00")},
        {"host.name": ["host-a", "host-b"], "@timestamp": iso("06:45:00")},
        {"host.name": ["host-a"], "@timestamp": iso("06:46:00")},
    )
    h.run(at("07:00:00"), LOOKBACK_35)
    alerts = h.sorted_alerts()
    counts = {
        tuple(a["kibana.alert.suppression.terms"][0]["value"]): a["kibana.alert.suppression.docs_count"] for a in alerts
    }
    assert counts == {("host-a", "host-b"): 2, ("host-a",): 0}


def test_query_rule_makes_a_group_per_value() -> None:
    """Docs: for custom query rules "alerts are grouped by each unique value and an alert is created for each
    group": destination.ip [127.0.0.1, 127.0.0.2] lands in two groups, each term value a scalar."""
    settings = suppression_settings({"type": "query", "alert_suppression": {"group_by": ["destination.ip"]}})
    assert settings is not None and settings.per_value
    h = Harness(settings, QUERY_RULE)
    h.index(
        {"destination.ip": ["127.0.0.1", "127.0.0.2"], "@timestamp": iso("06:45:00")},
        {"destination.ip": "127.0.0.2", "@timestamp": iso("06:46:00")},
    )
    h.run(at("07:00:00"), LOOKBACK_35)
    alerts = h.sorted_alerts()
    assert [a["kibana.alert.suppression.terms"] for a in alerts] == [
        [{"field": "destination.ip", "value": "127.0.0.1"}],
        [{"field": "destination.ip", "value": "127.0.0.2"}],
    ]
    assert [a["kibana.alert.suppression.docs_count"] for a in alerts] == [0, 1]
    assert len({a["kibana.alert.uuid"] for a in alerts}) == 2


def test_several_fields_group_by_their_combination() -> None:
    """Docs: "specify multiple fields to group events by unique combinations of values"."""
    settings = suppression_settings({"type": "eql", "alert_suppression": {"group_by": ["host.name", "user.name"]}})
    assert settings is not None
    h = Harness(settings)
    for user in ("alice", "bob", "alice"):
        h.index({"host.name": "web-01", "user.name": user, "@timestamp": iso("06:45:00")})
    h.run(at("07:00:00"), LOOKBACK_35)
    counts = {
        a["kibana.alert.suppression.terms"][1]["value"][0]: a["kibana.alert.suppression.docs_count"]
        for a in h.alerts.values()
    }
    assert counts == {"alice": 1, "bob": 0}


def test_event_fields_are_read_from_the_source_event() -> None:
    """Suppression reads the source document's fields; the alert's own event.kind is "signal", so grouping by an
    event.* field must use the original event's value (kept in kibana.alert.original_event)."""
    h = Harness(by_host(field="event.kind"))
    h.index({"event.kind": "event", "@timestamp": iso("06:45:00")})
    h.run(at("07:00:00"), LOOKBACK_35)
    [alert] = h.alerts.values()
    assert alert["kibana.alert.suppression.terms"] == [{"field": "event.kind", "value": ["event"]}]


# --- limits, identity, state ----------------------------------------------------------------------------------


def test_max_signals_counts_created_alerts_only() -> None:
    """Suppressed events do not use up max_signals ("max signals for suppression includes suppressed and created
    alerts; this allows to lift max signals limitation", executeBulkCreateAlerts): new alerts stop at the limit,
    folds go on."""
    h = Harness(by_host())
    for n in range(4):
        h.index({"host.name": f"host-{n % 2}", "@timestamp": iso(f"06:4{n}:00")})
    h.index({"host.name": "host-9", "@timestamp": iso("06:50:00")})
    result = h.run(at("07:00:00"), LOOKBACK_35, max_signals=2)
    assert len(result.created) == 2
    assert result.decisions == {"created": 2, "folded": 2, "dropped_max_signals": 1}


def test_ids_are_deterministic() -> None:
    """The kept alert's id is the plain alert id of its event (Kibana's in-memory suppression keeps generateId of
    the event and rule), and the instance id depends on terms, rule and space only: two replays agree."""

    def replay() -> list[tuple[str, str]]:
        h = Harness(by_host({"value": 1, "unit": "h"}))
        h.index(*MISSING_DOCS)
        h.runs(at("06:00:00"), 2, THIRTY, LOOKBACK_35)
        return sorted((a["kibana.alert.uuid"], a["kibana.alert.instance.id"]) for a in h.alerts.values())

    first = replay()
    assert first == replay()
    document = {**MISSING_DOCS[0], "_id": "doc-0"}
    plain = build_alert(RULE, document, origin=None, detected_at=at("06:00:00"))
    assert plain["kibana.alert.uuid"] in {uuid for uuid, _ in first}
    terms = [{"field": "host.name", "value": ["host-a"]}]
    assert instance_id(terms, rule_uuid(RULE)) == instance_id(terms, rule_uuid(RULE))
    assert instance_id(terms, rule_uuid(RULE)) != instance_id(terms, rule_uuid(QUERY_RULE))


def test_state_round_trip_continues_like_an_uninterrupted_run() -> None:
    """The state survives JSON between runs (for watch): a restored suppressor folds the next run's events into the
    same alert an uninterrupted one would."""
    settings = by_host({"value": 300, "unit": "m"})
    doc = {"host.name": "host-a"}
    docs = [{**doc, "@timestamp": iso(t)} for t in ("05:45:00", "05:45:00", "06:15:00", "06:45:00")]

    straight = Harness(settings)
    straight.index(*docs)
    straight.runs(at("06:00:00"), 3, THIRTY, LOOKBACK_35)

    resumed = Harness(settings)
    resumed.index(*docs)
    resumed.run(at("06:00:00"), LOOKBACK_35)
    for end in (at("06:30:00"), at("07:00:00")):
        state = json.loads(json.dumps(resumed.suppressor.to_state()))
        resumed.suppressor = Suppressor.from_state(settings, state)
        resumed.run(end, LOOKBACK_35)
    assert resumed.alerts == straight.alerts


def test_state_cannot_be_taken_mid_run() -> None:
    suppressor = Suppressor(by_host(), rule_uuid="r")
    suppressor.begin_run("r1", started_at=at("07:00:00"), search_from=at("06:25:00"))
    with pytest.raises(RuntimeError):
        suppressor.to_state()


# --- settings -------------------------------------------------------------------------------------------------


def test_settings_from_detection_rules_toml() -> None:
    """detection-rules TOML writes the Kibana field as a [rule.alert_suppression] table."""
    document = tomllib.loads(
        """
[rule]
type = "eql"
[rule.alert_suppression]
group_by = ["host.name", "process.parent.name"]
missing_fields_strategy = "doNotSuppress"
[rule.alert_suppression.duration]
value = 5
unit = "m"
"""
    )
    settings = suppression_settings(document["rule"])
    assert settings == SuppressionSettings(
        group_by=("host.name", "process.parent.name"), duration_seconds=300, missing_fields_strategy="doNotSuppress"
    )
    assert settings.to_kibana() == {
        "group_by": ["host.name", "process.parent.name"],
        "missing_fields_strategy": "doNotSuppress",
        "duration": {"value": 5, "unit": "m"},
    }


def test_settings_from_kibana_json_defaults() -> None:
    """Rules API: duration absent means per rule execution; missing_fields_strategy defaults to "suppress"
    (DEFAULT_SUPPRESSION_MISSING_FIELDS_STRATEGY)."""
    settings = suppression_settings(json.loads('{"type": "eql", "alert_suppression": {"group_by": ["host.name"]}}'))
    assert settings == SuppressionSettings(group_by=("host.name",))
    assert suppression_settings({"type": "eql"}) is None


def test_threshold_rule_groups_by_threshold_fields() -> None:
    """Docs: threshold rules group by their Group by (threshold.field) and only have the per-time-period option."""
    raw = {
        "type": "threshold",
        "threshold": {"field": ["host.name"], "value": 5},
        "alert_suppression": {"duration": {"value": 1, "unit": "h"}},
    }
    settings = suppression_settings(raw)
    assert settings is not None and settings.group_by == ("host.name",) and settings.duration_seconds == 3600
    with pytest.raises(SuppressionError, match="duration"):
        suppression_settings({**raw, "alert_suppression": {}})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"group_by": []}, "1 to 3"),
        ({"group_by": ["a", "b", "c", "d"]}, "1 to 3"),
        ({"group_by": "host.name"}, "list of field names"),
        ({"group_by": [""]}, "list of field names"),
        ({}, "group_by is required"),
        ({"group_by": ["a"], "duration": {"value": 0, "unit": "m"}}, "value"),
        ({"group_by": ["a"], "duration": {"value": 5, "unit": "d"}}, "unit"),
        ({"group_by": ["a"], "duration": "5m"}, "value, unit"),
        ({"group_by": ["a"], "missing_fields_strategy": "drop"}, "missing_fields_strategy"),
        ("host.name", "table/object"),
    ],
)
def test_invalid_settings_are_refused(raw: Any, message: str) -> None:
    """Kibana's rule schema: group_by 1-3 strings (the current docs say "enter 1-3 field names"; the issue's "up
    to 5" is not what Kibana accepts), duration {value >= 1, unit s|m|h}, strategy suppress|doNotSuppress."""
    with pytest.raises(SuppressionError, match=message):
        suppression_settings({"type": "eql", "alert_suppression": raw})


def test_offer_outside_a_run_is_refused() -> None:
    suppressor = Suppressor(by_host(), rule_uuid="r")
    alert = build_alert(
        RULE, {"host.name": "h", "@timestamp": iso("06:45:00")}, origin=None, detected_at=at("07:00:00")
    )
    with pytest.raises(RuntimeError):
        suppressor.offer(alert, at("06:45:00"))
