"""The eql conformance suite's single-event queries, run under Elasticsearch semantics.

../shared/reference/eql-suite/single_event_es_syntax_subset.json lists the 65 single-event queries of the eql
package's test_queries.toml that the eql parser accepts in Elasticsearch syntax, with the event ids they must
return over test_data.json (the 102 Endgame events Elasticsearch's own EQL spec tests also use, with
``event.category`` an alias of ``event_type``; the test adds that alias to each event, the engine knows
nothing of Endgame). Each query is one test case, in one of four groups:

* Elasticsearch EQL: must return exactly ``expected_event_ids``.
* ``case_insensitive = true``: the ids hold only in the old case-insensitive EQL; Elasticsearch compares case
  sensitively (https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-syntax.html, "Differences
  from Endgame EQL syntax"). Their result under Elasticsearch semantics is recorded; the summary asserts they
  do not all still hold.
* Not Elasticsearch EQL (lineage ``descendant of``, ``arraySearch``, ``arrayContains``, ``safe``, array
  indexes, field-to-field comparison; same page): must raise :class:`UnsupportedQuery`.
* ``==``/``!=`` against a string holding ``*``: the eql package read ``*`` as a wildcard there; Elasticsearch
  does not ("The == and != operators do not expand wildcard characters", same page). Elasticsearch's own copy
  of these queries (x-pack/plugin/eql/qa/common/src/main/resources/test_queries.toml, e.g.
  ``keyPathWildcard``, ``wildcard1``) spells them with ``:`` and keeps the same ids: the test checks both that
  the literal reading matches nothing (no event value holds a ``*``) and that the ``:`` spelling returns the
  ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from conftest import SHARED, shared_path
from shellwatch.ecs import flatten
from shellwatch.engine.compile_python import compile_closure, compile_predicate
from shellwatch.query.eql import parse_eql
from shellwatch.query.errors import UnsupportedQuery

SUBSET = SHARED / "reference" / "eql-suite" / "single_event_es_syntax_subset.json"

NOT_ELASTICSEARCH = re.compile(
    r"descendant of|child of|event of|arraySearch\(|arrayContains\(|arrayCount\(|safe\(|\w\[\d+\]"
    r"|\bin \(\s*[a-z_]+\s*,"
)
"""Constructs Elasticsearch EQL documents as unsupported (or, for ``x in (field, ...)``, rejects as a
field-to-field comparison)."""

NOT_ELASTICSEARCH_FEATURES = {
    "lineage",
    "function arraySearch",
    "function arrayContains",
    "function safe",
    "array index",
    "field comparison",
}

LEGACY_WILDCARD_EQUALITY = re.compile(r'(==|!=)\s*"[^"]*\*[^"]*"')


@dataclass(frozen=True)
class Entry:
    query: str
    expected: list[int]
    case_sensitive: bool
    case_insensitive: bool

    @property
    def group(self) -> str:
        if NOT_ELASTICSEARCH.search(self.query):
            return "not-elasticsearch"
        if self.case_insensitive:
            return "case-insensitive-only"
        if LEGACY_WILDCARD_EQUALITY.search(self.query):
            return "legacy-wildcard-equality"
        return "elasticsearch"


def _entries() -> list[Entry]:
    if not SUBSET.exists():
        return []
    raw = json.loads(SUBSET.read_text())
    return [
        Entry(e["query"], e["expected_event_ids"], bool(e["case_sensitive"]), bool(e["case_insensitive"]))
        for e in raw
    ]


ENTRIES = _entries()


@cache
def suite_events() -> tuple[dict[str, Any], ...]:
    path = shared_path("reference", "eql-suite", "test_data.json")
    events = []
    for document in json.loads(path.read_text()):
        event = flatten(document)
        event["event.category"] = document["event_type"]  # Elasticsearch's alias, as its spec tests map it
        events.append(event)
    return tuple(events)


def run(query: str) -> list[int]:
    node = parse_eql(query)
    predicate = compile_predicate(node)
    reference: Callable[[Mapping[str, Any]], bool] = compile_closure(node)
    ids = [e["serial_event_id"] for e in suite_events() if predicate(e)]
    assert ids == [e["serial_event_id"] for e in suite_events() if reference(e)], "generated code != closures"
    return ids


def _with_colon(query: str) -> str:
    """Elasticsearch's spelling of the eql package's wildcard equality: ``f == "a*"`` -> ``f : "a*"``."""
    query = re.sub(r'(\w+)\s*!=\s*("[^"]*\*[^"]*")', r"not \1 : \2", query)
    return re.sub(r'==\s*("[^"]*\*[^"]*")', r": \1", query)


def _id(entry: Entry) -> str:
    return re.sub(r"\s+", " ", entry.query)[:90]


@pytest.mark.skipif(not ENTRIES, reason=f"{SUBSET} is not available (../shared is absent)")
def test_subset_has_the_65_queries() -> None:
    assert len(ENTRIES) == 65


@pytest.mark.parametrize("entry", ENTRIES, ids=[_id(e) for e in ENTRIES])
def test_suite_query(entry: Entry) -> None:
    if entry.group == "not-elasticsearch":
        with pytest.raises(UnsupportedQuery) as info:
            parse_eql(entry.query)
        assert info.value.feature in NOT_ELASTICSEARCH_FEATURES
        return
    if entry.group == "case-insensitive-only":
        pytest.skip("ids hold only in the old case-insensitive EQL mode (see test_suite_summary)")
    if entry.group == "legacy-wildcard-equality":
        assert run(entry.query) == [], "== and != compare literally in Elasticsearch"
        assert run(_with_colon(entry.query)) == entry.expected
        return
    assert run(entry.query) == entry.expected


def test_no_suite_value_holds_a_star() -> None:
    """Precondition of the legacy-wildcard group: a literal ``*`` comparison can match no event here."""

    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    assert not any("*" in s for e in suite_events() for v in e.values() for s in strings(v))


@pytest.mark.skipif(not ENTRIES, reason=f"{SUBSET} is not available (../shared is absent)")
def test_suite_summary(capsys: pytest.CaptureFixture[str]) -> None:
    groups: dict[str, list[Entry]] = {}
    for entry in ENTRIES:
        groups.setdefault(entry.group, []).append(entry)
    passing = sum(run(e.query) == e.expected for e in groups["elasticsearch"])
    insensitive_held = 0
    insensitive_unsupported = 0
    for entry in groups["case-insensitive-only"]:
        try:
            insensitive_held += run(entry.query) == entry.expected
        except UnsupportedQuery:
            insensitive_unsupported += 1
    legacy = groups.get("legacy-wildcard-equality", [])
    legacy_colon = sum(run(_with_colon(e.query)) == e.expected for e in legacy)
    with capsys.disabled():
        print(
            f"\neql suite, {len(ENTRIES)} single-event queries: "
            f"{passing}/{len(groups['elasticsearch'])} Elasticsearch EQL queries match; "
            f"{len(legacy)} use == with '*' (literal in Elasticsearch; "
            f"{legacy_colon} match spelled with ':'); "
            f"{len(groups['not-elasticsearch'])} not Elasticsearch EQL (unsupported); "
            f"{len(groups['case-insensitive-only'])} case-insensitive-only: {insensitive_held} still hold, "
            f"{insensitive_unsupported} unsupported"
        )
    assert passing == len(groups["elasticsearch"])
    assert legacy_colon == len(legacy)
    # Elasticsearch is case-sensitive where the old EQL was not: those ids cannot all still hold.
    assert insensitive_held < len(groups["case-insensitive-only"]) - insensitive_unsupported
