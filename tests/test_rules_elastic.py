"""Elastic detection-rules TOML, Kibana rule JSON and saved-objects NDJSON -> rule outcomes.

Sources cited:
- [dr-schema] elastic/detection-rules ``detection_rules/schemas/definitions.py`` and Kibana's rule schema
  (x-pack/solutions/security/plugins/security_solution/common/api/detection_engine/model/rule_schema): required
  fields rule_id, name, description, type, risk_score (0-100), severity (low/medium/high/critical).
- [kibana-export] Kibana "Export rules" (POST /api/detection_engine/rules/_export): NDJSON, one rule per line,
  exception lists/items after the rules, and a final ``{"exported_count": ...}`` summary line.
- [eql-category] Elasticsearch EQL search API ``event_category_field`` (default ``event.category``), which
  Kibana's ``event_category_override`` sets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import shared_path
from shellwatch.ecs import flatten
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.ir import And, Case, Equals
from shellwatch.rules.elastic_toml import load_elastic_toml
from shellwatch.rules.kibana_json import load_kibana_json, load_kibana_ndjson
from shellwatch.rules.kibana_schema import with_category_field
from shellwatch.rules.loader import bundled_pack_path
from shellwatch.rules.model import Rule
from shellwatch.rules.outcome import LoadOutcome

PACK_TOML = bundled_pack_path() / "persistence_webshell_detection.toml"

MINIMAL_EQL = """
[metadata]
maturity = "production"

[rule]
rule_id = "00000000-0000-4000-8000-000000000001"
name = "Minimal"
description = "A minimal EQL rule."
type = "eql"
language = "eql"
risk_score = 47
severity = "medium"
query = 'process where process.name == "a.exe"'
"""


def _toml(text: str) -> LoadOutcome:
    [outcome] = load_elastic_toml(text, "rule.toml")
    return outcome


def _rule(outcome: LoadOutcome) -> Rule:
    assert outcome.rule is not None, outcome.reason
    return outcome.rule


def test_pack_rule_carries_all_of_seed_000_metadata() -> None:
    """Seed 000 (version 416 of rule 2917d495...): every metadata field it shows, loaded from the pack."""
    outcome = _toml(PACK_TOML.read_text(encoding="utf-8"))
    assert outcome.status == "ok", outcome.reason
    rule = _rule(outcome)
    assert rule.rule_id == "2917d495-59bd-4250-b395-c29409b76086"
    assert rule.name == "Web Shell Detection: Script Process Child of Common Web Processes"
    assert (rule.type, rule.language) == ("eql", "eql")
    assert (rule.severity, rule.risk_score) == ("high", 73)
    assert (rule.interval, rule.from_, rule.max_signals, rule.version) == ("5m", "now-9m", 100, 416)
    assert rule.index == (
        "winlogbeat-*",
        "logs-endpoint.events.process-*",
        "logs-windows.sysmon_operational-*",
        "endgame-*",
        "logs-system.security*",
        "logs-sentinel_one_cloud_funnel.*",
        "logs-m365_defender.event-*",
        "logs-crowdstrike.fdr*",
    )
    assert rule.author == ("Elastic",)
    assert rule.license == "Elastic License v2"
    assert "Data Source: System" in rule.tags and "Tactic: Persistence" in rule.tags and len(rule.tags) == 14
    assert rule.note is not None and rule.note.startswith("## Triage and analysis")
    assert rule.timestamp_override == "event.ingested"
    assert rule.status == "production"
    assert rule.tactic_ids == ("TA0003", "TA0001", "TA0002")
    assert rule.technique_ids == (
        "T1505",
        "T1505.003",
        "T1190",
        "T1059",
        "T1059.001",
        "T1059.003",
        "T1059.005",
        "T1047",
    )
    assert rule.threat[0].to_kibana()["technique"][0]["subtechnique"][0] == {
        "id": "T1505.003",
        "name": "Web Shell",
        "reference": "https://attack.mitre.org/techniques/T1505/003/",
    }


def test_pack_rule_query_is_the_reference_query() -> None:
    """The pack changes no part of the query: it equals the reference TOML's, character for character."""
    import tomllib

    reference = shared_path("reference", "elastic", "persistence_webshell_detection.eql-version.toml")
    expected = tomllib.loads(reference.read_text(encoding="utf-8"))["rule"]
    rule = _rule(_toml(PACK_TOML.read_text(encoding="utf-8")))
    assert rule.query == expected["query"]
    assert rule.note == expected["note"]
    assert rule.description == expected["description"]


