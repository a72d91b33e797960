"""EVTX records ruled out from their JSON text (shellwatch.triage, over shellwatch.normalize.verbatim).

Ruling a record out is only sound if no rule could have matched its normalized event. Checked three ways:

* over every EVTX record of the corpus: each field the verbatim table lists occurs, run by run, in the text of one
  of its keys' values, and no rule of the bundled pack or of SigmaHQ's process_creation set that matches a record
  is ruled out by that record's text;
* over records hypothesis writes in evtx's rendering, with the characters that stress escaping and case (quotes,
  backslashes, line breaks, the Kelvin sign, dotted capital I);
* end to end: hunts give the same alerts and counts with the triage as without it.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import evtx_corpus_records, shared_path
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.literals import ascii_lower, requirement
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.event_class import rendered_event_class
from shellwatch.normalize.verbatim import FIELD_SOURCES
from shellwatch.normalize.windows_event import normalize_windows_event
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.prefilter import ClassPrefilter
from shellwatch.query.eql import parse_eql
from shellwatch.rules.loader import load_bundled_rules, load_rules
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.triage import RecordTriage, TextFilter, key_values

EVTX_CORPORA = ("evtx-attack-samples", "hayabusa-sample-evtx", "omerbenamram-evtx")
_CONTROL_RUNS = re.compile(r"[\x00-\x1f]+")


def eql_rule(query: str, number: int = 0) -> Rule:
    return Rule(
        rule_id=f"test-triage-{number}",
        name=f"triage probe {number}",
        description=query,
        type="eql",
        language="eql",
        query=query,
        ir=parse_eql(query),
        source=RuleSource(path="tests/test_triage.py"),
    )


def corpus_texts() -> list[tuple[str, str]]:
    """(file, JSON text) of every record the parser renders in the EVTX corpora."""
    return [(path.name, text) for path, _, text in evtx_corpus_records(*EVTX_CORPORA)]


def json_text(value: Any) -> str:
    """JSON as evtx writes it: compact, non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------------------
# Reading key values from the text


@settings(max_examples=300, deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from(["Image", "ParentImage", "CommandLine", "xImage", 'a"Image']),
        st.text(alphabet='ab\\"\r\n\x1bé:{}', max_size=12),
        max_size=4,
    )
)
def test_key_values_reads_every_string_written_for_the_key(values: dict[str, str]) -> None:
    """Every value written for the key is read, nested ones too; a key that merely ends in the key's name and a
    quote (``a"Image``) may add its value, which can only keep more records."""
    text = json_text({"EventData": values, "Other": {"Image": "nested"}})
    read = key_values(text, "Image")
    assert read is not None
    expected = [json_text(values["Image"])[1:-1].lower()] if "Image" in values else []
    assert not Counter(expected) - Counter(read)
    assert read[-1] == "nested"
    extra = [json_text(value)[1:-1].lower() for key, value in values.items() if key.endswith('"Image')]
    assert all(value in expected + extra + ["nested"] for value in read)


def test_key_values_is_undecided_on_values_that_are_not_strings() -> None:
    assert key_values('{"Image":5}', "Image") is None
    assert key_values('{"Image":{"#text":["a","b"]}}', "Image") is None
    assert key_values('{"Image":"a"}', "ParentImage") == []


# ------------------------------------------------------------------------------------------------------------
# The corpus


@pytest.fixture(scope="module")
def texts() -> list[tuple[str, str]]:
    return corpus_texts()


def test_listed_fields_come_from_their_keys(texts: list[tuple[str, str]]) -> None:
    """Every value of every field the verbatim table lists, over every record of the EVTX corpora: each of its runs
    between control characters, JSON-escaped, occurs up to ASCII case in a value of one of the field's keys."""
    checked = 0
    for name, text in texts:
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        family, event = normalize_windows_event(document)
        for field, keys in FIELD_SOURCES.get(family, {}).items():
            value = event.get(field)
            if value is None:
                continue
            key_texts = [found for key in keys for found in (key_values(text, key) or [])]
            for item in value if isinstance(value, list) else [value]:
                for run in _CONTROL_RUNS.split(item):
                    escaped = ascii_lower(json_text(run)[1:-1])
                    assert any(escaped in ascii_lower(key_text) for key_text in key_texts), (name, field, item)
                checked += 1
    assert checked > 40_000


