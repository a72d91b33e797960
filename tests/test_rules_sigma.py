"""Sigma YAML -> rule outcomes: metadata mapping, derived ids, multi-document files, errors.

Sources cited:
- [sigma-spec] Sigma specification v2, SigmaHQ/sigma-specification ``specification/sigma-rules-specification.md``
  (title, id, status, level, tags, author, falsepositives, logsource, detection) and
  ``specification/sigma-meta-rules-specification.md`` (correlation and filter rules).
- [pysigma-collection] pySigma 1.5 ``sigma/collection.py`` ``SigmaCollection.from_dicts``: ``action: global``
  / ``reset`` / ``repeat`` in multi-document files.
- [kibana-risk] Kibana's default severity -> risk score: low 21, medium 47, high 73, critical 99
  (shellwatch.rules.model.SIGMA_LEVEL_SEVERITY).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from shellwatch.rules.loader import bundled_pack_path
from shellwatch.rules.model import Rule
from shellwatch.rules.outcome import LoadOutcome
from shellwatch.rules.sigma_yaml import SIGMA_RULE_ID_NAMESPACE, derived_rule_id, load_sigma_yaml

SEED_SIGMA = bundled_pack_path() / "web_server_suspicious_child_process.yml"

RULE = """
title: Test rule
id: 5ad6d1a6-4a1b-4a3b-9a9e-0123456789ab
status: test
description: Something happened.
author: Alice (Org), Bob
references:
    - https://example.com/a
tags:
    - attack.execution
    - attack.t1059.001
    - car.2016-04-005
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\cmd.exe'
    condition: selection
falsepositives:
    - Admins
level: {level}
"""


def _one(text: str, path: str = "rule.yml") -> LoadOutcome:
    [outcome] = load_sigma_yaml(text, path)
    return outcome


def _rule(outcome: LoadOutcome) -> Rule:
    assert outcome.rule is not None, outcome.reason
    return outcome.rule


def test_seed_rule_metadata() -> None:
    """Seed 002's rule: title -> name, no id -> derived id, level high -> high/73 [kibana-risk], status,
    falsepositives, logsource, tags kept, detection as the query, Kibana's defaults for the schedule."""
    outcome = _one(SEED_SIGMA.read_text(encoding="utf-8"), str(SEED_SIGMA))
    assert outcome.status == "ok", outcome.reason
    rule = _rule(outcome)
    assert rule.name == "web服务产生的可疑进程"
    assert rule.description == "Web服务器产生的可疑的shell进程，可能是成功放置Web shell或其他攻击的结果"
    assert (rule.type, rule.language) == ("sigma", "sigma")
    assert (rule.severity, rule.risk_score) == ("high", 73)
    assert rule.status == "experimental"
    assert rule.logsource == {"category": "process_creation", "product": "windows"}
    assert rule.tags == ("attack.persistence", "attack.t1505.003", "attack.privilege_escalation", "attack.t1190")
    assert rule.false_positives == (
        "特定的web应用程序可以合法地派生shell进程，如ipconfig、whoami等进程，在部分客户侧，发现此两进程频繁被调用，其主机并无异常。",
    )
    assert (rule.interval, rule.from_, rule.max_signals, rule.version) == ("5m", "now-6m", 100, 1)
    assert rule.author == () and rule.references == () and rule.index == ()
    detection = yaml.safe_load(rule.query)
    assert detection["condition"] == "selection"
    assert detection["selection"]["ParentImage"][0] == "*\\w3wp.exe"
    assert detection["selection"]["Image"][-1] == "*\\whoami.exe"


def test_seed_rule_threat_mapping() -> None:
    """attack.t1505.003 -> T1505 / T1505.003 under Persistence (the table files T1505 there); T1190 serves
    neither named tactic, so it goes under both (rules.attack module docstring, step 2)."""
    rule = _rule(_one(SEED_SIGMA.read_text(encoding="utf-8")))
    assert [t.tactic.id for t in rule.threat] == ["TA0003", "TA0004"]
    persistence, privilege_escalation = rule.threat
    assert persistence.tactic.name == "Persistence"
    assert [t.id for t in persistence.techniques] == ["T1505", "T1190"]
    assert persistence.techniques[0].name == "Server Software Component"
    assert [(s.id, s.name, s.reference) for s in persistence.techniques[0].subtechniques] == [
        ("T1505.003", "Web Shell", "https://attack.mitre.org/techniques/T1505/003/")
    ]
    assert privilege_escalation.tactic.name == "Privilege Escalation"
    assert [t.id for t in privilege_escalation.techniques] == ["T1190"]


