"""Rules decided per event class (shellwatch.prefilter over shellwatch.normalize.event_class).

Skipping the normalization of an event is only sound if the fields its class settles are exactly those the
normalizers write: the corpus test below checks every raw Windows event of the corpus against its class. The hunt
test checks the end result: the same alerts and counts with the prefilter (no time window) as without it (a time
window that every event lies in turns it off).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import evtx_corpus_records, shared_path
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.dispatch import normalize_with_family
from shellwatch.normalize.event_class import EventClass, rendered_event_class, windows_event_class
from shellwatch.normalize.windows_event import DATA_PREFIXES, SYSTEM_FIELDS
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.prefilter import ClassPrefilter
from shellwatch.query.eql import parse_eql
from shellwatch.query.ir import Keyword
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import ReadProblem

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def windows_event(provider: str, channel: str, event_id: int, **data: Any) -> dict[str, Any]:
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": provider}},
                "EventID": event_id,
                "Channel": channel,
                "Computer": "HOST1",
            },
            "EventData": data,
        }
    }


def sysmon(event_id: int) -> EventClass:
    return windows_event_class(
        windows_event("Microsoft-Windows-Sysmon", "Microsoft-Windows-Sysmon/Operational", event_id)
    )


def security(event_id: int) -> EventClass:
    return windows_event_class(windows_event("Microsoft-Windows-Security-Auditing", "Security", event_id))


BITS = windows_event_class(
    windows_event("Microsoft-Windows-Bits-Client", "Microsoft-Windows-Bits-Client/Operational", 3)
)


def eql_rule(query: str, number: int = 0) -> Rule:
    return Rule(
        rule_id=f"test-prefilter-{number}",
        name=f"prefilter probe {number}",
        description=query,
        type="eql",
        language="eql",
        query=query,
        ir=parse_eql(query),
        source=RuleSource(path="tests/test_prefilter.py"),
    )


def may_match(query: str, event_class: EventClass) -> bool:
    return ClassPrefilter(RuleSet([eql_rule(query)])).may_match(event_class)


def test_classes_settle_identity_and_categorization() -> None:
    assert sysmon(1).value("event.category") == ["process"]
    assert sysmon(1).value("event.type") == ["start"]
    assert sysmon(3).value("event.category") == ["network"]
    assert security(4688).value("event.module") == "security"
    assert security(4663).value("event.category") is None  # not in the security categorization table
    assert sysmon(1).value("host.os.type") == "windows"
    assert BITS.family == "windows" and BITS.value("process.name") is None  # no mapping: no process fields
    for event_class, field in ((sysmon(1), "process.name"), (BITS, "winlog.event_data.jobId"), (BITS, "@timestamp")):
        with pytest.raises(KeyError):
            event_class.value(field)


def test_seed_rule_needs_only_process_starts() -> None:
    eql_seed = next(rule for rule in load_bundled_rules().rules if rule.language == "eql")
    prefilter = ClassPrefilter(RuleSet([eql_seed]))
    assert prefilter.may_match(sysmon(1)) and prefilter.may_match(security(4688))
    for event_class in (sysmon(3), sysmon(5), sysmon(7), security(4624), security(4663), BITS):
        assert not prefilter.may_match(event_class)


def test_three_valued_logic() -> None:
    # Or with an undecided side, and Not over an undecided test, stay undecided.
    assert may_match('any where event.category == "process" or winlog.event_data.Foo == "x"', sysmon(3))
    assert may_match('any where not (event.category == "network" and process.name == "x.exe")', sysmon(3))
    # A missing field: the test is false, its negation true, whatever the event.
    assert not may_match("any where process.name != null", BITS)
    assert may_match("any where process.name == null", BITS)
    assert not may_match('any where event.code == "4624" and process.name == "x"', sysmon(1))


def test_rules_reading_the_whole_event_are_never_skipped() -> None:
    rule = Rule(
        rule_id="test-keyword",
        name="keyword",
        description="keyword search",
        type="query",
        language="kuery",
        query="mimikatz",
        ir=Keyword(patterns=("*mimikatz*",)),
        source=RuleSource(path="tests/test_prefilter.py"),
    )
    assert ClassPrefilter(RuleSet([rule])).may_match(BITS)


def test_classes_hold_for_every_corpus_event() -> None:
    """Every raw Windows event of the EVTX corpora: what its class settles is what the normalizer writes, and an
    event of a class without mapping has no field beyond those the class allows."""
    roots = [
        shared_path("corpus", "evtx-attack-samples"),
        shared_path("corpus", "hayabusa-sample-evtx"),
        shared_path("corpus", "omerbenamram-evtx"),
        shared_path("corpus", "sigma"),
    ]
    problems: list[ReadProblem] = []
    checked = 0
    for record in read_paths([str(root) for root in roots], on_problem=problems.append):
        if record.shape != "windows_event":
            continue
        event_class = windows_event_class(record.data)
        family, event = normalize_with_family(record)
        assert family == event_class.family, record.origin
        for field, value in event_class.settled.items():
            assert event.get(field) == value, (record.origin, field)
        if event_class.unmapped:
            extra = [
                key
                for key in event
                if key not in SYSTEM_FIELDS and key not in event_class.settled and not key.startswith(DATA_PREFIXES)
            ]
            assert not extra, (record.origin, extra)
        checked += 1
    assert checked > 15_000


def test_classes_read_from_rendered_text_agree_with_decoded_events() -> None:
    """Every record of the EVTX corpora as evtx renders it: the class read from the head of the text, when one is,
    has the family and settled fields of the decoded event's class, the channel excepted (left unsettled)."""
    import orjson

    read = 0
    for path, record_id, text in evtx_corpus_records("evtx-attack-samples", "hayabusa-sample-evtx"):
        from_text = rendered_event_class(text)
        if from_text is None:
            continue
        decoded = windows_event_class(orjson.loads(text))
        assert from_text.family == decoded.family, (path, record_id)
        expected = {key: value for key, value in decoded.settled.items() if key != "winlog.channel"}
        assert dict(from_text.settled) == expected, (path, record_id)
        assert from_text.unmapped == decoded.unmapped
        with pytest.raises(KeyError):
            from_text.value("winlog.channel")
        read += 1
    assert read > 7_000


