"""The loaders over the real rule sets beside the project: Elastic's detection-rules and SigmaHQ.

../shared/corpus/elastic-detection-rules (2,192 TOML rules, commit 14cf530f) and ../shared/corpus/sigmahq-rules
(3,780 rules, 1,434 under process_creation, commit 8eaafff1); skipped when ../shared is absent. Each corpus is
loaded once per test session, in as many processes as there are CPUs; the counts are printed (``pytest -s``)
for the record.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import cache

import pytest

from conftest import shared_path
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.rules.loader import load_rules
from shellwatch.rules.outcome import LoadResult

MULTI_EVENT_EQL = ("sequence", "sample")


@cache
def _load(name: str) -> LoadResult:
    return load_rules([shared_path("corpus", name)], jobs=os.cpu_count() or 1)


@pytest.fixture(scope="module")
def elastic() -> LoadResult:
    return _load("elastic-detection-rules")


@pytest.fixture(scope="module")
def sigma() -> LoadResult:
    return _load("sigmahq-rules")


def _report(title: str, result: LoadResult) -> None:
    reasons = Counter(o.reason.split(":")[0] for o in result if o.status != "ok")
    print(f"\n{title}: {dict(result.counts())}; not ok by reason: {reasons.most_common(12)}")


def test_every_elastic_toml_loads_to_an_outcome(elastic: LoadResult) -> None:
    """One outcome per file, none an exception; detection-rules validates its own files, so none is an error."""
    _report("elastic-detection-rules", elastic)
    files = list(shared_path("corpus", "elastic-detection-rules").rglob("*.toml"))
    assert len(elastic) == len(files) == 2192
    assert {o.path for o in elastic} == {str(f) for f in files}
    assert elastic.errors == ()
    counts = elastic.counts()
    assert counts["ok"] + counts["unsupported"] == 2192


def test_single_event_eql_rules_compile(elastic: LoadResult) -> None:
    """Target: at least 99% of the single-event EQL rules (not sequences or samples) load and compile to a
    predicate; rule types shellwatch does not run (ES|QL, machine learning, indicator match) are unsupported with
    their type named. KQL and Lucene rules are counted in tests/test_rules_elastic.py."""
    eql = [o for o in elastic if o.language == "eql"]
    single_event = [o for o in eql if not o.reason.startswith(MULTI_EVENT_EQL)]
    ok = [o for o in single_event if o.status == "ok"]
    print(f"\nEQL rules: {len(eql)}; single-event: {len(single_event)}; ok: {len(ok)}")
    assert len(ok) / len(single_event) >= 0.99
    for outcome in ok:
        assert outcome.rule is not None
        compile_predicate(outcome.rule.ir)
    others = [o for o in elastic if o.language not in ("eql", "kuery", "lucene")]
    assert others
    assert all(o.status == "unsupported" and o.reason.startswith("rule type ") for o in others)


def test_sigma_rules_load(sigma: LoadResult) -> None:
    """Every SigmaHQ rule gets an outcome; none is an error (SigmaHQ validates its rules with pySigma)."""
    _report("sigmahq-rules", sigma)
    assert len(sigma) == 3780
    assert sigma.errors == ()


def test_sigma_process_creation_rules_load(sigma: LoadResult) -> None:
    """Target: at least 99% of the 1,434 process_creation rules load and compile to a predicate."""
    process_creation = [o for o in sigma if "/process_creation/" in o.path]
    ok = [o for o in process_creation if o.status == "ok"]
    print(f"\nSigma process_creation: {len(process_creation)}; ok: {len(ok)}")
    assert len(process_creation) == 1434
    assert len(ok) / len(process_creation) >= 0.99
    for outcome in ok:
        assert outcome.rule is not None
        compile_predicate(outcome.rule.ir)
