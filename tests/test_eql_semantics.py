"""EQL semantics over ECS events, one decided case per test, each citing where Elasticsearch defines it.

Sources cited:
- [syntax] https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-syntax.html
  (elastic/elasticsearch docs/reference/query-languages/eql/eql-syntax.md)
- [translator] elastic/elasticsearch x-pack/plugin/eql/src/test/resources/querytranslator_tests.txt: the query
  DSL Elasticsearch builds for an EQL condition (``must_not`` for ``not`` and ``!=``; scripts for computed
  values)
- [scripts] elastic/elasticsearch x-pack/plugin/eql/.../whitelist/InternalEqlScriptUtils.java,
  ``multiValueDocValues``: a script test runs per value of a multi-valued field (any-of) and on ``null`` for a
  missing one, and ``nullSafeFilter`` makes a null result false
- [query-translator] elastic/elasticsearch x-pack/plugin/eql/.../planner/QueryTranslator.java (endsWith and
  stringContains on a field become wildcard queries ``*x`` / ``*x*``; startsWith a prefix query)
- [like-pattern] elastic/elasticsearch x-pack/plugin/eql/.../util/StringUtils.java ``toLikePattern``: in ``:``
  and ``like`` patterns only ``*`` and ``?`` are special
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import eql
import pytest

from conftest import shared_path
from shellwatch.engine.compile_python import compile_closure, compile_predicate
from shellwatch.query.eql import parse_eql
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import And, Case, Equals, Exists, Not, Regex, Wildcard


def matches(query: str, event: Mapping[str, Any]) -> bool:
    node = parse_eql(query)
    fast = compile_predicate(node)(event)
    assert fast == compile_closure(node)(event), "generated code and closures disagree"
    return fast


def proc(fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A process event with the given flat ECS fields."""
    return {"event.category": ["process"], **(fields or {})}


# -- event category ------------------------------------------------------------------------------------------


def test_category_is_a_case_sensitive_term_on_event_category() -> None:
    """[syntax] Basic syntax: the category is an indexed value of event.category ([translator] term query)."""
    assert matches("process where true", {"event.category": "process"})
    assert matches("process where true", {"event.category": ["network", "process"]})
    assert not matches("process where true", {"event.category": "Process"})
    assert not matches("process where true", {"event.type": "start"})
    assert parse_eql("process where true") == Equals("event.category", ("process",))


def test_any_matches_events_without_category() -> None:
    """[syntax] "You can also use the any keyword to search for documents without a event category field"."""
    assert matches("any where true", {})
    assert matches('any where process.name == "a"', {"process.name": "a"})


# -- operators and case --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ('process where process.name == "cmd.exe"', "cmd.exe", True),
        ('process where process.name == "cmd.exe"', "CMD.EXE", False),
        ('process where process.name != "cmd.exe"', "CMD.EXE", True),
        ('process where process.name : "cmd.exe"', "CMD.EXE", True),
        ('process where process.name in ("cmd.exe", "x")', "Cmd.exe", False),
        ('process where process.name in~ ("cmd.exe", "x")', "Cmd.exe", True),
        ('process where process.name not in ("cmd.exe")', "Cmd.exe", True),
        ('process where process.name not in~ ("cmd.exe")', "Cmd.exe", False),
        ('process where process.name like "cmd.*"', "CMD.exe", False),
        ('process where process.name like~ "cmd.*"', "CMD.exe", True),
        ('process where process.name regex "c[a-z]d\\\\.exe"', "cmd.exe", True),
        ('process where process.name regex "c[a-z]d\\\\.exe"', "CMD.exe", False),
        ('process where process.name regex~ "cmd\\\\.exe"', "CMD.exe", True),
        ('process where process.name regex "md\\\\.exe"', "cmd.exe", False),
        ('process where process.name >= "c" and process.name < "d"', "cmd.exe", True),
        ('process where process.name > "D"', "cmd.exe", True),
    ],
)
def test_operator_case_modes(query: str, name: str, expected: bool) -> None:
    """[syntax] Comparison, pattern comparison and lookup operators: ==, !=, in, like, regex and ordering are
    case-sensitive; :, in~, like~, regex~ are not. regex matches the whole value (Lucene has no anchors)."""
    assert matches(query, proc({"process.name": name})) is expected


