"""The columnar path (DuckDB) decides exactly what the streaming path decides.

Every test compares :func:`shellwatch.columnar.columnar_matches` with the streaming path's own pieces over the same
file: each line decoded, normalized by ``normalize_with_family`` and tested by ``compile_predicate``. The IR's
semantics (missing fields, any-of on lists, case modes, wildcard escapes, string/number typing) are documented in
``shellwatch.query.ir``; LIKE's escape clause and ``json_transform`` as in DuckDB's docs
(https://duckdb.org/docs/sql/functions/pattern_matching, https://duckdb.org/docs/data/json/json_functions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shellwatch.columnar import columnar_matches, columnar_supported, event_of
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.compile_sql import SqlFields, compile_sql
from shellwatch.query.errors import UnsupportedQuery
from shellwatch.query.ir import (
    And,
    Case,
    Cidr,
    Compare,
    Const,
    Equals,
    Exists,
    FieldRef,
    Keyword,
    Literal,
    Node,
    Not,
    Or,
    Regex,
    Wildcard,
)
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule, RuleSource

FIXTURES = Path(__file__).parent / "fixtures" / "sources" / "elastic_defend"


def _rule(node: Node, number: int) -> Rule:
    return Rule(
        rule_id=f"r{number}",
        name=f"rule {number}",
        description="columnar differential",
        type="eql",
        language="eql",
        query="-",
        ir=node,
        source=RuleSource(path="-"),
    )


def _streaming(path: Path, rules: list[Rule]) -> list[tuple[int, int]]:
    predicates = [compile_predicate(rule.ir) for rule in rules]
    found: list[tuple[int, int]] = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        event = event_of(orjson.loads(line))
        found.extend((index, number) for index, predicate in enumerate(predicates) if predicate(event))
    return found


def _columnar(path: Path, rules: list[Rule]) -> list[tuple[int, int]]:
    matches = columnar_matches(str(path), rules)
    assert matches.fallback_rules == {}
    return [(index, line) for index, line, _ in matches]


TRICKY = [
    "cmd.exe",
    "CMD.EXE",
    "w3wp.exe",
    "C:\\Windows\\System32\\cmd.exe",
    "it's",
    '"quoted"',
    "100%",
    "a_b",
    "back\\slash",
    "star*",
    "q?",
    "",
    "line\nbreak",
    "caf\u00e9",
    "\u0130stanbul",
    "1",
    "42",
]
SCALARS = st.one_of(
    st.sampled_from(TRICKY), st.integers(-3, 50), st.sampled_from([1.0, 42.0, 2.5]), st.booleans(), st.none()
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
FIELDS = ["process.name", "process.parent.name", "process.args", "user.id", "process.pid", "process.executable"]


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {"event": {"category": ["process"], "kind": "event"}, "agent": {"type": "endpoint"}}
    for path, value in flat.items():
        node = document
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return document


DOCUMENTS = st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5).map(_nest), min_size=1, max_size=12)

QUERIES: list[Node] = [
    Equals("process.name", ("cmd.exe", "w3wp.exe")),
    Equals("process.name", ("cmd.exe",), Case.INSENSITIVE),
    Equals("process.pid", (42, 1.0)),
    Equals("process.pid", ("42",)),
    Equals("process.args", (True,)),
    Equals("process.parent.name", ("",)),
    Wildcard("process.executable", ("*\\\\cmd.exe", "*system32*"), Case.INSENSITIVE),
    Wildcard("process.name", ("cmd*", "*.EXE"), Case.INSENSITIVE),
    Wildcard("process.name", ("cmd*", "*.EXE")),
    Wildcard("process.args", ("100\\%", "a_b", "star\\*", "q\\?", "back\\\\slash")),
    Wildcard("process.args", ("*%*", "?_?", "*\n*")),
    Wildcard("user.id", ("it's", '"*"', "c?f*")),
    Exists("process.args"),
    Not(Exists("user.id")),
    Regex("process.name", "[a-z]+\\.exe", dialect="lucene"),
    Regex("process.name", "cmd", Case.INSENSITIVE, anchored=False),
    Compare(FieldRef("process.pid"), ">", Literal(10)),
    Compare(FieldRef("process.pid"), "<=", Literal(2.5)),
    Compare(FieldRef("user.id"), ">=", Literal("b"), Case.INSENSITIVE),
    Compare(Literal(5), "<", FieldRef("process.pid")),
    And((Equals("process.parent.name", ("w3wp.exe",), Case.INSENSITIVE), Not(Equals("process.name", ("cmd.exe",))))),
    Or((Const(False), Not(Wildcard("process.args", ("*",))))),
    Not(Or((Equals("process.name", ("cmd.exe",)), Compare(FieldRef("process.pid"), "!=", Literal(1))))),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents=DOCUMENTS)
def test_generated_documents_match_the_streaming_path(tmp_path: Path, documents: list[dict[str, Any]]) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in documents) + b"\n")
    rules = [_rule(node, n) for n, node in enumerate(QUERIES)]
    assert _columnar(path, rules) == _streaming(path, rules)


def test_every_tricky_value_in_every_field_matches_the_streaming_path(tmp_path: Path) -> None:
    values: list[Any] = [*TRICKY, 0, 1, 42, 1.0, 42.0, 2.5, True, False, None, [], [None], ["x", 42], TRICKY]
    documents = [_nest({field: value}) for field in FIELDS for value in values]
    path = tmp_path / "table.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in documents) + b"\n")
    rules = [_rule(node, n) for n, node in enumerate(QUERIES)]
    assert _columnar(path, rules) == _streaming(path, rules)


@pytest.mark.parametrize("name", ["elastic_defend-positive.ndjson", "elastic_defend-benign.ndjson"])
def test_elastic_defend_fixtures_with_the_bundled_pack(name: str) -> None:
    path = FIXTURES / name
    rules = list(load_bundled_rules().rules)
    assert columnar_supported(str(path))
    assert _columnar(path, rules) == _streaming(path, rules)


def test_positive_fixture_matches_and_hands_on_the_normalized_event() -> None:
    path = FIXTURES / "elastic_defend-positive.ndjson"
    rules = list(load_bundled_rules().rules)
    matches = list(columnar_matches(str(path), rules))
    assert matches, "the positive fixture holds a web shell spawn"
    first_line = path.read_bytes().split(b"\n")[0]
    assert matches[0][2] == event_of(orjson.loads(first_line))


def test_dotted_keys_nulls_and_object_arrays_are_decided_as_flattened(tmp_path: Path) -> None:
    lines = [
        {"process.name": "cmd.exe", "event": {"kind": "event"}},
        {"process": {"name": None, "executable": "C:\\x\\cmd.exe"}},
        {"process": {"executable": "C:\\x\\cmd.exe"}},
        {"process": [{"name": "cmd.exe"}, {"name": "x"}]},
        {"process": {"name": [{"a": 1}, "cmd.exe"]}},
        {"process": {"name": {"inner": "cmd.exe"}, "executable": "/bin/cmd.exe"}},
        {"process": {"name": "\u0441md.exe"}, "event": {"kind": "\\u0063"}},
    ]
    path = tmp_path / "shapes.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in lines) + b"\n\nnot json\n[1]\n")
    rules = [_rule(Equals("process.name", ("cmd.exe",), Case.INSENSITIVE), 0), _rule(Not(Exists("process.name")), 1)]
    assert _columnar(path, rules) == _streaming_tolerant(path, rules)


def _streaming_tolerant(path: Path, rules: list[Rule]) -> list[tuple[int, int]]:
    predicates = [compile_predicate(rule.ir) for rule in rules]
    found: list[tuple[int, int]] = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(document, dict):
            event = event_of(document)
            found.extend((index, number) for index, predicate in enumerate(predicates) if predicate(event))
    return found


@pytest.mark.parametrize(
    "node",
    [
        Cidr("source.ip", ("10.0.0.0/8",)),
        Keyword(("*cmd*",)),
        Equals("@timestamp", ("x",)),
        Regex("process.name", "\\w+"),
        Regex("process.name", "a#b", dialect="lucene"),
        Compare(FieldRef("process.pid"), "==", FieldRef("process.parent.pid")),
    ],
)
def test_constructs_the_sql_cannot_express_stay_on_the_streaming_path(node: Node) -> None:
    with pytest.raises(UnsupportedQuery):
        compile_sql(node, SqlFields())


def test_rule_literals_never_become_sql_text() -> None:
    fields = SqlFields()
    sql = compile_sql(Equals("process.name", ("x') OR true OR ('",)), fields)
    assert "'x'') OR true OR ('''" in sql


def test_a_file_duckdb_cannot_read_is_finished_on_the_streaming_path(tmp_path: Path) -> None:
    path = tmp_path / "bad-utf8.ndjson"
    good = orjson.dumps(_nest({"process.name": "cmd.exe"}))
    path.write_bytes(good + b"\n" + b'{"process":{"name":"\xff"}}\n' + good + b"\n")
    problems: list[str] = []
    rules = [_rule(Equals("process.name", ("cmd.exe",)), 0)]
    lines = [line for _, line, _ in columnar_matches(str(path), rules, on_problem=lambda p: problems.append(str(p)))]
    assert lines == [1, 3]
    assert problems


def test_windows_log_documents_and_crlf_files_are_not_columnar(tmp_path: Path) -> None:
    winlog = tmp_path / "winlog.ndjson"
    winlog.write_bytes(orjson.dumps({"winlog": {"event_id": 1}, "event": {"code": "1"}}) + b"\n")
    crlf = tmp_path / "crlf.ndjson"
    crlf.write_bytes(orjson.dumps(_nest({"process.name": "a"})) + b"\r\n")
    assert not columnar_supported(str(winlog))
    assert not columnar_supported(str(crlf))