def test_missing_fields_are_named() -> None:
    """[dr-schema] rule_id, name, description, type, risk_score and severity are required."""
    outcome = _toml(MINIMAL_EQL.replace('severity = "medium"\n', "").replace('name = "Minimal"\n', ""))
    assert outcome.status == "error"
    assert outcome.reason == "missing required fields: name, severity"


def test_eql_rule_without_query_is_an_error() -> None:
    outcome = _toml(MINIMAL_EQL.replace("query = 'process where process.name == \"a.exe\"'\n", ""))
    assert (outcome.status, outcome.reason) == ("error", "missing required field: query")


@pytest.mark.parametrize(
    ("replacement", "reason"),
    [
        ('severity = "urgent"', "severity 'urgent' is not one of low, medium, high, critical"),
        ("risk_score = 101", "risk_score 101 is outside 0..100"),
        ('risk_score = "73"', "risk_score must be an integer, not a string"),
        ("risk_score = true", "risk_score must be an integer, not a boolean"),
    ],
)
def test_bad_severity_and_risk_are_errors(replacement: str, reason: str) -> None:
    """[dr-schema] severity is one of four words; risk_score an integer 0..100."""
    line = 'severity = "medium"' if replacement.startswith("severity") else "risk_score = 47"
    outcome = _toml(MINIMAL_EQL.replace(line, replacement))
    assert (outcome.status, outcome.reason) == ("error", reason)


def test_bad_metadata_is_an_error_even_for_an_unsupported_type() -> None:
    """A KQL rule with a bad severity is reported as the error it is, not hidden as unsupported."""
    text = MINIMAL_EQL.replace('type = "eql"', 'type = "query"').replace('severity = "medium"', 'severity = "x"')
    assert _toml(text).status == "error"


def test_invalid_toml_names_the_line() -> None:
    outcome = _toml('[rule]\nname = "x"\nrisk_score = = 3\n')
    assert outcome.status == "error"
    assert outcome.line == 3
    assert outcome.reason.startswith("invalid TOML:")
    assert outcome.where == "rule.toml:3"


def test_toml_without_rule_table_is_an_error() -> None:
    assert _toml("[metadata]\nmaturity = 'production'\n").reason == "no [rule] table"


@pytest.mark.parametrize(
    ("rule_type", "language", "reason"),
    [
        ("esql", "esql", "rule type 'esql'"),
        ("threat_match", "kuery", "rule type 'threat_match' (language 'kuery')"),
    ],
)
def test_rule_types_without_a_query_front_end_are_unsupported(rule_type: str, language: str, reason: str) -> None:
    text = MINIMAL_EQL.replace('type = "eql"', f'type = "{rule_type}"').replace(
        'language = "eql"', f'language = "{language}"'
    )
    outcome = _toml(text)
    assert (outcome.status, outcome.reason, outcome.language) == ("unsupported", reason, language)
    assert outcome.rule is None and outcome.rule_id == "00000000-0000-4000-8000-000000000001"


MINIMAL_KQL = (
    MINIMAL_EQL.replace('type = "eql"', 'type = "query"')
    .replace('language = "eql"', 'language = "kuery"')
    .replace("query = 'process where process.name == \"a.exe\"'", "query = 'process.name:a.exe and not user.name:root'")
)