HEAD = (
    '{"Event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"},'
    '"System":{"Provider":{"#attributes":{"Name":'
)


@pytest.mark.parametrize(
    ("text", "readable"),
    [
        (HEAD + '"Microsoft-Windows-Sysmon","Guid":"{5770385F}"}},"EventID":1,"Channel":"X"}}}', True),
        # An escape in the name: the text is not the value.
        (HEAD + '"Microsoft-Windows-Sysmo\\u006e"}},"EventID":1,"Channel":"X"}}}', False),
        # A second Name attribute: a decoder keeps the last one.
        (HEAD + '"Microsoft-Windows-Sysmon","Name":"Other"}},"EventID":1,"Channel":"X"}}}', False),
        # The event id with its qualifiers, as classic event sources have it (the qualifiers are not read).
        (HEAD + '"Service Control Manager"}},"EventID":{"#attributes":{"Qualifiers":16384},"#text":7045}}}}', True),
        # The event id as text, or qualifiers in another shape: read by decoding.
        (HEAD + '"Microsoft-Windows-Sysmon"}},"EventID":"1","Channel":"X"}}}', False),
        (HEAD + '"Service Control Manager"}},"EventID":{"#attributes":{"Qualifiers":16384},"#text":"7045"}}}}', False),
        (HEAD + '"Service Control Manager"}},"EventID":{"#text":7045,"#attributes":{"Qualifiers":1}}}}}', False),
        # An event id longer than Windows writes: decoded.
        (HEAD + '"Microsoft-Windows-Sysmon"}},"EventID":1234567,"Channel":"X"}}}', False),
        # The event log service's events are mapped by channel.
        (HEAD + '"Microsoft-Windows-Eventlog"}},"EventID":1102,"Channel":"Security"}}}', False),
        # Another root, or another first member of System.
        ('{"Other":' + HEAD[9:] + '"Microsoft-Windows-Sysmon"}},"EventID":1,"Channel":"X"}}}', False),
        (HEAD.replace('"Provider"', '"Level":4,"Provider"') + '"Microsoft-Windows-Sysmon"}},"EventID":1}}}', False),
    ],
)
def test_rendered_text_is_read_only_when_plain(text: str, readable: bool) -> None:
    assert (rendered_event_class(text) is not None) == readable


def hunt_both_ways(paths: list[str], rules: RuleSet) -> None:
    """The hunt with the prefilter and without (a time window covering every event turns it off)."""
    with_stats, without_stats = HuntStats(), HuntStats()
    with_prefilter = list(hunt(paths, rules, stats=with_stats, workers=1))
    start = datetime(1601, 1, 1, tzinfo=UTC)
    without_prefilter = list(hunt(paths, rules, stats=without_stats, start=start, workers=1))
    assert [a["kibana.alert.uuid"] for a in with_prefilter] == [a["kibana.alert.uuid"] for a in without_prefilter]
    assert with_stats.records == without_stats.records == with_stats.events_in_window
    assert without_stats.events_in_window == without_stats.records
    assert with_stats.by_source == without_stats.by_source
    assert with_stats.alerts_by_rule == without_stats.alerts_by_rule
    assert with_stats.alerts > 0


PROBES = (
    'process where event.type == "start" and event.code in ("1", "4688")',
    'authentication where event.outcome == "success" and winlog.logon.type == "Network"',
    'registry where registry.path : "*\\\\CurrentVersion\\\\Run*"',
    'any where winlog.channel == "Microsoft-Windows-PowerShell/Operational" and event.code == "4104"',
    'any where event.provider == "Microsoft-Windows-Bits-Client" and winlog.event_data.processPath : "*svchost*"',
    'network where destination.port == 445 or event.action == "network-share-object-access-checked"',
    'any where not event.category in ("process", "network", "file", "registry", "authentication", "iam")',
)


def test_hunt_alerts_are_the_same_without_the_prefilter() -> None:
    rules = RuleSet([*load_bundled_rules().rules, *(eql_rule(query, n) for n, query in enumerate(PROBES))])
    paths = [str(SAMPLES)]
    hunt_both_ways(paths, rules)


def test_corpus_hunt_alerts_are_the_same_without_the_prefilter() -> None:
    rules = RuleSet([*load_bundled_rules().rules, *(eql_rule(query, n) for n, query in enumerate(PROBES))])
    paths = [
        str(shared_path("corpus", "evtx-attack-samples")),
        str(shared_path("corpus", "hayabusa-sample-evtx")),
        str(shared_path("corpus", "omerbenamram-evtx")),
    ]
    hunt_both_ways(paths, rules)