def test_equality_never_expands_wildcards() -> None:
    """[syntax] "The == and != operators do not expand wildcard characters"."""
    assert not matches('process where process.name == "cmd*"', proc({"process.name": "cmd.exe"}))
    assert matches('process where process.name == "cmd*"', proc({"process.name": "cmd*"}))
    assert matches('process where process.name != "cmd*"', proc({"process.name": "cmd.exe"}))


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("doc*", "document", True),
        ("doc*", "DOS", False),
        ("*doc", "asciidoc", True),
        ("d*c", "disc", True),
        ("doc?", "docs", True),
        ("doc?", "doc", False),
        ("doc?", "document", False),
        ("?doc", "adoc", True),
        ("?doc", "asciidoc", False),
        ("d?c", "disc", False),
        ("*", "", True),
    ],
)
def test_colon_wildcards(pattern: str, value: str, expected: bool) -> None:
    """[syntax] Wildcards: the examples of the Wildcards section, verbatim."""
    assert matches(f'any where my_field : "{pattern}"', {"my_field": value}) is expected


def test_backslash_is_literal_in_colon_and_like_patterns() -> None:
    """[like-pattern] toLikePattern escapes only % and _: a backslash in an EQL string is a plain character,
    so ``"C:\\\\Windows\\\\*"`` (the string C:\\Windows\\*) is a prefix test on a Windows path."""
    event = proc({"process.executable": "C:\\Windows\\System32\\cmd.exe"})
    assert matches('process where process.executable : "C:\\\\Windows\\\\*"', event)
    assert matches('process where process.executable like "?:\\\\Windows\\\\*\\\\cmd.exe"', event)
    assert not matches('process where process.executable like "C:\\\\windows\\\\*"', event)
    # A star right after a backslash is still a wildcard.
    assert matches('process where process.executable : "*\\\\*.exe"', event)


def test_list_lookups_mix_exact_values_and_patterns() -> None:
    """[syntax] Lookup operators: ``:`` and ``like`` take lists, each item exact or a pattern."""
    node = parse_eql('any where f : ("a", "b*")')
    assert set(node.children) == {  # type: ignore[union-attr]
        Equals("f", ("a",), Case.INSENSITIVE),
        Wildcard("f", ("b*",), Case.INSENSITIVE),
    }
    assert matches('any where f like ("Doc*", "F*O", "BA?", "QUX")', {"f": "BAR"})
    assert not matches('any where f like ("Doc*", "F*O", "BA?", "QUX")', {"f": "qux"})
    assert matches('any where f like~ ("Doc*", "F*O", "BA?", "QUX")', {"f": "qux"})


# -- the lost `~`, recovered ---------------------------------------------------------------------------------


def test_tilde_recovered_from_tokens_not_text() -> None:
    """The eql parser drops ``~``; the front end reads it from the operator tokens, so ``~`` or ``in~`` inside
    string literals neither adds nor removes case-insensitivity."""
    node = parse_eql('any where a in ("x in~ (", "b~") and b like "like~*" and c : "in~"')
    assert isinstance(node, And)
    a, b, c = node.children
    assert a == Equals("a", ("x in~ (", "b~"), Case.SENSITIVE)
    assert b == Wildcard("b", ("like~*",), Case.SENSITIVE)
    assert c == Equals("c", ("in~",), Case.INSENSITIVE)
    node = parse_eql('any where a in~ ("x") and startsWith(b, "startsWith~(") and endsWith~(c, "y")')
    assert isinstance(node, And)
    assert node.children[0] == Equals("a", ("x",), Case.INSENSITIVE)
    assert node.children[1] == Wildcard("b", ("startsWith~(*",), Case.SENSITIVE)
    assert node.children[2] == Wildcard("c", ("*y",), Case.INSENSITIVE)


