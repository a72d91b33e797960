"""The columnar path (DuckDB) decides exactly what the streaming path decides.

Every test compares :func:`shellwatch.columnar.columnar_matches` with the streaming path's own pieces over the same
file: each line decoded, normalized by ``normalize_with_family`` and tested by ``compile_predicate``. The IR's
semantics (missing fields, any-of on lists, case modes, wildcard escapes, string/number typing) are documented in
``shellwatch.query.ir``; LIKE's escape clause and ``json_transform`` as in DuckDB's docs
(https://duckdb.org/docs/sql/functions/pattern_matching, https://duckdb.org/docs/data/json/json_functions).
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


DOCUMENTS = st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5).map(_nest), min_size=1, max_size=24)

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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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


# -- the line prefilter: the texts a match needs, searched before any JSON work --------------------------------
#
# When every rule requires some text (engine.literals.requirement), lines holding none of it are never parsed.
# These tests write the same documents in the ways JSON allows (escaped slashes, \u escapes, any letter case) and
# compare with the streaming reader over the whole file (sources.json_records.read_json, one SourceContext, as
# pipeline.hunt reads an input). JSON escapes: RFC 8259 section 7 (https://www.rfc-editor.org/rfc/rfc8259#section-7).

PREFILTERED: list[Node] = [
    Equals("process.parent.name", ("w3wp.exe", "php-cgi.exe"), Case.INSENSITIVE),
    And((Equals("event.category", ("process",)), Wildcard("process.executable", ("*\\\\cmd.exe",), Case.INSENSITIVE))),
    Wildcard("process.args", ("*/bin/sh*", '*"quoted"*'), Case.INSENSITIVE),
    Equals("user.id", ("it's",)),
]
PREFILTER_VALUES = [
    "w3wp.exe",
    "W3WP.EXE",
    "w3wp.ex\u00e9",
    "php-cgi.exe",
    "PHP-CGI.exe",
    "C:\\Windows\\System32\\CMD.exe",
    "C:\\x\\cmd.exe",
    "/bin/sh -c id",
    "/BIN/SH",
    'say "Quoted"',
    "it's",
    "IT'S",
    "\u212aelvin",
    "\u0130",
    "other",
]


def _escaped_slashes(line: bytes) -> bytes:
    return line.replace(b"/", b"\\/")


def _unicode_escaped(line: bytes) -> bytes:
    # Every letter e written as \u0065: JSON allows the escape in keys and values alike.
    return line.replace(b"e", b"\\u0065")


def _spaced(line: bytes) -> bytes:
    return line.replace(b":", b": ")


def _as_is(line: bytes) -> bytes:
    return line


ENCODINGS: list[Callable[[bytes], bytes]] = [_as_is, _escaped_slashes, _unicode_escaped, _spaced]


def _streaming_reader(path: Path, rules: list[Rule]) -> tuple[list[tuple[int, int]], int]:
    from shellwatch.normalize.context import SourceContext
    from shellwatch.normalize.dispatch import normalize_with_family
    from shellwatch.sources.json_records import read_json

    predicates = [compile_predicate(rule.ir) for rule in rules]
    found: list[tuple[int, int]] = []
    context = SourceContext()
    records = 0
    with path.open("rb") as handle:
        for record in read_json(handle, str(path), lambda problem: None):
            records += 1
            event = normalize_with_family(record, context=context)[1]
            found.extend((i, record.origin.line or 0) for i, p in enumerate(predicates) if p(event))
    return found, records


def _columnar_with_records(path: Path, rules: list[Rule]) -> tuple[list[tuple[int, int]], int]:
    matches = columnar_matches(str(path), rules)
    assert matches.fallback_rules == {}
    found = [(index, line) for index, line, _ in matches]
    return found, matches.records


PREFILTER_DOCUMENTS = st.lists(
    st.tuples(
        st.dictionaries(
            st.sampled_from([*FIELDS, "event.category"]),
            st.one_of(st.sampled_from(PREFILTER_VALUES), st.lists(st.sampled_from(PREFILTER_VALUES), max_size=2)),
            max_size=4,
        ).map(_nest),
        st.sampled_from(range(len(ENCODINGS))),
    ),
    min_size=1,
    max_size=24,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents=PREFILTER_DOCUMENTS)
def test_prefiltered_rules_match_the_streaming_reader_whatever_the_json_spelling(
    tmp_path: Path, documents: list[tuple[dict[str, Any], int]]
) -> None:
    path = tmp_path / "spelled.ndjson"
    path.write_bytes(b"".join(ENCODINGS[encoding](orjson.dumps(d)) + b"\n" for d, encoding in documents))
    rules = [_rule(node, n) for n, node in enumerate(PREFILTERED)]
    assert _columnar_with_records(path, rules) == _streaming_reader(path, rules)


def test_every_prefilter_value_in_every_field_and_spelling_matches_the_streaming_reader(tmp_path: Path) -> None:
    lines = [
        ENCODINGS[encoding](orjson.dumps(_nest({field: value})))
        for field in [*FIELDS, "event.category"]
        for value in PREFILTER_VALUES
        for encoding in range(len(ENCODINGS))
    ]
    path = tmp_path / "spellings.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rules = [_rule(node, n) for n, node in enumerate(PREFILTERED)]
    found, records = _columnar_with_records(path, rules)
    assert (found, records) == _streaming_reader(path, rules)
    assert {index for index, _ in found} == set(range(len(PREFILTERED)))


def test_the_prefilter_parses_only_lines_holding_a_needed_text(tmp_path: Path) -> None:
    hit = _nest({"process.parent.name": "W3WP.EXE"})
    path = tmp_path / "mostly-benign.ndjson"
    lines = [orjson.dumps(_nest({"process.name": f"p{n}.exe"})) for n in range(50)]
    lines[20] = orjson.dumps(hit)
    path.write_bytes(b"\n".join(lines) + b"\n")
    rules = [_rule(PREFILTERED[0], 0)]
    matches = columnar_matches(str(path), rules)
    assert [(index, line) for index, line, _ in matches] == [(0, 21)]
    assert matches.stats["candidate_lines"] == 1
    assert matches.records == 50


def test_line_numbers_hold_when_duckdb_reads_the_file_in_parallel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line's number is its row's place in DuckDB's result: with the file read in many buffers by two threads,
    the matches keep the streaming reader's line numbers and the record count its count (empty lines skipped).
    DuckDB keeps a result in the order of its input while scanning in parallel when ``preserve_insertion_order``
    is set (https://duckdb.org/docs/stable/sql/dialect/order_preservation)."""
    import shellwatch.columnar as columnar

    monkeypatch.setattr(columnar, "DUCKDB_LINE_BYTES", 16 << 10)  # 64 KiB buffers: the file spans over 16
    hit = orjson.dumps(_nest({"process.parent.name": "w3wp.exe", "process.name": "cmd.exe"}))
    lines: list[bytes] = []
    for n in range(6000):
        lines.append(hit if n % 997 == 3 else orjson.dumps(_nest({"process.name": f"p{n}.exe", "user.id": "x" * 80})))
        if n % 1300 == 7:
            lines.append(b"")
    path = tmp_path / "many-buffers.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert path.stat().st_size > 16 * 4 * columnar.DUCKDB_LINE_BYTES
    rules = [_rule(PREFILTERED[0], 0)]
    matches = columnar.ColumnarMatches(str(path), rules, threads=2)
    found = [(index, line) for index, line, _ in matches]
    assert (found, matches.records) == _streaming_reader(path, rules)
    assert len(found) == 7