def test_seed_rule_id_is_derived_from_its_content_and_pinned() -> None:
    """No ``id``: UUIDv5 under SIGMA_RULE_ID_NAMESPACE of the document as canonical JSON (sorted keys, no
    spaces, non-ASCII kept). Recomputed here independently, and pinned so an accidental change shows."""
    text = SEED_SIGMA.read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    expected = str(uuid.uuid5(SIGMA_RULE_ID_NAMESPACE, canonical))
    assert _one(text).rule_id == expected == "12a3e00c-780c-5f9c-bd64-246c13be4bc9"
    assert uuid.UUID(expected).version == 5


def test_derived_id_ignores_formatting_and_follows_content() -> None:
    text = SEED_SIGMA.read_text(encoding="utf-8")
    reformatted = yaml.safe_dump(yaml.safe_load(text), allow_unicode=True, sort_keys=True)
    assert _one(reformatted).rule_id == _one(text).rule_id
    changed = text.replace("level: high", "level: medium")
    assert _one(changed).rule_id != _one(text).rule_id
    assert derived_rule_id({"title": "a", "action": "repeat"}) == derived_rule_id({"title": "a"})


@pytest.mark.parametrize(
    ("level", "severity", "risk"),
    [
        ("informational", "low", 21),
        ("low", "low", 21),
        ("medium", "medium", 47),
        ("high", "high", 73),
        ("critical", "critical", 99),
    ],
)
def test_level_maps_to_severity_and_risk(level: str, severity: str, risk: int) -> None:
    """[kibana-risk] 21/47/73/99; informational maps to low."""
    rule = _rule(_one(RULE.format(level=level)))
    assert (rule.severity, rule.risk_score) == (severity, risk)


def test_rule_without_level_is_informational() -> None:
    rule = _rule(_one(RULE.format(level="low").replace("level: low\n", "")))
    assert (rule.severity, rule.risk_score) == ("low", 21)


def test_explicit_id_authors_references_and_tags() -> None:
    rule = _rule(_one(RULE.format(level="high")))
    assert rule.rule_id == "5ad6d1a6-4a1b-4a3b-9a9e-0123456789ab"
    assert rule.author == ("Alice (Org)", "Bob")
    assert rule.references == ("https://example.com/a",)
    assert rule.false_positives == ("Admins",)
    assert rule.status == "test"
    assert "car.2016-04-005" in rule.tags
    [execution] = rule.threat
    assert execution.tactic.id == "TA0002"
    assert [(t.id, t.name) for t in execution.techniques] == [("T1059", "Command and Scripting Interpreter")]
    assert execution.techniques[0].subtechniques[0].name == "PowerShell"


def test_invalid_level_is_an_error() -> None:
    outcome = _one(RULE.format(level="urgent"))
    assert outcome.status == "error"
    assert outcome.reason == "'urgent' is not a valid Sigma rule level"
    assert outcome.name == "Test rule"


def test_missing_title_is_an_error() -> None:
    outcome = _one(RULE.format(level="high").replace("title: Test rule\n", ""))
    assert (outcome.status, outcome.reason) == ("error", "Sigma rule must have a title")


def test_invalid_yaml_names_the_line() -> None:
    outcome = _one("title: x\nlogsource:\n  product: windows\n detection: [unclosed\n")
    assert outcome.status == "error"
    assert outcome.reason.startswith("invalid YAML")
    assert outcome.line is not None and outcome.line >= 3


def test_duplicate_keys_are_an_error() -> None:
    """pySigma's own YAML loader rejects duplicate keys (a silently shadowed selection would change the rule)."""
    outcome = _one("title: a\ntitle: b\n")
    assert outcome.status == "error"
    assert "Duplicate key" in outcome.reason


def test_document_that_is_not_a_mapping_is_an_error() -> None:
    outcome = _one("- just\n- a list\n")
    assert (outcome.status, outcome.reason) == ("error", "a Sigma document must be a YAML mapping")


def test_empty_file_is_an_error() -> None:
    assert _one("# nothing\n").reason == "no Sigma rule in the file"


def test_correlation_and_filter_rules_are_unsupported() -> None:
    """[sigma-spec] meta rules: correlations and filters are not single-event rules."""
    correlation = """
title: Many failed logons
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [User]
    timespan: 10m
    condition: {gte: 10}
"""
    filter_rule = """
title: Filter admin workstations
filter:
    rules: [failed_logon]
    selection:
        ComputerName: admin-ws
    condition: not selection
logsource:
    product: windows
"""
    assert (_one(correlation).status, _one(correlation).reason) == ("unsupported", "Sigma correlation rule")
    assert _one(correlation).rule_id == "0e95725d-7320-415d-80f7-004da920fc11"
    # A filter is not a rule: it loads ok, with no rule of its own, and is applied to the rules it names.
    assert (_one(filter_rule).status, _one(filter_rule).language, _one(filter_rule).rule) == (
        "ok",
        "sigma-filter",
        None,
    )


