"""JSON documents ruled out from the fields the rules' requirements name (shellwatch.document_triage).

Ruling a document out is only sound if no rule could have matched its normalized event. Checked three ways:

* over ECS documents hypothesis writes, with values that stress case and types (the Kelvin sign, dotted capital
  I, numbers, lists, dotted keys, arrays of objects), before and after the triage has chosen its groups;
* over every process event of the EVTX corpora, nested into an ECS document, with SigmaHQ's process_creation
  rules and the bundled pack: no rule that matches a document's event is ruled out, and most documents are;
* end to end: a hunt over NDJSON gives the same alerts and counts with the triage as without it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import evtx_corpus_records, shared_path
from shellwatch.document_triage import DocumentTriage
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.literals import requirement
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.dispatch import ELASTIC_DEFEND, normalize_with_family
from shellwatch.normalize.windows_event import normalize_windows_event
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.query.eql import parse_eql
from shellwatch.query.ir import And, Case, Equals, Keyword
from shellwatch.rules.loader import load_bundled_rules, load_rules
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.sources.record import Origin, RawRecord

FIXTURES = Path(__file__).parent / "fixtures" / "sources" / "elastic_defend"


def eql_rule(query: str, number: int = 0) -> Rule:
    return Rule(
        rule_id=f"test-document-triage-{number}",
        name=f"document triage probe {number}",
        description=query,
        type="eql",
        language="eql",
        query=query,
        ir=parse_eql(query),
        source=RuleSource(path="tests/test_document_triage.py"),
    )


PROBES = (
    'process where process.parent.name : ("w3wp.exe", "httpd.exe") and process.name : "cmd.exe"',
    'process where process.name == "CMD.EXE" and process.args : "*whoami*"',
    'any where user.id : "*it\'s*" or process.executable : "*\\\\system32\\\\*"',
    'process where process.command_line : "*-enc*" and event.category == "process"',
    'any where process.pid == "42" and process.name : "p*"',
)


def event_of(document: dict[str, Any]) -> dict[str, Any]:
    return normalize_with_family(RawRecord(document, "json", Origin("-")))[1]


def ruled_out_and_matched(triage: DocumentTriage, rules: list[Rule], documents: list[dict[str, Any]]) -> list[str]:
    """The rules that match a document the triage rules out (none, if it is sound)."""
    predicates = [compile_predicate(rule.ir) for rule in rules]
    wrong: list[str] = []
    for document in documents:
        if triage.may_match(document):
            continue
        event = event_of(document)
        wrong.extend(rule.name for rule, predicate in zip(rules, predicates, strict=True) if predicate(event))
    return wrong


# ------------------------------------------------------------------------------------------------------------
# Generated documents

TRICKY = [
    "cmd.exe",
    "CMD.EXE",
    "w3wp.exe",
    "W3WP.EXE",
    "C:\\Windows\\System32\\cmd.exe",
    "it's",
    "powershell -ENC aQBlAHgA",
    "\u212a\u0130-enc",
    "c\u212aMD.exe",
    "whoami /all",
    "",
    "p1.exe",
    "42",
]
SCALARS = st.one_of(st.sampled_from(TRICKY), st.integers(40, 43), st.booleans(), st.none())
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    # An array of objects: its members' fields are multi-valued fields of the document (process.parent.name...).
    st.lists(st.dictionaries(st.sampled_from(["name", "executable", "args"]), SCALARS, max_size=2), max_size=2),
)
FIELDS = [
    "process.name",
    "process.parent.name",
    "process.args",
    "process.command_line",
    "process.executable",
    "process.pid",
    "user.id",
    "event.category",
    "process.parent",
]


def nest(flat: dict[str, Any], dotted: frozenset[str] = frozenset()) -> dict[str, Any]:
    """An Elastic Defend document holding ``flat``'s fields, nested, or dotted for the paths in ``dotted``."""
    document: dict[str, Any] = {"agent": {"type": "endpoint"}, "event": {"kind": "event"}}
    for path, value in flat.items():
        if path in dotted:
            document[path] = value
            continue
        node = document
        *parents, leaf = path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[leaf] = value
    return document