def test_tilde_on_regex_and_not_in() -> None:
    assert parse_eql('any where a regex~ "x.*"') == Regex("a", "x.*", Case.INSENSITIVE, dialect="lucene")
    assert parse_eql('any where a regex "x.*"') == Regex("a", "x.*", Case.SENSITIVE, dialect="lucene")
    assert parse_eql('any where a not in~ ("X")') == Not(Equals("a", ("X",), Case.INSENSITIVE))


@pytest.mark.parametrize(
    ("query", "value", "expected"),
    [
        ('any where startsWith~(f, "EXPL")', "explorer.exe", True),
        ('any where startsWith(f, "EXPL")', "explorer.exe", False),
        ('any where endsWith~(f, "LORER.EXE")', "explorer.exe", True),
        ('any where stringContains~(f, "PLOR")', "explorer.exe", True),
        ('any where stringContains(f, "PLOR")', "explorer.exe", False),
        ('any where indexOf~(f, "PLORE") == 2', "explorer.exe", True),
        ('any where indexOf(f, "PLORE") == null', "explorer.exe", True),
        ('any where between~(f, "X", ".") == "plorer"', "explorer.exe", True),
    ],
)
def test_case_insensitive_function_variants(query: str, value: str, expected: bool) -> None:
    """[syntax] Case-insensitive functions: a ``~`` after the name; elastic/elasticsearch test_queries.toml
    (startsWithCaseInsensitive1..3, endsWithCaseInsensitive, indexOfCaseInsensitive, indexOf3)."""
    assert matches(query, {"f": value}) is expected


# -- multi-valued fields -------------------------------------------------------------------------------------


def test_list_valued_field_matches_when_any_value_does() -> None:
    """ECS event.type is a list; Elasticsearch indexes every value, and a term query matches any of them."""
    event = proc({"event.type": ["start", "process_start"]})
    assert matches('process where event.type == "start"', event)
    assert matches('process where event.type : "PROCESS_*"', event)
    assert matches('process where event.type in ("end", "start")', event)
    # `!=` is must_not(term): it fails when any value equals ([translator] fieldNotEqualsTrue).
    assert not matches('process where event.type != "start"', event)
    assert matches('process where event.type != "end"', event)


def test_script_conditions_run_per_value() -> None:
    """[scripts] multiValueDocValues: a computed condition holds when it holds for one of the values."""
    event = {"a": ["xx", "yyyy"]}
    assert matches("any where length(a) == 4", event)
    assert matches("any where length(a) != 4", event)
    assert not matches("any where length(a) > 4", event)


# -- missing fields and null ---------------------------------------------------------------------------------


def test_not_equal_matches_an_event_without_the_field() -> None:
    """[translator] fieldNotEqualsTrue: ``bool != true`` is ``{"bool":{"must_not":[{"term":...}]}}``, which a
    document without the field satisfies."""
    assert matches('any where f != "x"', {})
    assert matches("any where f != 5", {"f": None})


def test_not_of_a_missing_field_test_is_true() -> None:
    """[translator] notFilter: ``not (exit_code > -1)`` is ``must_not`` of a range query; a document without
    exit_code matches it. Same for ``not (f : "x")`` (must_not of a case-insensitive term)."""
    assert matches("any where not (exit_code > -1)", {})
    assert matches('any where not (f : "x")', {})
    assert not matches("any where exit_code > -1", {})


def test_computed_comparisons_are_false_on_null() -> None:
    """[scripts] nullSafeFilter: a script comparison on a missing value is null, hence false, even ``!=``;
    elastic/elasticsearch test_queries.toml badFieldWithLength: ``length(bad_field) > 0`` matches nothing."""
    assert not matches("any where length(f) > 0", {})
    assert not matches("any where length(f) != 3", {})
    assert matches("any where length(f) != 3", {"f": "ab"})