MULTI = """
action: global
title: Suspicious shells
status: test
logsource:
    product: windows
detection:
    condition: selection
level: high
---
logsource:
    category: process_creation
detection:
    selection:
        Image|endswith: '\\cmd.exe'
---
action: repeat
detection:
    selection:
        Image|endswith: '\\powershell.exe'
---
action: reset
---
title: Standalone
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/sh'
    condition: selection
"""


def test_multi_document_file_follows_pysigma_collection() -> None:
    """[pysigma-collection] global template merged into each rule, ``repeat`` builds on the previous rule,
    ``reset`` drops the template: the same rules, in the same order, as SigmaCollection.from_yaml."""
    outcomes = load_sigma_yaml(MULTI, "multi.yml")
    expected = SigmaCollection.from_yaml(MULTI, resolve_references=False).rules
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"]
    assert (
        [o.name for o in outcomes]
        == [r.title for r in expected]
        == ["Suspicious shells", "Suspicious shells", "Standalone"]
    )
    assert [o.index for o in outcomes] == [1, 2, 4]
    assert [dict(_rule(o).logsource) for o in outcomes] == [
        {"category": r.logsource.category, "product": r.logsource.product} for r in expected if isinstance(r, SigmaRule)
    ]
    images = [yaml.safe_load(_rule(o).query)["selection"]["Image|endswith"] for o in outcomes]
    assert images == ["\\cmd.exe", "\\powershell.exe", "/sh"]
    assert len({o.rule_id for o in outcomes}) == 3
    assert outcomes[1].where == "multi.yml#2"


def test_one_broken_document_does_not_hide_the_others() -> None:
    text = MULTI.replace("action: reset", "action: explode")
    outcomes = load_sigma_yaml(text, "multi.yml")
    assert [o.status for o in outcomes] == ["ok", "ok", "error", "ok"]
    assert outcomes[2].reason == "unknown Sigma collection action 'explode'"


def test_partly_mapped_logsource_loads_with_a_note() -> None:
    """The logsource choice (rules.sigma_yaml docstring): fields that may still match keep the rule ok, with the
    query front end's reason in the note."""
    text = RULE.format(level="low").replace("product: windows\n    category: process_creation", "category: webserver")
    outcome = _one(text)
    assert outcome.status == "ok"
    assert "webserver" in outcome.reason


def test_placeholder_rule_is_unsupported() -> None:
    text = RULE.format(level="low").replace("Image|endswith: '\\cmd.exe'", "Image|expand: '%admin_tools%'")
    outcome = _one(text)
    assert outcome.status == "unsupported"
    assert "%admin_tools%" in outcome.reason


def test_deeply_nested_yaml_is_refused_before_it_is_built() -> None:
    """libyaml's C composer recurses per nesting level and crashes the interpreter on ~100k levels; the loader
    refuses the file from the parser's event stream first (rules.yaml_limits)."""
    outcome = _one("[" * 100_000)
    assert (outcome.status, outcome.reason) == ("error", "refused YAML: nested deeper than 64 levels")


def test_alias_bomb_is_refused() -> None:
    """A "billion laughs" file: nine levels of ten aliases each stand for 10^9 values."""
    letters = "abcdefghij"
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{letters[i + 1]}: &{letters[i + 1]} [{', '.join([f'*{letters[i]}'] * 10)}]\n" for i in range(8)
    )
    outcome = _one(text)
    assert outcome.status == "error"
    assert outcome.reason == "refused YAML: expands to more than 1000000 values through YAML aliases"


def test_small_aliases_are_accepted() -> None:
    text = RULE.format(level="low").replace("    condition: selection", "    other: *sel\n    condition: selection")
    text = text.replace("    selection:\n", "    selection: &sel\n")
    assert _one(text).status == "ok"


def test_value_yaml_cannot_build_is_an_error() -> None:
    """``2020-13-45`` matches YAML's timestamp pattern but is no date: PyYAML raises ValueError, reported."""
    outcome = _one("title: x\ndate: 2020-13-45\n")
    assert (outcome.status, outcome.reason) == ("error", "invalid YAML: month must be in 1..12")


def test_utf16_modifiers_load_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """The spec's utf16le modifier (Sigma specification, modifiers appendix) is known before the first rule is
    parsed: a rule using it loads even when it is the first rule a process reads."""
    import subprocess
    import sys

    rule = tmp_path / "utf16.yml"
    rule.write_text(
        "title: t\nlogsource: {product: windows, category: process_creation}\n"
        "detection:\n  sel:\n    CommandLine|utf16le|base64offset|contains: 'whoami'\n  condition: sel\n",
        encoding="utf-8",
    )
    code = (
        "import sys; from shellwatch.rules.loader import load_rules; "
        f"r = load_rules([{str(rule)!r}]); print([o.status for o in r]); sys.exit(0 if r.rules else 1)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