DOCUMENTS = st.lists(
    st.builds(
        nest, st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6), st.frozensets(st.sampled_from(FIELDS))
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(documents=DOCUMENTS, sample=st.integers(1, 8))
def test_generated_documents_ruled_out_match_no_rule(documents: list[dict[str, Any]], sample: int) -> None:
    """Before and after the triage settles on one group per rule (after ``sample`` documents)."""
    rules = [eql_rule(query, n) for n, query in enumerate(PROBES)]
    triage = DocumentTriage.for_rules(rules, sample=sample)
    assert triage is not None
    assert ruled_out_and_matched(triage, rules, documents + documents) == []


def test_values_the_pieces_do_not_decide_are_kept() -> None:
    """A number where a rule looks for a piece of text (how it compares is the engine's to decide), and a
    character whose lower case holds an ASCII letter (the Kelvin sign lowers to ``k``: ``"c\u212amd.exe"`` equals
    ``ckmd.exe`` case-insensitively, Python's str.lower)."""
    rules = [eql_rule('process where process.name : "ckmd.exe"'), eql_rule('any where user.id : "4*"', 1)]
    triage = DocumentTriage.for_rules(rules, sample=1)
    assert triage is not None
    assert not triage.may_match(nest({"process.name": "cmd.exe", "user.id": "7"}))
    assert triage.may_match(nest({"process.name": "cmd.exe", "user.id": 42}))
    assert triage.may_match(nest({"process.name": "c\u212amd.exe"}))


def test_a_rule_that_requires_no_text_turns_the_triage_off() -> None:
    rules = [eql_rule('process where process.name : "cmd.exe"'), eql_rule("any where process.pid > 4", 1)]
    assert DocumentTriage.for_rules(rules) is None


def test_the_group_fewest_documents_hold_is_chosen() -> None:
    """After the sample, a rule is searched for its rarest group: documents that hold only the common one are
    ruled out, documents with the rare one kept."""
    rules = [eql_rule('process where event.category == "process" and process.parent.name : "w3wp.exe"')]
    triage = DocumentTriage.for_rules(rules, sample=4)
    assert triage is not None
    common = nest({"event.category": ["process"], "process.parent.name": "explorer.exe"})
    for _ in range(4):
        assert not triage.may_match(common)
    assert not triage.may_match(common)
    assert triage.may_match(nest({"event.category": ["process"], "process.parent.name": "W3WP.exe"}))
    assert triage.may_match(nest({"process.parent.name": "w3wp.exe"})), "the common group is no longer searched"


# ------------------------------------------------------------------------------------------------------------
# The corpus

EVTX_CORPORA = ("evtx-attack-samples", "hayabusa-sample-evtx", "omerbenamram-evtx")


def corpus_process_documents() -> list[dict[str, Any]]:
    """Every process event the EVTX corpora hold (Sysmon 1, Security 4688...), normalized and nested back into
    an Elastic Defend document."""
    documents = []
    for _, _, text in evtx_corpus_records(*EVTX_CORPORA):
        event = normalize_windows_event(orjson.loads(text))[1]
        if "process" in (event.get("event.category") or ()) and event.get("process.name"):
            flat = {key: value for key, value in event.items() if key != "@timestamp" and value is not None}
            documents.append(nest(flat))
    return documents


def test_no_rule_that_matches_a_corpus_process_event_is_ruled_out() -> None:
    """SigmaHQ's process_creation rules (those with a requirement) with the bundled pack, and the bundled pack alone,
    over every process event of the EVTX corpora as Defend documents: every document a rule matches is kept. With
    1,000 rules some rule's piece is in nearly every process event; the bundled pack's triage rules out most."""
    folders = sorted(shared_path("corpus", "sigmahq-rules").rglob("process_creation"))
    pack = list(load_bundled_rules().rules)
    loaded = [*pack, *load_rules(folders, jobs=2).rules]
    rules = [rule for rule in loaded if requirement(rule.ir, lambda _field: True) is not None]
    assert len(rules) > 1_000
    documents = corpus_process_documents()
    assert len(documents) > 1_000
    for rule_list, at_most_kept in ((rules, None), (pack, len(documents) // 10)):
        triage = DocumentTriage.for_rules(rule_list)
        assert triage is not None
        rule_set = RuleSet(rule_list)
        matched = kept = 0
        for document in documents:
            may_match = triage.may_match(document)
            kept += may_match
            if rule_set.matching(event_of(document)):
                matched += 1
                assert may_match, document
        assert matched > (100 if rule_list is rules else 0)
        if at_most_kept is not None:
            assert kept <= at_most_kept + matched


# ------------------------------------------------------------------------------------------------------------
# End to end


def deeply_nested(document: dict[str, Any]) -> bytes:
    """``document`` as a JSON line, with an object nested 1,000 deep under ``labels`` (orjson reads 1,024 levels but
    writes fewer, and flattening them all exceeds Python's recursion limit)."""
    return orjson.dumps(document)[:-1] + b',"labels":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}"


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param((), id="bundled-and-probes"),
        pytest.param(('any where `@timestamp` : "2024-06-01*"',), id="a-rule-reading-the-timestamp"),
    ],
)
def test_hunt_over_ndjson_is_the_same_with_and_without_the_triage(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """The bundled pack and the probes over Defend fixtures, generated documents and documents a normalizer may
    stumble on (a timestamp whose UTC moment is out of range, an object nested 1,000 deep): the same alerts and
    counts as a hunt that normalizes every document in full (a time window every event lies in turns the triage
    off)."""
    lines = [*(FIXTURES / "elastic_defend-benign.ndjson").read_bytes().splitlines()]
    lines += (FIXTURES / "elastic_defend-positive.ndjson").read_bytes().splitlines()
    for number in range(300):
        flat = {
            "process.name": ["cmd.exe", "whoami.exe", f"p{number}.exe"][number % 3],
            "process.parent.name": "w3wp.exe" if number % 37 == 0 else "explorer.exe",
            "process.args": ["cmd.exe", "/c", "whoami" if number % 5 == 0 else "dir"],
            "event.category": ["process"],
            "event.type": ["start"],
            "host.os.type": "windows",
            "@timestamp": "2024-06-01T00:00:00.000Z",
        }
        lines.append(orjson.dumps(nest(flat)))
    odd = nest({"process.name": "p.exe", "@timestamp": "0001-01-01T00:00:00+01:00"})
    lines += [orjson.dumps(odd), deeply_nested(nest({"process.name": "p.exe"}))]
    path = tmp_path / "defend.ndjson"
    path.write_bytes(b"\n".join(lines * 3) + b"\n")
    probes = (*PROBES, *extra)
    rules = RuleSet([*load_bundled_rules().rules, *(eql_rule(query, n) for n, query in enumerate(probes))])
    with_stats, without_stats = HuntStats(), HuntStats()
    with_triage = list(hunt([str(path)], rules, stats=with_stats, workers=1))
    start = datetime(1, 1, 1, tzinfo=UTC)
    without = list(hunt([str(path)], rules, stats=without_stats, start=start, workers=1))
    assert [a["kibana.alert.uuid"] for a in with_triage] == [a["kibana.alert.uuid"] for a in without]

    def counts(stats: HuntStats) -> tuple[Any, ...]:
        return (stats.records, stats.by_source, stats.alerts_by_rule, stats.unrecognized_at, stats.duplicates)

    assert counts(with_stats) == counts(without_stats)
    assert with_stats.by_source[ELASTIC_DEFEND] > 900
    assert len({a["kibana.alert.rule.name"] for a in with_triage}) >= 3


def test_a_rule_reading_the_whole_event_turns_the_triage_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule with a keyword (here beside a field test, so that it requires a piece of text) makes the hunt
    normalize every document in full, which can fail (an object nested past
    Python's recursion limit: the event is then unreadable, counted as of no known source) where reading a few
    fields does not: with such a rule every document is read in full, and the hunt counts what it would count
    without the triage."""
    path = tmp_path / "deep.ndjson"
    path.write_bytes(deeply_nested(nest({"process.name": "p.exe", "process.parent.name": "explorer.exe"})) + b"\n")
    keyword = Rule(
        rule_id="keyword",
        name="keyword",
        description="",
        type="query",
        language="sigma",
        query="",
        ir=And((Keyword(("w3wp",)), Equals("process.parent.name", ("w3wp.exe",), Case.INSENSITIVE))),
        source=RuleSource(path="tests/test_document_triage.py"),
    )
    built: list[Any] = []
    real = DocumentTriage.for_rules

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(DocumentTriage, "for_rules", counted)
    rules = RuleSet([*load_bundled_rules().rules, keyword])
    with_stats, without_stats = HuntStats(), HuntStats()
    list(hunt([str(path)], rules, stats=with_stats, workers=1))
    list(hunt([str(path)], rules, stats=without_stats, start=datetime(1, 1, 1, tzinfo=UTC), workers=1))
    assert built == []
    assert (with_stats.by_source, with_stats.unrecognized_at) == (
        without_stats.by_source,
        without_stats.unrecognized_at,
    )


def test_the_triage_rules_out_most_documents_of_a_quiet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents the triage lets through are normalized in full; in a file where nothing matches, few are."""
    lines = [
        orjson.dumps(
            nest({"process.name": f"p{n}.exe", "process.parent.name": "explorer.exe", "event.category": ["process"]})
        )
        for n in range(2_000)
    ]
    path = tmp_path / "quiet.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    normalized: list[int] = []
    real = normalize_with_family

    def counted(*args: Any, **kwargs: Any) -> Any:
        normalized.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("shellwatch.pipeline.normalize_with_family", counted)
    stats = HuntStats()
    assert list(hunt([str(path)], RuleSet(load_bundled_rules().rules), stats=stats, workers=1)) == []
    assert stats.records == 2_000
    assert len(normalized) <= 100