@pytest.mark.parametrize("rule_type", ["query", "new_terms", "threshold"])
def test_kql_rule_types_compile(rule_type: str) -> None:
    """query, new_terms and threshold rules find their events with the same KQL query (Kibana's rule types;
    new_terms and threshold then group what it finds)."""
    text = MINIMAL_KQL.replace('type = "query"', f'type = "{rule_type}"')
    if rule_type == "new_terms":
        text += '[rule.new_terms]\nfield = "new_terms_fields"\nvalue = ["host.id"]\n'
        text += '[[rule.new_terms.history_window_start]]\nfield = "history_window_start"\nvalue = "now-7d"\n'
    if rule_type == "threshold":
        text += '[rule.threshold]\nfield = ["host.id"]\nvalue = 10\n'
    outcome = _toml(text)
    assert outcome.status == "ok", outcome.reason
    predicate = compile_predicate(_rule(outcome).ir)
    assert predicate({"process.name": "a.exe", "user.name": "alice"})
    assert not predicate({"process.name": "a.exe", "user.name": "root"})
    assert not predicate({"process.name": "A.EXE"})


def test_kql_rule_without_language_is_kql() -> None:
    """Kibana's rule schema defaults a query rule's language to kuery."""
    outcome = _toml(MINIMAL_KQL.replace('language = "kuery"\n', ""))
    assert outcome.status == "ok", outcome.reason


def test_invalid_kql_is_an_error_with_its_position() -> None:
    outcome = _toml(MINIMAL_KQL.replace("process.name:a.exe and", "process.name:(a.exe and"))
    assert outcome.status == "error"
    assert outcome.reason.startswith("query: line 1, column"), outcome.reason


def test_unsupported_kql_names_the_feature() -> None:
    outcome = _toml(MINIMAL_KQL.replace("process.name:a.exe", "process.*:a.exe"))
    assert outcome.status == "unsupported"
    assert outcome.reason.startswith("KQL field name pattern")


def test_plain_lucene_rule_compiles_and_a_range_is_unsupported() -> None:
    """Kibana sends a lucene rule query as query_string (kbn-es-query from_lucene.ts); lower-case ``or`` is
    a term in Lucene's classic syntax, not an operator."""
    text = MINIMAL_KQL.replace('language = "kuery"', 'language = "lucene"').replace(
        "query = 'process.name:a.exe and not user.name:root'",
        "query = 'process.name:a.exe AND event.type:(start or process_started) AND NOT user.name:root'",
    )
    outcome = _toml(text)
    assert outcome.status == "ok", outcome.reason
    predicate = compile_predicate(_rule(outcome).ir)
    assert predicate({"process.name": "a.exe", "event.type": ["or"]})
    assert not predicate({"process.name": "a.exe", "event.type": ["start"], "user.name": "root"})
    ranged = _toml(text.replace("NOT user.name:root", "process.pid:[1 TO 5]"))
    assert ranged.status == "unsupported" and ranged.reason.startswith("Lucene range query")


def test_machine_learning_rule_without_language_is_unsupported() -> None:
    text = MINIMAL_EQL.replace('type = "eql"', 'type = "machine_learning"').replace('language = "eql"\n', "")
    text = text.replace("query = 'process where process.name == \"a.exe\"'\n", "")
    assert _toml(text).reason == "rule type 'machine_learning'"


def test_eql_sequence_is_unsupported() -> None:
    """Sequences are multi-event; parse_eql raises UnsupportedQuery("sequence") and the rule says so."""
    text = MINIMAL_EQL.replace(
        "query = 'process where process.name == \"a.exe\"'",
        "query = '''sequence by host.id [process where true] [file where true]'''",
    )
    outcome = _toml(text)
    assert outcome.status == "unsupported"
    assert outcome.reason.startswith("sequence")


def test_invalid_eql_is_an_error_with_its_position() -> None:
    text = MINIMAL_EQL.replace('process.name == "a.exe"\'', "process.name == '")
    outcome = _toml(text)
    assert outcome.status == "error"
    assert outcome.reason.startswith("query: line 1, column")