def test_the_plan_keeps_the_file_order(tmp_path: Path) -> None:
    """Line numbers come from the order of DuckDB's result, which DuckDB guarantees through scans, projections and
    filters but not through joins (https://duckdb.org/docs/stable/sql/dialect/order_preservation): the plan of the
    bundled pack and of a long ``IN`` list (which DuckDB's optimizer may turn into a join) holds no join."""
    path = tmp_path / "one.ndjson"
    path.write_bytes(orjson.dumps(_nest({"process.name": "cmd.exe"})) + b"\n")
    names = tuple(f"tool{n}.exe" for n in range(40))
    rules = [*load_bundled_rules().rules, _rule(Equals("process.name", names, Case.INSENSITIVE), 99)]
    matches = columnar_matches(str(path), rules)
    connection = matches.connect()
    try:
        plan = "\n".join(str(row) for row in connection.execute("EXPLAIN " + matches.query()).fetchall())
    finally:
        connection.close()
    assert "READ_CSV" in plan
    assert "JOIN" not in plan


def test_an_escaped_backslash_before_u_is_no_unicode_escape(tmp_path: Path) -> None:
    """``"c:\\\\users"`` in a JSON line is an escaped backslash followed by ``u``, not a ``\\u`` escape (RFC 8259,
    section 7): such a line is searched as text, while a line spelling a character as ``\\u0063`` is still read."""
    benign = [orjson.dumps(_nest({"process.name": "p.exe", "process.args": [f"c:\\users\\u{n}"]})) for n in range(20)]
    escaped = orjson.dumps(_nest({"process.parent.name": "w3wp.exe"})).replace(b"w3wp", b"\\u0077" + b"3wp")
    path = tmp_path / "paths.ndjson"
    path.write_bytes(b"\n".join([*benign, escaped]) + b"\n")
    rules = [_rule(PREFILTERED[0], 0)]
    matches = columnar_matches(str(path), rules)
    found = [(index, line) for index, line, _ in matches]
    assert (found, matches.records) == _streaming_reader(path, rules)
    assert found == [(0, 21)]
    assert matches.stats["candidate_lines"] == 1


def test_a_line_that_is_not_whole_json_hands_the_rest_to_the_streaming_reader(tmp_path: Path) -> None:
    hit = orjson.dumps(_nest({"process.parent.name": "w3wp.exe"}))
    pretty = orjson.dumps(_nest({"process.parent.name": "php-cgi.exe"}), option=orjson.OPT_INDENT_2)
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(hit + b"\n   \n" + b"{broken\n" + pretty + b"\n" + hit + b"\n" + hit[:-1] + b"\n")
    rules = [_rule(PREFILTERED[0], 0)]
    problems: list[str] = []
    matches = columnar_matches(str(path), rules, on_problem=lambda p: problems.append(str(p)))
    found = [(index, line) for index, line, _ in matches]
    assert (found, matches.records) == _streaming_reader(path, rules)
    assert matches.stats["streamed_from_line"] == 3
    assert problems