def test_null_comparisons_test_presence() -> None:
    """[syntax] Check if a field exists: ``?my_field != null`` matches events with a value, ``== null`` those
    without (elastic/elasticsearch test_extra.toml optionalMissingFieldNullEquality)."""
    assert parse_eql("any where f != null") == Exists("f")
    assert parse_eql("any where f == null") == Not(Exists("f"))
    assert matches("any where ?f == null", {})
    assert matches("any where ?f == null", {"f": None})
    assert matches("any where ?f == null", {"f": []})
    assert not matches("any where ?f != null", {"f": []})
    assert matches("any where ?f != null", {"f": ""})


def test_optional_fields_read_like_any_field() -> None:
    """[syntax] Optional fields: a missing optional field is null (elastic/elasticsearch test_extra.toml
    optionalMissingFieldImplicitBooleanEquality: ``?inexistent_field`` alone matches nothing)."""
    assert not matches("any where ?inexistent_field", {})
    assert matches('any where ?user.id : "x"', {"user.id": "X"})


def test_bare_field_is_a_true_term() -> None:
    """[translator] fieldNoEquals: ``process where bool`` is ``{"term":{"bool":{"value":true}}}``."""
    assert matches("process where flag", proc({"flag": True}))
    assert not matches("process where flag", proc({"flag": False}))
    assert not matches("process where flag", proc())


def test_null_of_a_computed_value() -> None:
    """elastic/elasticsearch test_queries.toml nullEqualityWithGtAndHead: ``null == (exit_code > -1)`` holds
    for the events without exit_code (a comparison with a null operand is null)."""
    assert matches("any where null == (exit_code > -1)", {})
    assert not matches("any where null == (exit_code > -1)", {"exit_code": 0})


# -- the seed rule -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_query() -> str:
    path = shared_path("reference", "elastic", "persistence_webshell_detection.eql-version.toml")
    query: str = tomllib.loads(path.read_text())["rule"]["query"]
    return query


def windows_start(fields: Mapping[str, Any]) -> dict[str, Any]:
    return proc({"event.type": ["start"], "host.os.type": "windows", **fields})


SHELL = {"process.parent.name": "w3wp.exe", "process.name": "cmd.exe"}


def test_seed_rule_matches_web_server_shells(seed_query: str) -> None:
    assert matches(seed_query, windows_start(SHELL))
    assert matches(
        seed_query, windows_start({"process.parent.name": "W3WP.EXE", "process.name": "PowerShell.exe"})
    )
    assert not matches(seed_query, windows_start({**SHELL, "process.parent.name": "explorer.exe"}))
    assert not matches(seed_query, windows_start({**SHELL, "process.name": "notepad.exe"}))


def test_seed_rule_needs_the_categorised_windows_start(seed_query: str) -> None:
    """host.os.type == "windows" and event.type == "start" are case-sensitive terms."""
    assert not matches(seed_query, windows_start({**SHELL, "host.os.type": "linux"}))
    assert not matches(seed_query, windows_start({**SHELL, "host.os.type": "Windows"}))
    assert not matches(seed_query, windows_start({**SHELL, "event.type": ["end"]}))
    assert not matches(seed_query, {**windows_start(SHELL), "event.category": ["file"]})


def test_seed_rule_exclusion_is_case_insensitive(seed_query: str) -> None:
    php_cmd = {"process.parent.name": "php.exe", "process.name": "cmd.exe"}
    excluded = windows_start({**php_cmd, "process.command_line": 'CMD.EXE /s /c "mode con"'})
    assert not matches(seed_query, excluded)
    assert matches(seed_query, windows_start({**php_cmd, "process.command_line": "cmd /c ver"}))
    # the exclusion is for php/httpd parents only
    assert matches(seed_query, windows_start({**SHELL, "process.command_line": "cmd.exe /c mode CON"}))


