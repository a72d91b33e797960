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
  query_string documents it; its grammar QueryParser.jj (a term neither starts with + - nor holds / or !;
  /.../ is a regular expression).
- [ecs-csv] elastic/ecs generated/csv/fields.csv (ECS 8.12): the type of every ECS field.
- [uax29] https://www.unicode.org/reports/tr29/ word boundaries (WB6/WB7 letter x MidLetter|MidNumLetQ x letter,
  WB11/WB12 digit x MidNum|MidNumLetQ x digit; COLON is MidLetter in WordBreakProperty.txt), which Lucene's
  StandardTokenizer implements (https://www.elastic.co/docs/reference/text-analysis/analysis-standard-tokenizer).
- [es-range] https://www.elastic.co/docs/reference/query-languages/query-dsl/query-dsl-range-query ("Missing date
  components": gt/lte round missing time fields up to 23:59:59.999; time_zone applies to dates without one);
  elastic/elasticsearch DateFieldMapper.DateFieldType (rangeQuery parses gt/lte bounds rounding up, then +1/-1
  for exclusive ends; termQuery is rangeQuery(value, value, true, true); values resolve to epoch milliseconds),
  JavaDateFormatter ROUND_UP_BASE_FIELDS, DateFormatters STRICT_DATE_OPTIONAL_TIME_FORMATTER (fraction of 1-9
  digits, offsets +HH:mm / +HHmm), RangeQueryBuilder.doToQuery (null from and to: an exists query).
"""

from __future__ import annotations

from typing import Any

import pytest

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.ecs_field_types import base_field, field_type
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import And, Case, Equals, Exists, Not, Wildcard
from shellwatch.query.kibana_filters import compile_dsl, compile_filter, compile_filters
from shellwatch.query.kql import KqlIs, KqlOr, analyze, match_test, parse_kql, parse_kql_syntax
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
        ("registry.data.bytes", "keyword"),
        ("threat.indicator.registry.data.bytes", "keyword"),
        ("source.bytes", "long"),
        ("http.response.body.bytes", "long"),
        ("file.x509.version_number", "keyword"),
        ("file.elf.sections.physical_offset", "keyword"),
        ("process.code_signature.timestamp", "date"),
        ("email.delivery_timestamp", "date"),
        ("package.installed", "date"),
        ("file.pe.sections.entropy", "long"),
        ("process.tty.rows", "long"),
        ("host.cpu.usage", "float"),
        ("user.risk.static_score", "float"),
        ("vulnerability.score.temporal", "float"),
        ("dll.pe.go_stripped", "boolean"),
        ("volume.removable", "boolean"),
        ("volume.size", "long"),
    ],
)
def test_ecs_field_types(field: str, kind: str) -> None:
    """[ecs-wildcard]+[ecs-csv] the wildcard fields; ECS types by leaf, including leaves whose name misleads
    (registry.data.bytes holds base64 text: keyword); fields outside ECS are unknown."""
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


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("python3.exe", ["python3", "exe"]),
        ("cmd.exe", ["cmd.exe"]),
        ("a.1 1.a", ["a", "1", "1", "a"]),
        ("1.5 1,000 3;4", ["1.5", "1,000", "3;4"]),
        ("1,a a,b", ["1", "a", "a", "b"]),
        ("O'Neil l\u2019eau", ["o'neil", "l\u2019eau"]),
        ("urn:x foo::bar", ["urn:x", "foo", "bar"]),
        ("a_b.c x_.y", ["a_b.c", "x_", "y"]),
        ("v2.0.1 x..y", ["v2.0.1", "x", "y"]),
    ],
)
def test_standard_tokenizer_joins_only_like_letters_or_like_digits(text: str, words: list[str]) -> None:
    """[uax29] a joiner needs a letter on both sides (WB6/WB7) or a digit on both sides (WB11/WB12); ``_`` joins
    anything (WB13a/b); ``.`` after a digit does not join a letter."""
    assert analyze(text) == words


@pytest.mark.parametrize(
    ("query", "value", "expected"),
    [
        ("message:exe", "ran C:\\python3.exe", True),
        ("message:python3", "ran C:\\python3.exe", True),
        ("message:exe", "ran cmd.exe", False),
        ('message:"python3 exe"', "python3.exe", True),
        ('message:"a b"', "a.b", False),
        ('message:"a b"', "a-b", True),
        ("message:*.exe", "cmd.exe", True),
        ("message:*.exe", "python3.exe", False),
        ("message:*exe", "python3.exe", True),
    ],
)
def test_text_field_matching_uses_the_tokenizer_words(query: str, value: str, expected: bool) -> None:
    """[uax29] match, match_phrase and wildcard terms on a text field see the words the tokenizer makes: a
    wildcard term matches one word, so its literal ``.`` must be a joining one."""
    assert _matches(parse_kql(query), {"message": value}) is expected


# ---------------------------------------------------------------------------------------------------------------
# Dates


_DAY = "2024-01-02"


@pytest.mark.parametrize(
    ("query", "instant", "expected"),
    [
        # A literal without zone is UTC; seconds without fraction round up for >: the whole second is excluded.
        ('@timestamp > "2024-01-02T03:04:05"', "2024-01-02T03:04:05Z", False),
        ('@timestamp > "2024-01-02T03:04:05"', "2024-01-02T03:04:05.999Z", False),
        ('@timestamp > "2024-01-02T03:04:05"', "2024-01-02T03:04:06.000Z", True),
        ('@timestamp >= "2024-01-02T03:04:05"', "2024-01-02T03:04:05.000Z", True),
        # Millisecond resolution on both sides: .123456 is .123.
        ('@timestamp > "2024-01-02T03:04:05.123456Z"', "2024-01-02T03:04:05.123999Z", False),
        ('@timestamp >= "2024-01-02T03:04:05.123456Z"', "2024-01-02T03:04:05.123Z", True),
        ('@timestamp < "2024-01-02T03:04:05.1239Z"', "2024-01-02T03:04:05.1231Z", False),
        # Offsets: 04:00:00+02:00 is 02:00Z, on either side.
        ('@timestamp < "2024-01-02T04:00:00+02:00"', "2024-01-02T01:59:59.999Z", True),
        ('@timestamp < "2024-01-02T04:00:00+02:00"', "2024-01-02T02:00:00Z", False),
        ('@timestamp < "2024-01-02T04:00:00+0200"', "2024-01-02T02:00:00Z", False),
        ('@timestamp >= "2024-01-02T02:00:00Z"', "2024-01-02T03:30:00+01:00", True),
        ('@timestamp >= "2024-01-02T02:00:00Z"', "2024-01-02T02:30:00+01:00", False),
        # lte rounds a bare date up to its last millisecond; lt does not.
        (f"@timestamp <= {_DAY}", "2024-01-02T23:59:59.999Z", True),
        (f"@timestamp <= {_DAY}", "2024-01-03T00:00:00.000Z", False),
        (f"@timestamp < {_DAY}", "2024-01-01T23:59:59.999Z", True),
        (f"@timestamp < {_DAY}", "2024-01-02T00:00:00.000Z", False),
        # A term on a date is the range [rounded down, rounded up].
        (f"@timestamp:{_DAY}", "2024-01-02T12:00:00Z", True),
        (f"@timestamp:{_DAY}", "2024-01-03T00:00:00Z", False),
        ('@timestamp:"2024-01-02T03:04:05Z"', "2024-01-02T03:04:05.500Z", True),
        # A number is epoch milliseconds (the default format's second half), on either side.
        ("@timestamp >= 1704153600000", "2024-01-02T00:00:00Z", True),
        ("@timestamp >= 1704153600000", "2024-01-01T23:59:59.999Z", False),
        (f"@timestamp >= {_DAY}", 1704153600000, True),
        (f"@timestamp >= {_DAY}", "1704153599999", False),
    ],
)
def test_date_ranges_compare_instants_in_milliseconds(query: str, instant: object, expected: bool) -> None:
    """[es-range] Elasticsearch compares a date field's epoch milliseconds with the literal parsed to epoch
    milliseconds, not strings."""
    assert _matches(parse_kql(query), {"@timestamp": instant}) is expected


@pytest.mark.parametrize("value", ["yesterday", True, "2024-13-01T00:00:00Z", None, [], float("nan")])
def test_values_that_are_not_dates_match_no_date_range(value: object) -> None:
    """[es-range] a value Elasticsearch could not index as a date is not in any range (nor outside it)."""
    assert not _matches(parse_kql("@timestamp > 2000-01-01"), {"@timestamp": value})
    assert not _matches(parse_kql("@timestamp < 2100-01-01"), {"@timestamp": value})


def test_invalid_date_literals_are_errors_and_date_math_unsupported() -> None:
    """[es-range] Elasticsearch rejects an impossible date; ``now`` needs the run time."""
    with pytest.raises(QueryError, match="not a valid date"):
        parse_kql("@timestamp > 2024-13-01")
    with pytest.raises(UnsupportedQuery) as raised:
        parse_kql("@timestamp:now")
    assert raised.value.feature == "KQL exact date"


# ---------------------------------------------------------------------------------------------------------------
# Huge numbers


def test_integer_literals_beyond_any_field_are_query_errors_not_crashes() -> None:
    """CPython's int() refuses more than 4,300 digits (ValueError); Elasticsearch's widest integer has 20."""
    huge = "9" * 5000
    with pytest.raises(QueryError, match="digits"):
        parse_kql(f"destination.port:{huge}")
    with pytest.raises(QueryError, match="digits"):
        parse_kql(f"winlog.event_data.Count > {huge}")
    with pytest.raises(QueryError, match="digits"):
        parse_lucene(f"destination.port:{huge}")
    # On a keyword field the digits are a term like any other.
    assert _matches(match_test("process.name", huge, phrase=False), {"process.name": huge})


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


def test_null_range_bounds_are_open_ends() -> None:
    """[es-range] RangeQueryBuilder: a null from/to is unbounded; with both null the range is an exists query."""
    upper_only = compile_dsl({"range": {"destination.port": {"gte": None, "lt": 20}}})
    assert _matches(upper_only, {"destination.port": 3}) and not _matches(upper_only, {"destination.port": 20})
    assert not _matches(upper_only, {"destination.port": "None"})
    unbounded = compile_dsl({"range": {"@timestamp": {"gte": None, "lte": None}}})
    assert unbounded == Exists("@timestamp")


@pytest.mark.parametrize(
    ("params", "instant", "expected"),
    [
        ({"gte": "2024-01-02T00:00:00", "time_zone": "+02:00"}, "2024-01-01T22:00:00Z", True),
        ({"gte": "2024-01-02T00:00:00", "time_zone": "+02:00"}, "2024-01-01T21:59:59.999Z", False),
        ({"gte": "2024-01-02T00:00:00Z", "time_zone": "+02:00"}, "2024-01-01T22:00:00Z", False),
        ({"gte": "2024-07-01T00:00:00", "time_zone": "Europe/Paris"}, "2024-06-30T22:00:00Z", True),
        ({"gte": "2024-07-01T00:00:00", "time_zone": "Europe/Paris"}, "2024-06-30T21:59:59Z", False),
        ({"lte": "2024-01-02", "format": "strict_date_optional_time"}, "2024-01-02T23:59:59.999Z", True),
        ({"gte": 1704153600000}, "2024-01-02T00:00:00Z", True),
        ({"gte": 1704153600000}, "2024-01-01T23:59:59Z", False),
    ],
)
def test_filter_date_ranges_apply_time_zone_and_epoch_millis(
    params: dict[str, Any], instant: str, expected: bool
) -> None:
    """[es-range] time_zone converts dates written without a zone (not those with one); a number is epoch
    milliseconds under the default format."""
    assert _matches(compile_dsl({"range": {"@timestamp": params}}), {"@timestamp": instant}) is expected


def test_filter_date_formats_beyond_iso_and_epoch_are_unsupported() -> None:
    with pytest.raises(UnsupportedQuery) as raised:
        compile_dsl({"range": {"@timestamp": {"gte": "01/02/2024", "format": "dd/MM/yyyy"}}})
    assert raised.value.feature == "filter range format"
    with pytest.raises(UnsupportedQuery):
        # Without epoch_millis in the format a number is not a date shellwatch reads.
        compile_dsl({"range": {"@timestamp": {"gte": 1704153600000, "format": "strict_date_optional_time"}}})
    with pytest.raises(QueryError):
        compile_dsl({"range": {"@timestamp": {"gte": "2024-01-02", "time_zone": "+25:00"}}})


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


@pytest.mark.parametrize(("query", "column"), [("a:b/c", 4), ("a/b", 2), ("field:-x", 7), ("field:+x", 7)])
def test_lucene_slash_opens_a_regex_and_a_term_does_not_start_with_an_operator(query: str, column: int) -> None:
    """[lucene] ``/`` is no term character (``a/b`` leaves an unterminated regular expression) and the term after
    ``field:`` cannot start with ``-`` or ``+``: Elasticsearch's query_string fails on both."""
    with pytest.raises(QueryError) as raised:
        parse_lucene(query)
    assert raised.value.position == (1, column)


def test_lucene_escaped_slash_and_inner_dash_stay_in_the_term() -> None:
    """[lucene] ``\\/`` is an escaped character and ``-`` may follow a term's first character."""
    assert _matches(parse_lucene("a:x\\/y-z"), {"a": "x/y-z"})
    node = parse_lucene("path:/usr/ OR b:1")
    assert _matches(node, {"path": "usr"}) and not _matches(node, {"path": "/usr/"})