def sigma_process_creation_rules() -> list[Rule]:
    folders = sorted(shared_path("corpus", "sigmahq-rules").rglob("process_creation"))
    return list(load_rules(folders, jobs=2).rules)


def test_no_matching_rule_is_ruled_out(texts: list[tuple[str, str]]) -> None:
    """The bundled pack and SigmaHQ's process_creation rules over every corpus record: wherever a rule matches the
    normalized event, that rule's text filter keeps the record. Most rules have one here, and it rules out most
    of the records of their classes."""
    rules = [*load_bundled_rules().rules, *sigma_process_creation_rules()]
    assert len(rules) > 1_400
    prefilter = ClassPrefilter(RuleSet(rules))
    predicates = [compile_predicate(rule.ir) for rule in rules]
    filters: dict[tuple[str, int], TextFilter | None] = {}
    matched = kept = ruled_out = sampled = 0
    for name, text in texts:
        event_class = rendered_event_class(text)
        if event_class is None:
            continue
        candidates = prefilter.candidates(event_class)
        if not candidates:
            continue
        event = normalize_windows_event(orjson.loads(text))[1]
        for index in candidates:
            key = (event_class.family, index)
            if key not in filters:
                need = requirement(rules[index].ir, FIELD_SOURCES.get(event_class.family, {}).__contains__)
                filters[key] = None if need is None else TextFilter.of(event_class.family, (need,))
            text_filter = filters[key]
            if text_filter is None:
                continue
            if predicates[index](event):
                matched += 1
                assert text_filter.may_match(text), (name, rules[index].name)
            elif sampled < 200_000:  # how much the filters rule out, on a sample of the pairs that do not match
                sampled += 1
                if text_filter.may_match(text):
                    kept += 1
                else:
                    ruled_out += 1
    with_filter = sum(1 for text_filter in filters.values() if text_filter is not None)
    assert with_filter > 0.8 * len({index for _, index in filters})
    assert matched > 100
    assert ruled_out > 20 * kept


# ------------------------------------------------------------------------------------------------------------
# Crafted records

HEAD = {
    "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
}
NASTY = 'aAkKiI.\\/"-:{} \r\n\x1bé®\u212a\u0130' + "w3wp.exe cmd.exe "


def sysmon_text(data: dict[str, str]) -> str:
    event = {
        "Event": {
            **HEAD,
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "5770385F-C22A-43E0"}},
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "web01",
            },
            "EventData": data,
        }
    }
    return json_text(event)


@functools.cache
def probe_triage() -> tuple[RuleSet, RecordTriage]:
    rules = RuleSet([*load_bundled_rules().rules, *(eql_rule(query, n) for n, query in enumerate(PROBES))])
    return rules, RecordTriage(rules, ClassPrefilter(rules))


PROBES = (
    'process where process.parent.name : ("w3wp.exe", "httpd.exe") and process.name : "cmd.exe"',
    'process where process.command_line : "*whoami*" or process.executable : "*\\\\W3WP.EXE"',
    'process where process.parent.executable == "C:\\\\w3wp.exe" and user.name : "k*"',
)
fragments = st.sampled_from(
    ["w3wp.exe", "W3WP.EXE", "cmd.exe", "CMD.exe", "C:\\", "whoami", "\\W3WP.EXE", "k", "K", "\u212a", "\u0130"]
)
values = st.lists(st.one_of(fragments, st.text(alphabet=NASTY, max_size=4)), max_size=4).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    image=values,
    parent=values,
    command_line=values,
    user=values,
)
def test_crafted_records_that_match_are_kept(image: str, parent: str, command_line: str, user: str) -> None:
    rules, triage = probe_triage()
    data = {"Image": image, "ParentImage": parent, "CommandLine": command_line, "User": f"DOM\\{user}"}
    text = sysmon_text(data)
    event = normalize_windows_event(orjson.loads(text))[1]
    if rules.matching(event):
        assert triage.ruled_out(text) is None, (data, [rule.name for rule in rules.matching(event)])