def test_seed_rule_matches_when_command_line_is_missing(seed_query: str) -> None:
    """[translator] notFieldsConjunction: ``not (a and b)`` is ``must_not`` of a ``bool.must``: with
    process.command_line absent the inner conjunction fails, so the exclusion does not apply and the event
    alerts (a php.exe -> cmd.exe start whose command line the source did not record)."""
    event = windows_start({"process.parent.name": "php.exe", "process.name": "cmd.exe"})
    assert matches(seed_query, event)


# -- functions on fields -------------------------------------------------------------------------------------


def test_string_functions_on_a_field_run_as_elasticsearch_queries() -> None:
    """[query-translator] endsWith/stringContains on a field become wildcard queries with the literal
    unescaped: ``*``/``?`` are wildcards and ``\\`` escapes (rules rely on it: ``stringContains(...,
    "principal=\\\\*")`` looks for a literal ``principal=*``); startsWith is a literal prefix query."""
    assert parse_eql('any where endsWith(f, "x")') == Wildcard("f", ("*x",))
    assert parse_eql('any where stringContains(f, "a*b")') == Wildcard("f", ("*a*b*",))
    assert parse_eql('any where startsWith(f, "DC=*,")') == Wildcard("f", ("DC=\\*,*",))
    params = {"f": "x principal=* y"}
    assert matches('any where stringContains(f, "principal=\\\\*")', params)
    assert not matches('any where stringContains(f, "principal=\\\\*")', {"f": "principal=any"})
    assert matches('any where startsWith(f, "DC=*,")', {"f": "DC=*,x"})
    assert not matches('any where startsWith(f, "DC=*,")', {"f": "DC=corp,x"})


def test_functions_between_two_fields_run_as_scripts() -> None:
    """A function of two fields has no query form; it runs per value, null false ([scripts])."""
    query = "any where endsWith~(?o365.audit.Parameters.ForwardTo, user.domain)"
    assert matches(query, {"o365.audit.Parameters.ForwardTo": "a@EVIL.com", "user.domain": "evil.com"})
    assert not matches(query, {"o365.audit.Parameters.ForwardTo": "a@evil.com"})


def test_cidr_match() -> None:
    """eql-function-ref cidrMatch examples."""
    event = {"source.address": "192.168.152.12"}
    assert matches('any where cidrMatch(source.address, "192.168.0.0/16")', event)
    assert matches('any where cidrMatch(source.address, "192.168.0.0/16", "10.0.0.0/8")', event)
    assert not matches('any where cidrMatch(source.address, "10.0.0.0/8")', event)
    assert not matches('any where cidrMatch(source.address, "10.0.0.0/8", "10.128.0.0/9")', event)
    assert matches('any where cidrMatch(source.address, "10.0.0.0/8") == false', event)


def test_math_and_folding() -> None:
    """eql-syntax Math operators: integer division rounds down ("4 / process.args_count == 1" matches 3 and
    4); constants fold before the comparison, as Elasticsearch's optimizer does (twoAdds)."""
    for count, expected in [(3, True), (4, True), (5, False)]:
        assert matches("any where (4 / process.args_count) == 1", {"process.args_count": count}) is expected
    assert not matches("any where (4.0 / process.args_count) == 1", {"process.args_count": 3})
    assert matches("any where add(0, 1) == x", {"x": 1})
    assert parse_eql('any where "a" == "A"') == parse_eql("any where false")


# -- values and types ----------------------------------------------------------------------------------------


def test_equality_accepts_the_literal_in_either_type() -> None:
    """Elasticsearch coerces the literal to the field's type (a term query on a keyword field with 4 looks for
    "4"; on a long field with "4" for 4). Without mappings both forms are accepted; booleans stay apart."""
    assert matches("any where process.pid == 4", {"process.pid": 4})
    assert matches("any where process.pid == 4", {"process.pid": "4"})
    assert matches('any where event.code == "4688"', {"event.code": 4688})
    assert matches('any where event.code in ("4688", "1")', {"event.code": 1})
    assert not matches("any where process.pid == 1", {"process.pid": True})
    assert matches("any where process.pid in (1, 4)", {"process.pid": [7, 4]})