def test_another_family_mid_file_is_read_as_the_streaming_reader_reads_it(tmp_path: Path) -> None:
    ecs = [orjson.dumps(_nest({"process.name": f"p{n}.exe"})) for n in range(5)]
    sysmon = orjson.dumps(
        {
            "winlog": {
                "channel": "Microsoft-Windows-Sysmon/Operational",
                "provider_name": "Microsoft-Windows-Sysmon",
                "event_id": 1,
                "event_data": {"ParentImage": "C:\\\\w\\\\W3WP.exe", "Image": "C:\\\\x\\\\cmd.exe"},
            },
            "event": {"code": "1"},
        }
    )
    path = tmp_path / "families.ndjson"
    path.write_bytes(b"\n".join([*ecs, sysmon, *ecs]) + b"\n")
    rules = [_rule(PREFILTERED[0], 0)]
    matches = columnar_matches(str(path), rules)
    found = [(index, line) for index, line, _ in matches]
    assert (found, matches.records) == _streaming_reader(path, rules)
    assert found, "the Sysmon event's parent is w3wp.exe"


def columnar_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the columnar path reads from now on, in order (its matches are iterated once per path)."""
    import shellwatch.columnar as columnar

    runs: list[str] = []
    original = columnar.ColumnarMatches.__iter__

    def counted(self: Any) -> Any:
        runs.append(self.path)
        return original(self)

    monkeypatch.setattr(columnar.ColumnarMatches, "__iter__", counted)
    return runs


def test_columnar_hunt_gives_the_alerts_of_the_streaming_hunt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shellwatch.columnar as columnar
    from shellwatch.engine.ruleset import RuleSet
    from shellwatch.pipeline import HuntStats
    from shellwatch.pipeline import hunt as streaming_hunt

    path = tmp_path / "defend.ndjson"
    base = (FIXTURES / "elastic_defend-benign.ndjson").read_bytes() + (
        FIXTURES / "elastic_defend-positive.ndjson"
    ).read_bytes()
    path.write_bytes(base * 3)
    rules = RuleSet(load_bundled_rules().rules)
    monkeypatch.setattr(columnar, "COLUMNAR_MIN_BYTES", 0)
    spy = columnar_runs(monkeypatch)
    columnar_stats, streaming_stats = HuntStats(), HuntStats()
    fast = list(columnar.hunt([str(path)], rules, stats=columnar_stats))
    slow = list(streaming_hunt([str(path)], rules, stats=streaming_stats, workers=1))
    assert spy == [str(path)], "the columnar path ran"
    assert [a["kibana.alert.uuid"] for a in fast] == [a["kibana.alert.uuid"] for a in slow]
    drop = {"@timestamp", "kibana.alert.start", "kibana.alert.last_detected", "kibana.alert.time"}

    def stable(alert: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in alert.items() if key not in drop}

    assert [stable(a) for a in fast] == [stable(a) for a in slow]
    assert fast, "the positive fixture raises alerts"
    assert (columnar_stats.records, columnar_stats.duplicates, columnar_stats.by_source) == (
        streaming_stats.records,
        streaming_stats.duplicates,
        streaming_stats.by_source,
    )


def test_hunt_command_takes_the_columnar_path_for_a_large_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``shellwatch hunt`` hands a hunt with a file of at least the columnar threshold to ``columnar.hunt`` (which
    decides per hunt), and gives the streaming hunt's alerts."""
    from click.testing import CliRunner

    import shellwatch.columnar as columnar
    from shellwatch.cli import hunt as hunt_cli
    from shellwatch.cli import main

    assert hunt_cli.COLUMNAR_WORTH_BYTES == columnar.COLUMNAR_MIN_BYTES
    path = tmp_path / "defend.ndjson"
    base = (FIXTURES / "elastic_defend-positive.ndjson").read_bytes()
    path.write_bytes(base * 3)
    spy = columnar_runs(monkeypatch)
    runner = CliRunner()
    streaming = runner.invoke(main, ["hunt", "--format", "ndjson", str(path)], catch_exceptions=False)
    assert spy == [], "a small file stays on the streaming path"
    monkeypatch.setattr(hunt_cli, "COLUMNAR_WORTH_BYTES", 0)
    monkeypatch.setattr(columnar, "COLUMNAR_MIN_BYTES", 0)
    fast = runner.invoke(main, ["hunt", "--format", "ndjson", str(path)], catch_exceptions=False)
    assert spy == [str(path)], "the columnar path ran"
    ids = [[json.loads(line)["kibana.alert.uuid"] for line in r.stdout.splitlines()] for r in (streaming, fast)]
    assert ids[0] and ids[0] == ids[1]
