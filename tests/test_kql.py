"""KQL front end, Kibana filters and the Lucene subset: parse errors, field types, DSL filters.

Sources cited:
- [grammar] kibana src/platform/packages/shared/kbn-es-query/src/kuery/grammar/grammar.peggy
- [is] kibana .../kbn-es-query/src/kuery/functions/is.ts; [engine] security_solution get_query_filter.ts
  (the detection engine builds KQL with an index pattern without fields: match / match_phrase /
  query_string / exists / range on the field as named).
- [from-filters] kibana .../kbn-es-query/src/es_query/from_filters.ts (disabled filters dropped, negated
  ones in must_not).
- [es-bool] https://www.elastic.co/docs/reference/query-languages/query-dsl/query-dsl-bool-query
  (minimum_should_match defaults to 1 without must/filter, else 0).
- [es-wildcard-query] https://www.elastic.co/docs/reference/query-languages/query-dsl/query-dsl-wildcard-query
- [ecs-wildcard] https://github.com/elastic/ecs/blob/main/rfcs/text/0001-wildcard-data-type.md
- [lucene] Lucene classic QueryParser syntax (org.apache.lucene.queryparser.classic), as Elasticsearch's
  query_string documents it.
"""

from __future__ import annotations

from typing import Any

import pytest

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.ecs_field_types import base_field, field_type
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import And, Case, Equals, Exists, Not, Wildcard
from shellwatch.query.kibana_filters import compile_dsl, compile_filter, compile_filters
from shellwatch.query.kql import KqlIs, KqlOr, analyze, parse_kql, parse_kql_syntax
from shellwatch.query.lucene import parse_lucene


def _matches(node: Any, event: dict[str, Any]) -> bool:
    return compile_predicate(node)(event)


# ---------------------------------------------------------------------------------------------------------------
# Errors name their position


@pytest.mark.parametrize(
    ("query", "position", "words"),
    [
        ("process.name:(cmd.exe", (1, 22), "')'"),
        ('a:"unterminated', (1, 16), "'\"'"),
        ("a:1 and\n  b:(x or", (2, 10), "')'"),
        ("a:1 b:2", (1, 6), "end of query"),
    ],
)
def test_parse_errors_name_line_column_and_what_was_expected(query: str, position: tuple[int, int], words: str) -> None:
    """[grammar] Kibana reports the furthest position its PEG parser reached and what it expected there."""
    with pytest.raises(QueryError) as raised:
        parse_kql(query)
    assert raised.value.position == position
    assert words in str(raised.value)
    assert str(raised.value).startswith(f"line {position[0]}, column {position[1]}: expected ")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(QueryError, match="nests deeper"):
        parse_kql("(" * 500 + "a:1" + ")" * 500)


def test_syntax_tree_keeps_quoting_and_wildcards() -> None:
    tree = parse_kql_syntax('a:"x*" or a:x*')
    assert isinstance(tree, KqlOr)
    quoted, starred = tree.children
    assert isinstance(quoted, KqlIs) and isinstance(starred, KqlIs)
    assert quoted.value.quoted and not quoted.value.has_wildcard
    assert starred.value.has_wildcard and starred.value.text == "x*"


# ---------------------------------------------------------------------------------------------------------------
# Field types


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("process.command_line", "wildcard"),
        ("process.parent.command_line", "wildcard"),
        ("registry.data.strings", "wildcard"),
        ("url.original", "wildcard"),
        ("file.path", "keyword"),
        ("process.name", "keyword"),
        ("process.name.caseless", "keyword"),
        ("message", "text"),
        ("process.command_line.text", "text"),
        ("process.pid", "long"),
        ("destination.port", "long"),
        ("source.ip", "ip"),
        ("@timestamp", "date"),
        ("process.code_signature.trusted", "boolean"),
        ("winlog.event_data.CommandLine", "unknown"),
        ("vulnerability.severity", "keyword"),
    ],
)
def test_ecs_field_types(field: str, kind: str) -> None:
    """[ecs-wildcard] the wildcard fields; ECS types by leaf; fields outside ECS are unknown."""
    assert field_type(field) == kind


def test_multi_fields_read_their_parent() -> None:
    assert base_field("process.name.caseless") == "process.name"
    assert base_field("process.command_line.text") == "process.command_line"
    assert base_field("a.text.b") == "a.text.b"


def test_keyword_terms_are_case_sensitive_and_caseless_is_not() -> None:
    """[is]+[engine] match on a keyword field is a term query: exact case."""
    assert parse_kql("process.name:cmd.exe") == Equals("process.name", ("cmd.exe",), Case.SENSITIVE)
    assert parse_kql("process.name.caseless:cmd.exe") == Equals("process.name", ("cmd.exe",), Case.INSENSITIVE)


def test_wildcard_value_on_keyword_is_an_anchored_case_sensitive_wildcard() -> None:
    """[is] a wildcard value becomes query_string; on keyword / wildcard fields that is a wildcard query on the
    whole value, with no normalizer: case-sensitive. A literal ``?`` is escaped by toQueryStringQuery."""
    assert parse_kql("process.command_line:*a?b*") == Wildcard("process.command_line", ("*a\\?b*",), Case.SENSITIVE)


def test_standard_analyzer_words() -> None:
    assert analyze("C:\\Windows\\System32\\CMD.EXE /c don't") == ["c", "windows", "system32", "cmd.exe", "c", "don't"]


# ---------------------------------------------------------------------------------------------------------------
# Kibana filters