def test_kibana_filters_join_the_query() -> None:
    """Kibana puts enabled filters in bool.filter and negated ones in bool.must_not beside the query
    (kbn-es-query es_query/from_filters.ts); EQL rules get them too (Kibana's EQL search request)."""
    text = (
        MINIMAL_EQL
        + "\n[[rule.filters]]\n[rule.filters.meta]\nnegate = true\n"
        + '[rule.filters.query.match_phrase]\n"user.name" = "b"\n'
    )
    outcome = _toml(text)
    assert outcome.status == "ok", outcome.reason
    predicate = compile_predicate(_rule(outcome).ir)
    assert predicate({"event.category": ["process"], "process.name": "a.exe", "user.name": "c"})
    assert not predicate({"event.category": ["process"], "process.name": "a.exe", "user.name": "b"})


def test_unsupported_filter_names_the_construct() -> None:
    text = MINIMAL_KQL + '\n[[rule.filters]]\n[rule.filters.query.query_string]\nquery = "x"\n'
    outcome = _toml(text)
    assert outcome.status == "unsupported"
    assert outcome.reason == "filter query 'query_string': in filters[0]"


def test_new_terms_seed_rule_loads_with_its_filters() -> None:
    """The September 2025 new_terms version of the seed rule: KQL query, two negated wildcard filters
    (case_insensitive), new_terms_fields host.id + process.command_line, history window now-7d."""
    path = shared_path("reference", "elastic", "persistence_webshell_detection.new_terms-version.toml")
    outcome = _toml(path.read_text(encoding="utf-8"))
    assert outcome.status == "ok", outcome.reason
    rule = _rule(outcome)
    assert (rule.type, rule.language) == ("new_terms", "kuery")
    assert rule.new_terms_fields == ("host.id", "process.command_line")
    assert rule.history_window_start == "now-7d" and len(rule.filters) == 2
    predicate = compile_predicate(rule.ir)
    shell = {
        "host.os.type": "windows",
        "host.id": "h1",
        "event.category": ["process"],
        "event.type": ["start"],
        "process.parent.name": "w3wp.exe",
        "process.name": "cmd.exe",
        "process.args": ["cmd.exe", "/c", "whoami"],
        "process.command_line": "cmd.exe /c whoami",
    }
    assert predicate(shell)
    assert predicate({**shell, "process.name": "CMD.EXE"})  # process.name.caseless
    assert not predicate({**shell, "process.command_line": '"C:\\program files\\x\\cmd.exe" /c whoami'})
    assert not predicate({**shell, "process.args": ["cmd.exe", "/c", "ver"]})
    assert not predicate({**shell, "process.command_line": "cmd.exe /c mode CON"})
    assert not predicate({k: v for k, v in shell.items() if k != "process.args"})


def test_corpus_kql_rules_compile() -> None:
    """Of the query (KQL / Lucene) and new_terms rules of elastic/detection-rules, at least 98% compile; the
    rest are unsupported with a reason, none is an error."""
    root = shared_path("corpus", "elastic-detection-rules")
    outcomes: list[LoadOutcome] = []
    for path in sorted(root.rglob("*.toml")):
        text = path.read_text(encoding="utf-8")
        if 'type = "query"' not in text and 'type = "new_terms"' not in text:
            continue
        outcomes.extend(o for o in load_elastic_toml(text, str(path)) if o.rule is None or o.rule.type != "eql")
    assert len(outcomes) >= 700
    ok = [o for o in outcomes if o.status == "ok"]
    assert not [o for o in outcomes if o.status == "error"], [o.reason for o in outcomes if o.status == "error"]
    assert len(ok) / len(outcomes) >= 0.98, [o.reason for o in outcomes if o.status != "ok"]
    for outcome in ok:
        compile_predicate(_rule(outcome).ir)


def test_event_category_override_moves_the_category_test() -> None:
    """[eql-category] ``info where X`` with event_category_override = "event.type" tests ``event.type`` for
    "info" (an exact term, as event.category would be) instead of ``event.category``."""
    text = MINIMAL_EQL.replace(
        "query = 'process where process.name == \"a.exe\"'",
        "event_category_override = \"event.type\"\nquery = '''info where event.action == \"x\"'''",
    )
    outcome = _toml(text)
    assert outcome.status == "ok", outcome.reason
    predicate = compile_predicate(_rule(outcome).ir)
    assert predicate(flatten({"event": {"type": ["info"], "action": "x"}}))
    assert not predicate(flatten({"event": {"category": ["info"], "action": "x"}}))
    assert not predicate(flatten({"event": {"type": ["Info"], "action": "x"}}))