def test_crafted_records_are_ruled_out() -> None:
    """The other direction: a record naming no web server is ruled out, one naming one is kept."""
    rules = RuleSet(load_bundled_rules().rules)
    triage = RecordTriage(rules, ClassPrefilter(rules))
    plain = {"Image": "C:\\Windows\\cmd.exe", "ParentImage": "C:\\Windows\\explorer.exe", "CommandLine": "cmd"}
    assert triage.ruled_out(sysmon_text(plain)) == "sysmon"
    web = {**plain, "ParentImage": "C:\\inetpub\\W3WP.EXE"}
    assert triage.ruled_out(sysmon_text(web)) is None
    # The web server named elsewhere (the command line) is not enough to keep... but it does not hurt either:
    # only the keys the parent name is cut from are looked at.
    elsewhere = {**plain, "CommandLine": "w3wp.exe"}
    assert triage.ruled_out(sysmon_text(elsewhere)) == "sysmon"
    # Undecided: a value that is not a plain string, or a character whose lower case is ASCII.
    assert triage.ruled_out(sysmon_text({**plain, "ParentImage": {"#text": ["a", "b"]}})) is None  # type: ignore[dict-item]
    assert triage.ruled_out(sysmon_text({**plain, "CommandLine": "\u212a"})) is None


def event_text(provider: str, event_id: int, data: dict[str, str]) -> str:
    return json_text(
        {
            "Event": {
                **HEAD,
                "System": {
                    "Provider": {"#attributes": {"Name": provider}},
                    "EventID": event_id,
                    "Version": 5,
                    "Computer": "web01",
                },
                "EventData": data,
            }
        }
    )


def _record_pool() -> list[str]:
    """Records of several kinds: process starts with and without a web server parent (the text filter decides),
    classes no rule can match, a provider no mapping knows, and each of them cut short around its event id."""
    plain = {"Image": "C:\\Windows\\cmd.exe", "ParentImage": "C:\\Windows\\explorer.exe", "CommandLine": "cmd"}
    web = {**plain, "ParentImage": "C:\\inetpub\\W3WP.EXE"}
    whole = [
        event_text("Microsoft-Windows-Sysmon", 1, plain),
        event_text("Microsoft-Windows-Sysmon", 1, web),
        event_text("Microsoft-Windows-Sysmon", 3, plain),
        event_text("Microsoft-Windows-Sysmon", 11, {"TargetFilename": "C:\\x.ps1"}),
        event_text("Microsoft-Windows-Security-Auditing", 4688, {"ParentProcessName": "C:\\w3wp.exe"}),
        event_text("Microsoft-Windows-Security-Auditing", 4624, {"TargetUserName": "bob"}),
        event_text("Some-Unknown-Provider", 1, plain),
        event_text("Microsoft-Windows-Sysmon", 12345, plain),
    ]
    cut: list[str] = []
    for text in whole:
        after_id = text.index('"EventID":') + len('"EventID":')
        cut += [text[: after_id + length] for length in (1, 2, 3, 8, 30, 60)]
    return whole + cut


RECORD_POOL = _record_pool()


@functools.cache
def bundled_rule_set() -> RuleSet:
    return RuleSet(load_bundled_rules().rules)


