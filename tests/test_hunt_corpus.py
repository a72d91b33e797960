"""``shellwatch hunt`` over the real corpora in ../shared: the seed rules on real web-shell traces, the whole
corpus against an independent count, and damaged EVTX files.

The independent count is tools/count_webshell_pairs.py: it reads the raw records with the evtx package (and OTRF
JSON lines from zip files) and applies each seed rule's parent x child logic by hand, without any shellwatch
code, so agreement checks readers, normalizers, rule front ends and engine together.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import SHARED, shared_path
from shellwatch.cli import main
from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.query.eql import parse_eql
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import ReadProblem

EQL_SEED_ID = "2917d495-59bd-4250-b395-c29409b76086"
COUNTER_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "count_webshell_pairs.py"
LATERAL_MOVEMENT = ("corpus", "evtx-attack-samples", "Lateral Movement")
DAMAGED_SAMPLES = SHARED / "corpus" / "omerbenamram-evtx" / "samples"

PROCESS_START_QUERY = 'process where event.type == "start" and event.code in ("1", "4688")'
"""Sysmon 1 and Security 4688 process starts: the events the counter classifies as process starts."""
PROCESS_START_PROBE = Rule(
    rule_id="test-process-start-probe",
    name="process start probe",
    description="Every Sysmon 1 / Security 4688 process start, to count them against the independent counter.",
    type="eql",
    language="eql",
    query=PROCESS_START_QUERY,
    ir=parse_eql(PROCESS_START_QUERY),
    source=RuleSource(path="tests/test_hunt_corpus.py"),
)


@cache
def seed_rules() -> tuple[Rule, Rule]:
    """(EQL seed rule, Sigma seed rule) from the bundled pack."""
    rules = load_bundled_rules().rules
    eql = [r for r in rules if r.language == "eql"]
    sigma = [r for r in rules if r.language == "sigma"]
    assert len(eql) == 1 and len(sigma) == 1, [r.rule_id for r in rules]
    assert eql[0].rule_id == EQL_SEED_ID
    return eql[0], sigma[0]


def run_hunt(paths: list[str], rules: list[Rule]) -> tuple[list[dict[str, Any]], HuntStats, list[ReadProblem]]:
    stats = HuntStats()
    problems: list[ReadProblem] = []
    alerts = list(hunt(paths, RuleSet(rules), stats=stats, on_problem=problems.append))
    return alerts, stats, problems


def alerts_by_rule(alerts: list[dict[str, Any]]) -> Counter[str]:
    return Counter(alert["kibana.alert.rule.rule_id"] for alert in alerts)


# ------------------------------------------------------------------------------------------------------------
# The two web-shell traces of EVTX-ATTACK-SAMPLES.


def test_iis_webshell_trace_raises_both_seed_rules_once() -> None:
    """w3wp.exe -> cmd.exe (Sysmon 1, record 1044 of IEWIN7): both rules know w3wp and cmd."""
    path = shared_path(*LATERAL_MOVEMENT, "LM_typical_IIS_webshell_sysmon_1_10_traces.evtx")
    eql, sigma = seed_rules()
    alerts, stats, problems = run_hunt([str(path)], [eql, sigma])
    assert problems == []
    assert stats.records == 4
    assert alerts_by_rule(alerts) == {eql.rule_id: 1, sigma.rule_id: 1}
    for alert in alerts:
        assert alert["process"]["parent"]["name"].lower() == "w3wp.exe"
        assert alert["process"]["name"].lower() == "cmd.exe"
        assert str(alert["winlog"]["record_id"]) == "1044"
        assert alert["shellwatch.origin"]["path"] == str(path)
    # One event, two rules: two distinct alert ids.
    assert len({alert["kibana.alert.uuid"] for alert in alerts}) == 2


def test_xp_cmdshell_trace_raises_the_sigma_seed_rule_only() -> None:
    """sqlservr.exe -> cmd.exe: only the Sigma rule lists sqlservr.exe among the web server processes."""
    path = shared_path(*LATERAL_MOVEMENT, "sysmon_1_exec_via_sql_xpcmdshell.evtx")
    eql, sigma = seed_rules()
    alerts, _, problems = run_hunt([str(path)], [eql, sigma])
    assert problems == []
    assert alerts_by_rule(alerts) == {sigma.rule_id: 1}
    assert alerts[0]["process"]["parent"]["name"].lower() == "sqlservr.exe"
    assert alerts[0]["process"]["name"].lower() == "cmd.exe"


# ------------------------------------------------------------------------------------------------------------
# The whole corpus against the independent counter.


def load_counter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("count_webshell_pairs", COUNTER_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def counter_label(alert: dict[str, Any]) -> str:
    """An alert's event as the counter names it: ``file record-id`` (the event's EventRecordID), or
    ``archive.zip!member:line`` for an OTRF record without a record number."""
    origin = alert["shellwatch.origin"]
    container, _, member = str(origin["path"]).partition("!")
    file_name = Path(container).name
    record_id = (alert.get("winlog") or {}).get("record_id")
    if record_id is not None:
        return f"{file_name} {record_id}"
    return f"{file_name}!{member}:{origin['line']}"


@dataclass(frozen=True)
class CorpusHunt:
    alerts: list[dict[str, Any]]
    stats: HuntStats
    counted: dict[str, Any]


@pytest.fixture(scope="module")
def corpus_hunt() -> CorpusHunt:
    """One hunt of the whole corpus with both seed rules and the process-start probe, and one counter run."""
    corpus = shared_path("corpus")
    eql, sigma = seed_rules()
    alerts, stats, _ = run_hunt([str(corpus)], [eql, sigma, PROCESS_START_PROBE])
    counted = load_counter().count([str(corpus)])
    return CorpusHunt(alerts, stats, counted)


@pytest.mark.parametrize("language", ["eql", "sigma"])
def test_whole_corpus_seed_alerts_equal_the_independent_count(corpus_hunt: CorpusHunt, language: str) -> None:
    rule = seed_rules()[0 if language == "eql" else 1]
    hunted = sorted(counter_label(a) for a in corpus_hunt.alerts if a["kibana.alert.rule.rule_id"] == rule.rule_id)
    expected = sorted(corpus_hunt.counted[f"{language}_events"])
    print(
        f"\n{language} seed rule over the corpus: shellwatch hunt {len(hunted)} alerts, "
        f"count_webshell_pairs {corpus_hunt.counted[language]} ({corpus_hunt.stats.records:,} records hunted "
        f"in {corpus_hunt.stats.seconds:.1f} s)"
    )
    assert len(hunted) == corpus_hunt.counted[language]
    assert hunted == expected
    assert hunted, "the corpus holds web-shell traces; a hunt that finds none proves nothing"


def test_whole_corpus_process_starts_equal_the_independent_count(corpus_hunt: CorpusHunt) -> None:
    """Every Sysmon 1 / Security 4688 event the counter finds is read and normalized as a process start, once."""
    probe = [a for a in corpus_hunt.alerts if a["kibana.alert.rule.rule_id"] == PROCESS_START_PROBE.rule_id]
    print(
        f"\nprocess starts: shellwatch hunt {len(probe)}, count_webshell_pairs {corpus_hunt.counted['process_starts']}"
    )
    assert len(probe) == corpus_hunt.counted["process_starts"]
    assert len(probe) > 2000


def test_whole_corpus_alert_ids_are_unique(corpus_hunt: CorpusHunt) -> None:
    ids = [alert["kibana.alert.uuid"] for alert in corpus_hunt.alerts]
    assert len(ids) == len(set(ids)) == corpus_hunt.stats.alerts
    # The regression JSON renderings repeat their EVTX files' events: matched twice, alerted once.
    assert corpus_hunt.stats.duplicates > 0


# ------------------------------------------------------------------------------------------------------------
# Damaged EVTX files (omerbenamram/evtx's robustness samples).


def _damaged_samples() -> list[object]:
    if not DAMAGED_SAMPLES.is_dir():
        return [pytest.param(None, id="samples-absent")]
    return [pytest.param(path.name, id=path.name) for path in sorted(DAMAGED_SAMPLES.glob("*.evtx"))]


KNOWN_DAMAGED = ("sample_with_a_bad_chunk_magic.evtx", "sysmon.evtx")
"""Files with chunks that no reader can recover (bad chunk magic): these must report problems."""


@pytest.mark.parametrize("name", _damaged_samples())
def test_damaged_evtx_is_hunted_with_problems_reported(name: str | None) -> None:
    samples = shared_path("corpus", "omerbenamram-evtx", "samples")
    assert name is not None
    path = str(samples / name)
    problems: list[ReadProblem] = []
    readable = sum(1 for _ in read_paths([path], on_problem=problems.append))

    alerts, stats, hunt_problems = run_hunt([path], list(seed_rules()))
    assert stats.records == readable
    assert [str(p) for p in hunt_problems] == [str(p) for p in problems]
    assert alerts == []  # none of these logs holds a web server spawning a shell

    result = CliRunner().invoke(main, ["hunt", "--format", "ndjson", path])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    summary = re.search(r"([\d,]+) records", result.stderr)
    assert summary is not None, result.stderr
    assert int(summary.group(1).replace(",", "")) == readable
    if problems:
        assert "warning" in result.stderr
        assert path in result.stderr
    if name in KNOWN_DAMAGED:
        assert problems, f"{name} has unreadable chunks; the reader reported none"