def test_negated_case_insensitive_wildcard_filter_of_the_seed_rule() -> None:
    """[from-filters]+[es-wildcard-query] the new_terms seed rule's filter: ?, * and \\\\ as in the IR."""
    item = {
        "meta": {"negate": True},
        "query": {
            "wildcard": {"process.command_line": {"case_insensitive": True, "value": "*?:\\\\Program Files\\\\*"}}
        },
    }
    node = compile_filter(item)
    assert node == Not(Wildcard("process.command_line", ("*?:\\\\Program Files\\\\*",), Case.INSENSITIVE))
    assert not _matches(node, {"process.command_line": '"c:\\program files\\x.exe"'})
    assert _matches(node, {"process.command_line": '"c:\\programs\\x.exe"'})


def test_disabled_filters_are_dropped_and_legacy_top_level_queries_read() -> None:
    """[from-filters] a filter with meta.disabled is left out; an old export keeps its DSL beside meta."""
    legacy = {"$state": {"store": "appState"}, "exists": {"field": "user_agent.original"}, "meta": {"negate": True}}
    assert compile_filter({"meta": {"disabled": True}, "query": {"match_all": {}}}) is None
    assert compile_filter(legacy) == Not(Exists("user_agent.original"))
    assert compile_filters([legacy, {"meta": {"disabled": True}, "query": {"match_none": {}}}]) == Not(
        Exists("user_agent.original")
    )


def test_bool_minimum_should_match_defaults() -> None:
    """[es-bool] should clauses are optional beside must/filter, required (one of them) alone."""
    alone = compile_dsl({"bool": {"should": [{"term": {"a": "1"}}, {"term": {"a": "2"}}]}})
    assert _matches(alone, {"a": "2"}) and not _matches(alone, {"a": "3"})
    beside = compile_dsl({"bool": {"filter": [{"term": {"b": "x"}}], "should": [{"term": {"a": "1"}}]}})
    assert _matches(beside, {"b": "x", "a": "9"})
    negated = compile_dsl({"bool": {"must_not": [{"terms": {"a": ["1", "2"]}}]}})
    assert _matches(negated, {}) and not _matches(negated, {"a": "1"})


@pytest.mark.parametrize(
    ("dsl", "event", "expected"),
    [
        ({"match_phrase": {"process.name": "cmd.exe"}}, {"process.name": "cmd.exe"}, True),
        ({"match_phrase": {"process.name": {"query": "cmd.exe"}}}, {"process.name": "CMD.exe"}, False),
        ({"term": {"process.name": {"value": "CMD.exe", "case_insensitive": True}}}, {"process.name": "cmd.EXE"}, True),
        ({"prefix": {"file.path": "C:\\Users"}}, {"file.path": "C:\\Users\\a"}, True),
        ({"range": {"destination.port": {"gte": 10, "lt": 20}}}, {"destination.port": 20}, False),
        ({"range": {"destination.port": {"gte": 10, "lt": 20}}}, {"destination.port": 10}, True),
        ({"terms": {"source.ip": ["10.0.0.0/8"]}}, {"source.ip": "10.2.3.4"}, True),
        ({"exists": {"field": "process.args"}}, {"process.args": []}, False),
    ],
)
def test_filter_dsl_queries(dsl: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert _matches(compile_dsl(dsl), event) is expected


@pytest.mark.parametrize(
    ("dsl", "feature"),
    [
        ({"query_string": {"query": "a"}}, "filter query 'query_string'"),
        ({"script": {"script": "x"}}, "filter query 'script'"),
        ({"bool": {"should": [{"match_all": {}}], "minimum_should_match": 2}}, "filter bool minimum_should_match"),
        ({"exists": {"field": "process.*"}}, "filter field name pattern"),
    ],
)
def test_unsupported_filter_constructs_are_named(dsl: dict[str, Any], feature: str) -> None:
    with pytest.raises(UnsupportedQuery) as raised:
        compile_dsl(dsl)
    assert raised.value.feature == feature


def test_malformed_filters_are_errors() -> None:
    with pytest.raises(QueryError):
        compile_filter({"meta": {}, "query": {"term": {}}})
    with pytest.raises(QueryError, match=r"filters\[1\]"):
        compile_filters([{"query": {"match_all": {}}}, {"meta": {}, "query": "x"}])


def test_filters_without_any_enabled_hold() -> None:
    assert _matches(compile_filters([]), {})


# ---------------------------------------------------------------------------------------------------------------
# Lucene subset


def test_lucene_classic_clause_rules() -> None:
    """[lucene] AND makes both neighbours required; a required clause makes optional ones optional indeed;
    NOT / - prohibit; lower-case or is a term."""
    node = parse_lucene("a:1 AND b:2 OR c:3")
    assert _matches(node, {"a": "1", "b": "2"}) and not _matches(node, {"c": "3"})
    assert _matches(parse_lucene("a:(x or y)"), {"a": "or"})
    assert parse_lucene("-a:1") == Not(Equals("a", ("1", 1)))
    assert parse_lucene("a:x* AND b:*") == And((Wildcard("a", ("x*",)), Exists("b")))


def test_lucene_regex_runs_as_a_whole_value_lucene_pattern() -> None:
    node = parse_lucene("process.args:/2[0-9]{3}/")
    assert _matches(node, {"process.args": ["2755"]}) and not _matches(node, {"process.args": ["12755"]})


@pytest.mark.parametrize("query", ["a:[1 TO 5]", "a:x^2", "a:x~1", "a.*:x"])
def test_lucene_beyond_the_subset_is_unsupported(query: str) -> None:
    with pytest.raises(UnsupportedQuery):
        parse_lucene(query)


def test_lucene_errors_name_their_position() -> None:
    with pytest.raises(QueryError) as raised:
        parse_lucene('a:"x')
    assert raised.value.position == (1, 3)