@settings(max_examples=300, deadline=None)
@given(picks=st.lists(st.integers(min_value=0, max_value=len(RECORD_POOL) - 1), max_size=40))
def test_claim_agrees_with_ruled_out_over_any_sequence(picks: list[int]) -> None:
    """``claim`` reuses the previous record's verdict when a text starts with that record's key (a shortcut for
    runs of one kind of record). Over any sequence of records, kinds alternating, the same key followed by other
    data, texts cut short inside or right after their event id: it claims exactly the records ``ruled_out``
    rules out, and counts them by the family ``ruled_out`` names."""
    rules = bundled_rule_set()
    triage = RecordTriage(rules, ClassPrefilter(rules))
    expected: Counter[str] = Counter()
    for pick in picks:
        text = RECORD_POOL[pick]
        family = triage.ruled_out(text)
        assert triage.claim(text) is (family is not None), text
        if family is not None:
            expected[family] += 1
    assert triage.ruled_out_by_family == dict(expected)


def test_record_pool_holds_every_verdict() -> None:
    """The pool above is worth its name: it has records claimed by class, by text, and kept."""
    rules = RuleSet(load_bundled_rules().rules)
    triage = RecordTriage(rules, ClassPrefilter(rules))
    verdicts = {triage.ruled_out(text) for text in RECORD_POOL}
    assert {None, "sysmon", "windows_security"} <= verdicts
    kept_process_start = RECORD_POOL[1]
    assert triage.ruled_out(kept_process_start) is None
    assert triage.ruled_out(RECORD_POOL[0]) == "sysmon"


# ------------------------------------------------------------------------------------------------------------
# End to end


def test_corpus_hunt_is_the_same_with_and_without_the_triage() -> None:
    """The bundled pack and literal-only probes (so that the text filter is on for process starts), over the EVTX
    corpora: the same alerts and counts as a hunt with every record decoded (a time window that every event lies
    in turns the triage off)."""
    probes = (
        'process where process.name : ("whoami.exe", "net.exe", "net1.exe") and user.name : "*"',
        'process where process.parent.name : "services.exe" and process.command_line : "*cmd*"',
        'file where file.name : ("*.ps1", "*.bat") or file.path : "*\\\\temp\\\\*"',
    )
    rules = RuleSet([*load_bundled_rules().rules, *(eql_rule(query, n) for n, query in enumerate(probes))])
    paths = [str(shared_path("corpus", name)) for name in EVTX_CORPORA]
    with_stats, without_stats = HuntStats(), HuntStats()
    with_triage = list(hunt(paths, rules, stats=with_stats, workers=1))
    start = datetime(1601, 1, 1, tzinfo=UTC)
    without = list(hunt(paths, rules, stats=without_stats, start=start, workers=1))
    assert [a["kibana.alert.uuid"] for a in with_triage] == [a["kibana.alert.uuid"] for a in without]
    assert with_stats.records == without_stats.records
    assert with_stats.by_source == without_stats.by_source
    assert with_stats.alerts_by_rule == without_stats.alerts_by_rule
    assert len({a["kibana.alert.rule.name"] for a in with_triage}) >= 4


def test_progress_is_reported_while_records_are_ruled_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log whose records are nearly all ruled out still moves the progress bar: the reader yields a marker now
    and then among the records it did not decode, and the scanner reports its counts there (constants lowered so
    that a corpus file of a few thousand records shows it)."""
    from shellwatch import pipeline
    from shellwatch.sources import evtx_file

    monkeypatch.setattr(pipeline, "PROGRESS_RECORDS", 500)
    monkeypatch.setattr(evtx_file, "CLAIMED_MARK_EVERY", 100)
    path = shared_path("corpus", "omerbenamram-evtx", "samples", "security.evtx")
    seen: list[int] = []
    stats = HuntStats()
    rules = RuleSet(load_bundled_rules().rules)
    list(hunt([str(path)], rules, stats=stats, workers=1, on_progress=lambda s: seen.append(s.records)))
    assert stats.records == 2261
    during = [count for count in seen if 0 < count < stats.records]
    assert len(set(during)) >= 3, seen
