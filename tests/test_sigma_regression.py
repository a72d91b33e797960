"""SigmaHQ's own regression data: each process-creation rule must fire on the log recorded for it.

../shared/corpus/sigma/regression_data holds, per rule, a folder with the EVTX file the rule was written against,
its evtx_dump-style JSON rendering, and an ``info.yml`` naming the rule (``rule_metadata[0].id``) and, for most
rules, how many events must match (``regression_tests_info[0].match_count``). Each rule is looked up by id in the
SigmaHQ rule set of the same commit (../shared/corpus/sigmahq-rules), loaded alone, and hunted over both files
with the real pipeline (reader -> normalizer -> engine -> alert ids).

Expected counts follow SigmaHQ's regression runner (SigmaHQ/sigma tests/regression_tests_runner.py, which
passes a test with ``match_count`` when at least that many events match and one without it when any does), made
stricter where the data allows: with a ``match_count`` the rule must match exactly that many events (the files are
the rule's own test data, recorded for it), without one at least one. Both files must be read without a problem.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from conftest import SHARED, shared_path
from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_rules
from shellwatch.rules.model import Rule
from shellwatch.sources.record import ReadProblem

REGRESSION_DATA = SHARED / "corpus" / "sigma" / "regression_data"
SIGMA_RULES = SHARED / "corpus" / "sigmahq-rules"
FORMATS = ("evtx", "json")

_RULE_ID_LINE = re.compile(r"^id:\s*['\"]?([0-9A-Fa-f-]{36})['\"]?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class RegressionCase:
    """One rule's regression folder: which rule, which files, how many matches."""

    folder: Path
    rule_id: str
    match_count: int | None
    evtx: Path

    def data_file(self, fmt: str) -> Path:
        return self.evtx if fmt == "evtx" else self.evtx.with_suffix(f".{fmt}")


def _regression_cases() -> list[RegressionCase]:
    cases = []
    for info_path in sorted(REGRESSION_DATA.rglob("info.yml")):
        info = yaml.safe_load(info_path.read_text(encoding="utf-8"))
        test = info["regression_tests_info"][0]
        cases.append(
            RegressionCase(
                folder=info_path.parent,
                rule_id=str(info["rule_metadata"][0]["id"]).lower(),
                match_count=test.get("match_count"),
                evtx=info_path.parent / Path(test["path"]).name,
            )
        )
    return cases


def _parameters() -> list[object]:
    if not REGRESSION_DATA.is_dir():
        # Collected without ../shared: one case, which skips with the reason (see conftest.shared_path).
        return [pytest.param(None, "evtx", id="regression-data-absent")]
    return [pytest.param(case, fmt, id=f"{case.folder.name}-{fmt}") for case in _regression_cases() for fmt in FORMATS]


@pytest.fixture(scope="session")
def sigma_rule_paths() -> dict[str, Path]:
    """Rule id -> rule file over the SigmaHQ rule set, from the ``id:`` lines (no YAML parse)."""
    root = shared_path("corpus", "sigmahq-rules")
    index: dict[str, Path] = {}
    for path in sorted(root.rglob("*.yml")):
        found = _RULE_ID_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
        if found is not None:
            index.setdefault(found.group(1).lower(), path)
    return index


@cache
def _load_rule(path: Path, rule_id: str) -> Rule:
    result = load_rules([path])
    rules = [rule for rule in result.rules if rule.rule_id.lower() == rule_id]
    assert len(rules) == 1, f"{path}: rule {rule_id} not loaded: {[(o.status, o.reason) for o in result]}"
    return rules[0]


RESULTS: Counter[str] = Counter()
"""(format, outcome) tallies for the summary printed after the module."""


@pytest.fixture(scope="module", autouse=True)
def print_summary() -> Iterator[None]:
    yield
    if RESULTS:
        figures = ", ".join(
            f"{fmt}: {RESULTS[f'{fmt} passed']}/{RESULTS[f'{fmt} passed'] + RESULTS[f'{fmt} failed']}"
            for fmt in FORMATS
        )
        print(f"\nSigmaHQ regression data, rules matching their logs as info.yml expects: {figures}")


@pytest.mark.parametrize(("case", "fmt"), _parameters())
def test_rule_matches_its_regression_log(
    case: RegressionCase | None, fmt: str, sigma_rule_paths: dict[str, Path]
) -> None:
    shared_path("corpus", "sigma", "regression_data")
    assert case is not None
    RESULTS[f"{fmt} failed"] += 1  # turned into a pass below, once every assertion held
    rule_path = sigma_rule_paths.get(case.rule_id)
    assert rule_path is not None, f"rule {case.rule_id} is not in the SigmaHQ rule set"
    rule = _load_rule(rule_path, case.rule_id)
    data_file = case.data_file(fmt)

    problems: list[ReadProblem] = []
    stats = HuntStats()
    alerts = list(hunt([str(data_file)], RuleSet([rule]), stats=stats, on_problem=problems.append))

    assert problems == [], f"{data_file.name} was not read cleanly: {[str(p) for p in problems]}"
    assert stats.records > 0
    matched = sum(1 for alert in alerts if alert["kibana.alert.rule.rule_id"].lower() == case.rule_id)
    assert matched == len(alerts)
    if case.match_count is None:
        assert matched >= 1, f"{rule_path.name} matched none of the {stats.records} events of {data_file.name}"
    else:
        assert matched == case.match_count, (
            f"{rule_path.name}: {matched} alerts on {data_file.name} ({stats.records} events), "
            f"info.yml says {case.match_count}"
        )
    RESULTS[f"{fmt} failed"] -= 1
    RESULTS[f"{fmt} passed"] += 1