def test_category_override_is_refused_when_the_category_test_is_not_first() -> None:
    """with_category_field moves only the test parse_eql puts first; anything else is left unsupported."""
    unexpected = And((Equals("a", ("1",)), Equals("event.category", ("info",), Case.SENSITIVE)))
    assert with_category_field(unexpected, "info where a == 1", "event.type") is None
    assert with_category_field(unexpected, "any where a == 1", "event.type") is unexpected
    assert with_category_field(unexpected, "/* c */ info where a == 1", "event.category") is unexpected


# ---------------------------------------------------------------------------------------------------------------
# Kibana JSON and NDJSON


def _kibana_rule(**changes: Any) -> dict[str, Any]:
    outcome = _toml(PACK_TOML.read_text(encoding="utf-8"))
    rule = _rule(outcome)
    document: dict[str, Any] = {
        "id": "5f3b5e2a-0000-4000-8000-000000000000",
        "rule_id": rule.rule_id,
        "name": rule.name,
        "description": rule.description,
        "type": "eql",
        "language": "eql",
        "query": rule.query,
        "risk_score": 73,
        "severity": "high",
        "from": "now-9m",
        "interval": "5m",
        "max_signals": 100,
        "version": 416,
        "enabled": True,
        "threat": [threat.to_kibana() for threat in rule.threat],
        "exceptions_list": [
            {"id": "abc", "list_id": "web-exceptions", "namespace_type": "single", "type": "detection"}
        ],
    }
    document.update(changes)
    return document


def test_kibana_rule_json_loads_like_the_toml() -> None:
    outcomes = load_kibana_json(json.dumps(_kibana_rule()), "rule.json")
    [outcome] = outcomes
    assert outcome.status == "ok", outcome.reason
    toml_rule = _rule(_toml(PACK_TOML.read_text(encoding="utf-8")))
    assert _rule(outcome).threat == toml_rule.threat
    assert _rule(outcome).ir == toml_rule.ir
    assert _rule(outcome).exceptions_list[0]["list_id"] == "web-exceptions"


def test_reference_kibana_summary_is_rejected_for_its_annotated_interval() -> None:
    """The reference summary annotates interval/max_signals with prose ("5m (Kibana default; ...)"): those
    are not valid values, and the loader says which field is wrong; without them the rule loads."""
    path = shared_path("reference", "elastic", "kibana-rule-v419-summary.json")
    text = path.read_text(encoding="utf-8")
    [outcome] = load_kibana_json(text, str(path))
    assert (outcome.status, outcome.reason) == ("error", "max_signals must be an integer, not a string")
    document = json.loads(text)
    del document["max_signals"]
    [outcome] = load_kibana_json(json.dumps(document), str(path))
    assert outcome.reason == "interval '5m (Kibana default; not set in TOML)' is not a duration like 5m"
    del document["interval"]
    [cleaned] = load_kibana_json(json.dumps(document), str(path))
    assert cleaned.status == "ok", cleaned.reason
    assert _rule(cleaned).version == 419
    assert _rule(cleaned).technique_ids[:2] == ("T1505", "T1505.003")


def test_ndjson_export_skips_summary_and_exception_lines() -> None:
    """[kibana-export] rules, then exception lists/items, then the summary line: only the rules are rules."""
    lines = [
        json.dumps(_kibana_rule()),
        json.dumps(_kibana_rule(rule_id="second", name="Second", query='process where process.name == "x"')),
        json.dumps({"list_id": "web-exceptions", "type": "detection", "name": "Exceptions"}),
        json.dumps({"item_id": "i1", "list_id": "web-exceptions", "entries": []}),
        json.dumps({"exported_count": 4, "exported_rules_count": 2, "missing_rules": []}),
    ]
    outcomes = load_kibana_ndjson("\n".join(lines) + "\n", "export.ndjson")
    assert [(o.status, o.rule_id, o.index, o.line) for o in outcomes] == [
        ("ok", "2917d495-59bd-4250-b395-c29409b76086", 0, 1),
        ("ok", "second", 1, 2),
    ]
    assert outcomes[1].where == "export.ndjson#1:2"