def test_ordering_compares_like_types_only() -> None:
    assert matches("any where n < 10", {"n": 9.5})
    assert not matches("any where n < 10", {"n": "9"})
    assert not matches('any where n < "10"', {"n": 9})


def test_parsing_imports_no_eql_extension_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """eql.parse_query imports every module named eql_* on sys.path (eql.utils.load_extensions); parse_eql
    must not, whatever sits on the path."""
    (tmp_path / "eql_shellwatch_probe.py").write_text("IMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(eql.utils, "_loaded_plugins", False)
    parse_eql('process where process.name : "cmd.exe"')
    assert "eql_shellwatch_probe" not in sys.modules


# -- errors --------------------------------------------------------------------------------------------------


def test_invalid_query_gives_position() -> None:
    with pytest.raises(QueryError) as info:
        parse_eql("process where process.name == ")
    assert info.value.position is not None and info.value.position[0] == 1
    with pytest.raises(QueryError) as info:
        parse_eql('process where\n  a == "x" and b === "y"')
    assert info.value.position == (2, 20)
    assert "line 2, column 20" in str(info.value)


def test_unknown_function_gives_position() -> None:
    with pytest.raises(QueryError) as info:
        parse_eql('any where a == "x" and\n  nosuchfunction(a)')
    assert info.value.position == (2, 3)


def test_field_to_field_comparison_is_rejected_with_position() -> None:
    """[syntax] Limitations for comparisons: comparing a field to another field returns an error."""
    with pytest.raises(QueryError) as info:
        parse_eql("process where process.parent.name == process.name")
    assert info.value.position == (1, 15)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "empty"),
        ("any where nosuchfunction(a)", "unknown function"),
        ('any where length(a, "b") > 1', "Expected only 1 argument"),
        ('any where startswith(a, "b", "c")', "startsWith takes 2 arguments, not 3"),
        ("any where length~(a) > 1", "no case-insensitive"),
        ('any where a regex "(abc"', "expected ')'"),
        ('any where cidrMatch(a, "10.0.0.0/33")', "Invalid argument to cidrMatch"),
        ('any where cidrmatch(a, "10.0.0.0/33")', "invalid CIDR block"),
        ('any where number("abc") == 1', "unable to convert"),
        ("any where length(a)", "Expected boolean"),
        ("any where substring(a, 1)", "Expected boolean"),
        ("any where concat(a, 1)", "Expected boolean"),
        ("any where indexof(a, 1)", "indexOf(...) returns a value, not a condition"),
        ("any where 'single quoted'", "Invalid string literal"),
    ],
)
def test_invalid_queries(query: str, fragment: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_eql(query)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("query", "feature", "message"),
    [
        (
            "sequence [process where true] [file where true]",
            "sequence",
            "sequence queries are not supported yet",
        ),
        ("sequence with maxspan=1h [a where true] ![b where true]", "sequence", "not supported yet"),
        ("sample by host [a where true] [b where true]", "sample", "sample queries are not supported yet"),
        ("process where true | head 5", "pipes", "| head"),
        ('process where true | tail 3 | filter a == "b"', "pipes", "| tail"),
        ("process where descendant of [process where true]", "lineage", "descendant of"),
        (
            'registry where arrayContains(a, "x")',
            "function arrayContains",
            "not an Elasticsearch EQL function",
        ),
        ("any where a[0] == 1", "array index", "array indexes"),
        ('any where a regex "a~bc"', "regular expression", "complement"),
        ('any where a regex "foo<1-100>"', "regular expression", "interval"),
    ],
)
def test_unsupported_queries(query: str, feature: str, message: str) -> None:
    with pytest.raises(UnsupportedQuery) as info:
        parse_eql(query)
    assert info.value.feature == feature
    assert message in str(info.value)
