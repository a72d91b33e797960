"""Runs tests/kql_conformance.yaml: each KQL case must match, not match, fail or be unsupported as written.

The file's header lists the sources; each case names its own (Kibana's KQL documentation and grammar, the
kbn-es-query functions that turn KQL into Elasticsearch queries, Elasticsearch's field type documentation,
and the Elastic detection rules whose KQL the case uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.kql import parse_kql

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "kql_conformance.yaml").read_text("utf-8"))[
    "cases"
]


def test_the_suite_is_large_and_every_case_cites_a_source() -> None:
    assert len(CASES) >= 150
    for case in CASES:
        assert case.get("source"), case["q"]
        assert {"match", "no_match", "error", "unsupported"} & set(case), case["q"]


@pytest.mark.parametrize("case", CASES, ids=[f"{i}:{c['q'][:50]}" for i, c in enumerate(CASES)])
def test_case(case: dict[str, Any]) -> None:
    query = case["q"]
    if "error" in case:
        with pytest.raises(QueryError) as raised:
            parse_kql(query)
        expected = case["error"]
        if expected:
            assert raised.value.position == (expected["line"], expected["column"]), str(raised.value)
        return
    if "unsupported" in case:
        with pytest.raises(UnsupportedQuery) as unsupported:
            parse_kql(query)
        assert unsupported.value.feature == case["unsupported"]
        return
    predicate = compile_predicate(parse_kql(query))
    for event in case.get("match", []):
        assert predicate(event), f"{query!r} should match {event!r}"
    for event in case.get("no_match", []):
        assert not predicate(event), f"{query!r} should not match {event!r}"