def test_ndjson_bad_line_is_an_error_with_its_line_and_the_rest_loads() -> None:
    text = json.dumps(_kibana_rule()) + "\n{not json\n" + json.dumps(_kibana_rule(rule_id="r3")) + "\n"
    outcomes = load_kibana_ndjson(text, "export.ndjson")
    assert [o.status for o in outcomes] == ["ok", "error", "ok"]
    assert outcomes[1].line == 2 and outcomes[1].reason.startswith("invalid JSON")


def test_json_file_holding_ndjson_is_read_line_by_line() -> None:
    text = json.dumps(_kibana_rule()) + "\n" + json.dumps({"exported_count": 1}) + "\n"
    assert [o.status for o in load_kibana_json(text, "export.json")] == ["ok"]


def test_json_array_of_rules() -> None:
    text = json.dumps([_kibana_rule(), _kibana_rule(rule_id="b", severity="bad")])
    assert [o.status for o in load_kibana_json(text, "rules.json")] == ["ok", "error"]


def test_invalid_json_names_the_line() -> None:
    [outcome] = load_kibana_json('{\n  "rule_id": "x",\n  oops\n}', "rule.json")
    assert (outcome.status, outcome.line) == ("error", 3)


def test_json_that_is_not_an_object_is_an_error() -> None:
    [outcome] = load_kibana_json('"just a string"', "rule.json")
    assert (outcome.status, outcome.reason) == ("error", "a rule must be a JSON object")


@pytest.mark.parametrize(
    ("threat", "reason"),
    [
        ("nope", "threat must be a list"),
        ([{"framework": "MITRE ATT&CK"}], "threat[0].tactic must be an object"),
        ([{"framework": "MITRE ATT&CK", "tactic": {"name": "Persistence"}}], "threat[0].tactic.id"),
        (
            [{"framework": "MITRE ATT&CK", "tactic": {"id": "TA0003", "name": "P"}, "technique": [{"id": "T1"}]}],
            "threat[0].technique[0].name must be a string",
        ),
    ],
)
def test_malformed_threat_is_an_error_naming_the_entry(threat: Any, reason: str) -> None:
    [outcome] = load_kibana_json(json.dumps(_kibana_rule(threat=threat)), "rule.json")
    assert outcome.status == "error"
    assert outcome.reason.startswith(reason)


def test_threat_reference_defaults_to_mitre_url() -> None:
    threat = [
        {
            "framework": "MITRE ATT&CK",
            "tactic": {"id": "TA0003", "name": "Persistence"},
            "technique": [
                {
                    "id": "T1505",
                    "name": "Server Software Component",
                    "subtechnique": [{"id": "T1505.003", "name": "Web Shell"}],
                }
            ],
        }
    ]
    [outcome] = load_kibana_json(json.dumps(_kibana_rule(threat=threat)), "rule.json")
    entry = _rule(outcome).threat[0]
    assert entry.tactic.reference == "https://attack.mitre.org/tactics/TA0003/"
    assert entry.techniques[0].subtechniques[0].reference == "https://attack.mitre.org/techniques/T1505/003/"


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    """Kibana exports carry many fields shellwatch does not use (related_integrations, meta...)."""
    document = _kibana_rule(related_integrations=[{"package": "endpoint"}], meta={"from": "1m"}, setup="...")
    [outcome] = load_kibana_json(json.dumps(document), "rule.json")
    assert outcome.status == "ok"


def test_deeply_nested_toml_and_json_are_errors_not_crashes() -> None:
    """tomllib and json recurse per nesting level; a hostile file must give an outcome, not a RecursionError."""
    assert _toml("a = " + "[" * 100_000).reason == "invalid TOML: nested too deeply"
    assert load_kibana_json("[" * 100_000, "r.json")[0].reason == "invalid JSON: nested too deeply"
    assert load_kibana_ndjson("[" * 100_000, "r.ndjson")[0].reason == "invalid JSON: nested too deeply"
