"""Offline ATT&CK names and the Sigma tags -> Kibana threat placement (shellwatch.rules.attack).

Sources cited:
- [attack-urls] MITRE ATT&CK page addresses: https://attack.mitre.org/tactics/TA0003/,
  https://attack.mitre.org/techniques/T1505/ and, for a sub-technique, https://attack.mitre.org/techniques/T1505/003/.
- [sigma-tags] Sigma tags appendix (SigmaHQ/sigma-specification ``appendix/sigma-tags-appendix.md``):
  ``attack.<tactic>`` (hyphenated since v2, underscores before), ``attack.tNNNN[.NNN]``, ``attack.gNNNN``,
  ``attack.sNNNN``.
- [attack-v19] ATT&CK v19 renamed Defense Evasion (TA0005) to Stealth and added Defense Impairment (TA0112);
  SigmaHQ's rules use ``attack.stealth`` and ``attack.defense-impairment``.
"""

from __future__ import annotations

from shellwatch.rules.attack import (
    tactic_entry,
    technique_name,
    technique_reference,
    threat_from_sigma_tags,
)
from shellwatch.rules.attack_data import TACTICS, TECHNIQUE_NAMES


def _placement(tags: list[str]) -> list[tuple[str, list[str]]]:
    return [
        (t.tactic.id, [tech.id + "".join(f"/{s.id}" for s in tech.subtechniques) for tech in t.techniques])
        for t in threat_from_sigma_tags(tags)
    ]


def test_enterprise_tactics_are_all_there() -> None:
    ids = {tid for tid, _, _ in TACTICS}
    assert {f"TA{n:04d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 40, 42, 43)} <= ids
    privilege = tactic_entry("privilege_escalation")
    assert privilege is not None
    assert (privilege.id, privilege.name, privilege.reference) == (
        "TA0004",
        "Privilege Escalation",
        "https://attack.mitre.org/tactics/TA0004/",
    )
    assert tactic_entry("not_a_tactic") is None


def test_technique_names_and_references() -> None:
    """[attack-urls] technique and sub-technique pages; an id the table lacks keeps its id as name."""
    assert technique_name("T1505.003") == "Web Shell"
    assert technique_name("T1059") == "Command and Scripting Interpreter"
    assert technique_name("T9999") == "T9999"
    assert technique_reference("T1505") == "https://attack.mitre.org/techniques/T1505/"
    assert technique_reference("T1505.003") == "https://attack.mitre.org/techniques/T1505/003/"
    assert len(TECHNIQUE_NAMES) > 400


def test_technique_goes_under_the_named_tactic_it_serves() -> None:
    """T1543 serves persistence and privilege escalation; the rule names only persistence."""
    assert _placement(["attack.persistence", "attack.t1543.003"]) == [("TA0003", ["T1543/T1543.003"])]


def test_technique_serving_several_named_tactics_goes_under_each() -> None:
    assert _placement(["attack.persistence", "attack.privilege-escalation", "attack.t1543.003"]) == [
        ("TA0003", ["T1543/T1543.003"]),
        ("TA0004", ["T1543/T1543.003"]),
    ]


def test_technique_serving_no_named_tactic_goes_under_every_named_one() -> None:
    """T1190 is Initial Access in the table; the rule names execution only: the author's tactics win."""
    assert _placement(["attack.execution", "attack.t1190"]) == [("TA0002", ["T1190"])]


def test_unknown_technique_goes_under_every_named_tactic() -> None:
    placed = threat_from_sigma_tags(["attack.execution", "attack.t9999.001"])
    assert [(t.id, t.name, t.subtechniques[0].name) for t in placed[0].techniques] == [("T9999", "T9999", "T9999.001")]


def test_without_tactic_tags_the_table_gives_the_tactics() -> None:
    assert _placement(["attack.t1059.001"]) == [("TA0002", ["T1059/T1059.001"])]
    assert _placement(["attack.t1543"]) == [("TA0003", ["T1543"]), ("TA0004", ["T1543"])]


def test_unknown_technique_without_tactic_is_left_out_of_threat() -> None:
    assert threat_from_sigma_tags(["attack.t9999"]) == ()


def test_tactic_without_technique_is_kept() -> None:
    assert _placement(["attack.discovery"]) == [("TA0007", [])]


def test_technique_and_subtechnique_tags_merge() -> None:
    assert _placement(["attack.execution", "attack.t1059", "attack.t1059.001", "attack.T1059.003"]) == [
        ("TA0002", ["T1059/T1059.001/T1059.003"])
    ]


def test_other_tags_are_ignored() -> None:
    """[sigma-tags] groups, software, CAR and other namespaces are not tactics or techniques."""
    assert (
        threat_from_sigma_tags(["attack.g0032", "attack.s0002", "car.2016-04-005", "cve.2021-44228", "tlp.white"]) == ()
    )


def test_v19_tactics_are_recognised() -> None:
    """[attack-v19] attack.stealth -> TA0005 Stealth; attack.defense-impairment -> TA0112; a technique the
    table files under Defense Evasion serves either."""
    placed = threat_from_sigma_tags(["attack.stealth", "attack.t1027", "attack.defense-impairment", "attack.t1562.001"])
    assert [(t.tactic.id, t.tactic.name, [x.id for x in t.techniques]) for t in placed] == [
        ("TA0005", "Stealth", ["T1027", "T1562"]),
        ("TA0112", "Defense Impairment", ["T1027", "T1562"]),
    ]


def test_underscore_and_hyphen_tactic_spellings_agree() -> None:
    """[sigma-tags] attack.privilege_escalation (old) and attack.privilege-escalation (v2) are one tactic."""
    assert (
        _placement(["attack.privilege_escalation"]) == _placement(["attack.privilege-escalation"]) == [("TA0004", [])]
    )
