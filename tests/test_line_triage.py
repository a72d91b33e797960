"""NDJSON lines ruled out from their bytes (shellwatch.line_triage), and the JSON reader's hook for it.

Ruling a line out is sound only if no rule could have matched the event the normalizer makes of it. Checked by
reading lines exactly as a hunt does (shellwatch.sources.json_records.read_json, then
shellwatch.normalize.dispatch.normalize_with_family, then each rule's compiled predicate) and asserting that the
triage keeps every line some rule matches:

* over documents hypothesis writes for the rules themselves (values cut from each rule's literals, in any case, with
  quotes, backslashes, line breaks, non-ASCII, the Kelvin sign and dotted capital I spliced in, nested or dotted
  keys, arrays, nulls, numbers as strings, marks of the families the normalizer maps), each written four ways (raw
  UTF-8, ``\\u`` escapes, spaced, ``\\/`` escapes);
* over every object of the source fixtures and of ../shared's JSON samples (Elastic Defend, Winlogbeat, vendor
  exports, OTRF, Endgame), as written and re-written those ways;
* for the bundled pack and, when ../shared is there, every SigmaHQ process_creation rule, each rule alone too (a
  rule's own triage must keep the lines it matches, whatever the other rules do).

JSON's escapes are RFC 8259 section 7 (https://www.rfc-editor.org/rfc/rfc8259#section-7): any character may be
written ``\\uXXXX``, ``/`` also ``\\/``, and ``"`` and ``\\`` must be escaped.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED, shared_path
from shellwatch.engine.literals import requirement
from shellwatch.engine.ruleset import RuleSet
from shellwatch.line_triage import (
    RULED_OUT_FAMILY,
    UNSEARCHABLE_FIELDS,
    LineTriage,
    escaped_piece,
    has_escape,
    line_triage,
    passes_through,
)
from shellwatch.normalize.dispatch import ECS, ELASTIC_DEFEND, UNKNOWN, normalize_with_family
from shellwatch.query.eql import parse_eql
from shellwatch.query.ir import And, Equals, Node, Or, Wildcard
from shellwatch.rules.loader import load_bundled_rules, load_rules
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.sources.json_records import read_json
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import RawRecord

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
PASSED_THROUGH_FAMILIES = {ECS, ELASTIC_DEFEND, UNKNOWN}
RECORDS_PER_SAMPLE = 300
NASTY = ['"', "\\", "\n", "\t", "é", "\u212a", "\u0130", "/", "\\u", "ß", "\x00", "🦊", " "]
"""Characters spliced into values: JSON's escapes, case-folding exceptions, non-ASCII."""


def eql_rule(query: str, number: int = 0) -> Rule:
    return Rule(
        rule_id=f"test-line-triage-{number}",
        name=f"line triage probe {number}",
        description=query,
        type="eql",
        language="eql",
        query=query,
        ir=parse_eql(query),
        source=RuleSource(path="tests/test_line_triage.py"),
    )


PROBES = [
    eql_rule('process where process.command_line : "*\\"quoted\\\\path*"', 1),
    eql_rule('process where process.executable like "C:\\\\Temp\\\\*.exe" and process.name == "Evil.exe"', 2),
    eql_rule('process where process.parent.name in~ ("W3WP.exe", "kelvin.exe") and user.name : "iusr"', 3),
    eql_rule('process where process.args : "http://*/shell.aspx"', 4),
]
"""Rules whose pieces hold quotes, backslashes, slashes and case, beside the packs."""


@functools.cache
def bundled() -> tuple[Rule, ...]:
    return (*load_bundled_rules().rules, *PROBES)


@functools.cache
def sigma_process_creation() -> tuple[Rule, ...]:
    folders = sorted(shared_path("corpus", "sigmahq-rules").rglob("process_creation"))
    return tuple(load_rules(folders, jobs=2).rules)


# ------------------------------------------------------------------------------------------------------------
# Writing JSON lines


def styles(document: Any) -> list[bytes]:
    """One JSON object written four ways a shipper may write it, each on one line."""
    plain = json.dumps(document, ensure_ascii=False)
    return [
        orjson.dumps(document),
        json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode(),
        json.dumps(document, ensure_ascii=False, separators=(", ", " : ")).encode(),
        # "/" is written only inside strings, so each may be escaped (RFC 8259 section 7).
        plain.replace("/", "\\/").encode(),
    ]


# ------------------------------------------------------------------------------------------------------------
# The reference: what a hunt reads and matches


def events_of(line: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(family, event) of every record the reader gives for ``line``, normalized as a hunt does."""
    records = list(read_json(io.BytesIO(line + b"\n"), "line", lambda _problem: None))
    return [normalize_with_family(record) for record in records]


class Reference:
    """Rules, compiled together as a hunt compiles them; one triage per rule; and, when ``combined``, a triage of
    them all, kept across examples so that its screens move (with thousands of rules its screen is thousands of
    searches a line: :func:`~shellwatch.line_triage.line_triage` would not build it, and the tests of the
    SigmaHQ set check each rule's own triage only)."""

    def __init__(self, rules: tuple[Rule, ...], *, combined: bool = True) -> None:
        self.rules = [rule for rule in rules if requirement(rule.ir, lambda f: f not in UNSEARCHABLE_FIELDS)]
        self.rule_set = RuleSet(self.rules)
        self.position = {id(rule): index for index, rule in enumerate(self.rules)}
        self.triage = LineTriage.of_rules(self.rules) if combined else None
        self._alone: dict[int, LineTriage] = {}
        self.matched = self.kept = self.ruled_out = 0

    def alone(self, index: int) -> LineTriage:
        if index not in self._alone:
            triage = LineTriage.of_rules([self.rules[index]])
            assert triage is not None
            self._alone[index] = triage
        return self._alone[index]

    def check(self, line: bytes, target: int | None = None) -> None:
        """Every rule matching an event of ``line`` keeps it, alone and with the others; counts the verdicts of
        the triage of them all, or of ``target``'s own triage (the rule the line was written for)."""
        matching = {self.position[id(rule)] for _, event in events_of(line) for rule in self.rule_set.matching(event)}
        for index in matching:
            self.matched += 1
            assert self.alone(index).may_match(line), (self.rules[index].name, line)
        if self.triage is not None:
            judge = self.triage
            assert judge.may_match(line) or not matching, line
        elif target is not None:
            judge = self.alone(target)
        else:
            return
        if judge.may_match(line):
            self.kept += 1
        else:
            self.ruled_out += 1


@functools.cache
def bundled_reference() -> Reference:
    return Reference(bundled())


@functools.cache
def sigma_reference() -> Reference:
    return Reference(sigma_process_creation(), combined=False)


# ------------------------------------------------------------------------------------------------------------
# Documents written for the rules


def literal_text(node: Equals | Wildcard, rng: random.Random) -> str | None:
    """A value that tends to satisfy ``node``: one of its literals, wildcards filled in."""
    if isinstance(node, Equals):
        values = [value for value in node.values if isinstance(value, str)]
        return rng.choice(values) if values else None
    pattern = rng.choice(node.patterns)
    out: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            out.append(rng.choice(["", "x", "C:\\Windows\\", rng.choice(NASTY)]))
        elif char == "?":
            out.append(rng.choice('aZ9\\"é'))
        else:
            out.append(char)
    return "".join(out)


def recase(text: str, rng: random.Random) -> str:
    """``text`` with random letters up- or down-cased, and now and then a k or i as the Kelvin sign or İ."""
    out = []
    for char in text:
        roll = rng.random()
        if char in "kK" and roll < 0.05:
            out.append("\u212a")
        elif char in "iI" and roll < 0.05:
            out.append("\u0130")
        elif roll < 0.3:
            out.append(char.swapcase())
        else:
            out.append(char)
    return "".join(out)


def field_values(node: Node, rng: random.Random, into: dict[str, Any]) -> None:
    """Values for the fields of ``node`` that tend to make it true (one branch of each Or, none under a Not)."""
    if isinstance(node, And):
        for child in node.children:
            field_values(child, rng, into)
    elif isinstance(node, Or) and node.children:
        field_values(rng.choice(node.children), rng, into)
    elif isinstance(node, Equals | Wildcard):
        text = literal_text(node, rng)
        if text is not None:
            into[node.field] = recase(text, rng) if rng.random() < 0.5 else text


def place(document: dict[str, Any], field: str, value: Any, rng: random.Random) -> None:
    """Put ``value`` at ``field``: nested, dotted, or half and half."""
    parts = field.split(".")
    cut = rng.randrange(len(parts)) if rng.random() < 0.4 else len(parts) - 1
    node = document
    for part in parts[:cut]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[".".join(parts[cut:])] = value


MARKS = [
    ("winlog", {"event_data": {"Image": "C:\\x.exe"}}),
    ("event_simpleName", "ProcessRollup2"),
    ("aid", "a1"),
    ("Event", {"System": {"EventID": 1}}),
    ("EventID", 4688),
    ("SourceName", "Microsoft-Windows-Security-Auditing"),
    ("records", []),
    ("endgame", {"pid": 1}),
    ("DeviceName", "host"),
]


def document_for(rule: Rule, rng: random.Random) -> dict[str, Any]:
    """An ECS document written to make ``rule`` match, or nearly (a value left out): its values, odd shapes around
    them."""
    wanted: dict[str, Any] = {}
    field_values(rule.ir, rng, wanted)
    if wanted and rng.random() < 0.4:
        del wanted[rng.choice(sorted(wanted))]  # a near miss
    document: dict[str, Any] = {"@timestamp": "2024-06-01T00:00:00Z"}
    if rng.random() < 0.5:
        document["agent"] = {"type": "endpoint"}
    for field, value in wanted.items():
        if field in ("process.name", "process.parent.name") and rng.random() < 0.3:
            # Left for the normalizer to complete from the executable.
            place(document, field.rsplit(".", 1)[0] + ".executable", "C:\\Program Files\\" + value, rng)
            continue
        roll = rng.random()
        if roll < 0.15:
            value = [None, 7, value]
        elif roll < 0.25:
            value = rng.choice(NASTY) + value + rng.choice(NASTY)
        place(document, field, value, rng)
    if rng.random() < 0.3:
        place(document, "process.pid", rng.choice(["4242", 4242, None, "0x1092"]), rng)
    if rng.random() < 0.15:
        key, value = rng.choice(MARKS)
        document[key] = value
    return document


def check_rules_documents(reference: Reference, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    for _ in range(rounds):
        target = rng.randrange(len(reference.rules))
        for line in styles(document_for(reference.rules[target], rng)):
            reference.check(line, target)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_lines_some_bundled_rule_matches_are_kept(seed: int) -> None:
    check_rules_documents(bundled_reference(), seed, 12)


def test_documents_for_the_bundled_rules_exercise_both_verdicts() -> None:
    """The generated documents are not vacuous: many match, and the triage rules out many that do not."""
    reference = Reference(bundled())
    check_rules_documents(reference, 5, 400)
    assert reference.matched > 150
    assert reference.ruled_out > 150


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_lines_some_sigma_process_creation_rule_matches_are_kept(seed: int) -> None:
    check_rules_documents(sigma_reference(), seed, 8)


def test_sigma_documents_exercise_both_verdicts() -> None:
    reference = sigma_reference()
    before = reference.matched, reference.ruled_out
    check_rules_documents(reference, 11, 300)
    assert reference.matched - before[0] > 100
    assert reference.ruled_out - before[1] > 100
    assert len(reference.rules) > 1_000


# ------------------------------------------------------------------------------------------------------------
# Real documents: the fixtures and ../shared


def sample_files() -> Iterator[Path]:
    yield from sorted(path for path in FIXTURES.rglob("*") if path.suffix in (".ndjson", ".json", ".log"))
    corpus = SHARED / "corpus"
    for name in ("elastic-endpoint-package", "elastic-integrations", "endgame-eql", "otrf-security-datasets"):
        folder = corpus / name
        if folder.exists():
            yield from sorted(p for p in folder.rglob("*") if p.suffix in (".ndjson", ".json", ".log", ".zip"))
    regression = corpus / "sigma" / "regression_data"
    if regression.exists():  # raw Windows events as evtx_dump renders them
        yield from sorted(regression.rglob("*.json"))[:40]


@functools.cache
def sample_lines() -> tuple[tuple[str, bytes], ...]:
    """(file, line) for every line of the samples that holds one object, and their objects re-written (the first
    :data:`RECORDS_PER_SAMPLE` of each file)."""
    lines: list[tuple[str, bytes]] = []
    for path in sample_files():
        if path.suffix != ".zip":
            for raw in path.read_bytes().splitlines():
                stripped = raw.strip()
                if stripped.startswith(b"{") and stripped.endswith(b"}"):
                    lines.append((path.name, stripped))
        records = read_paths([str(path)], on_problem=lambda _problem: None)
        for record in itertools.islice(records, RECORDS_PER_SAMPLE):
            lines.extend((path.name, line) for line in styles(record.data))
    return tuple(lines)


def test_real_documents_some_rule_matches_are_kept() -> None:
    lines = sample_lines()
    assert len(lines) > 100
    reference = Reference(bundled())
    for _, line in lines:
        reference.check(line)
    assert reference.matched > 5


def test_real_documents_some_sigma_rule_matches_are_kept() -> None:
    lines = sample_lines()
    reference = sigma_reference()
    before = reference.matched
    for _, line in lines:
        reference.check(line)
    assert reference.matched - before > 5


def test_mapped_families_never_pass_through() -> None:
    """Every object the normalizer maps (Winlogbeat, Agent Windows logs, vendors, OTRF, raw Windows events) is
    caught by a family mark, however it is written; the ECS documents of the fixtures pass through."""
    families: dict[str, int] = {}
    for name, line in sample_lines():
        for family, _ in events_of(line):
            families[family] = families.get(family, 0) + 1
            if family not in PASSED_THROUGH_FAMILIES:
                assert not passes_through(line), (name, family, line[:200])
    mapped = set(families) - PASSED_THROUGH_FAMILIES
    fixture_families = {"winlogbeat", "elastic_agent", "crowdstrike_fdr", "m365_defender", "sentinel_one_cloud_funnel"}
    assert fixture_families | {"endgame"} <= mapped
    if SHARED.exists():
        assert {"otrf", "sysmon"} <= mapped
    defend_lines = (FIXTURES / "elastic_defend" / "elastic_defend-benign.ndjson").read_bytes().splitlines()
    assert sum(passes_through(line) for line in defend_lines) >= len(defend_lines) // 2


# ------------------------------------------------------------------------------------------------------------
# The parts


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(["a", "U", "u", "/", "\\", '"', "é", "\x01", "0"]), max_size=12))
def test_has_escape_finds_exactly_the_u_and_slash_escapes(text: str) -> None:
    plain = json.dumps({"k": text}, ensure_ascii=False).encode()
    assert has_escape(plain) == ("\\u" in plain.decode().replace("\\\\", "\x00"))
    assert has_escape(json.dumps({"k": text}).encode()) == (not text.isascii() or "\x01" in text)
    if "/" in text:
        assert has_escape(plain.replace(b"/", b"\\/"))


def test_escape_check_reads_backslash_runs_as_json_does() -> None:
    assert not has_escape(rb'{"p":"C:\\users\\x"}')
    assert has_escape(rb'{"p":"C:\\\u0055sers"}')
    assert not has_escape(rb'{"p":"\\\\u"}')
    assert has_escape(rb'{"p":"a\/b"}')


def test_pieces_are_looked_for_as_json_writes_them() -> None:
    assert escaped_piece('a"b\\c') == b'a\\"b\\\\c'
    for text in ['say "hi"', "C:\\Windows\\", "plain"]:
        assert escaped_piece(text) in orjson.dumps({"k": "x" + text + "y"})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"a":"\u212a"}', "the Kelvin sign lowers to k"),
        ('{"a":"\u0130"}', "dotted capital I lowers to i and a combining dot"),
        ('{"records":[{"process":{}}]}', "a batch of records"),
        ('{ \t"records" : []}', "a batch of records, spaced"),
        ('{"winlog":{}}', "a Windows event log document"),
        ('{"agent":{"type":"winlogbeat"}}', "a Winlogbeat document"),
        ('{"event_simpleName":"ProcessRollup2","aid":"1"}', "CrowdStrike"),
        ('{"Event":{"System":{}}}', "a raw Windows event"),
        ('{"EventID":1,"Channel":"x"}', "an OTRF record"),
        ('{"meta.event.name":"x"}', "SentinelOne"),
        ('{"category":"AdvancedHunting-DeviceProcessEvents"}', "Microsoft 365 Defender"),
        ('{"DeviceName":"h"}', "Microsoft 365 Defender export"),
        ('{"event":{"module":"endgame"}}', "Endgame"),
        ('{"a":"\\u0041"}', "an escape"),
    ],
)
def test_lines_that_never_pass_through(line: str, reason: str) -> None:
    assert not passes_through(line.encode()), reason


def test_invalid_utf8_never_passes_through() -> None:
    assert not passes_through(b'{"a":"\xff"}')
    assert passes_through('{"a":"é"}'.encode())


def test_rules_requiring_no_piece_keep_every_line() -> None:
    assert LineTriage.of_rules([eql_rule("any where process.pid > 4", 9)]) is None
    assert LineTriage.of_rules([*bundled(), eql_rule("any where true", 10)]) is None
    assert line_triage(RuleSet(bundled()), source="crowdstrike_fdr") is None
    assert line_triage(RuleSet(bundled()), source=ELASTIC_DEFEND) is not None
    many = [eql_rule(f'process where process.name == "tool{n}.exe" and user.name == "u{n}"', n) for n in range(99)]
    assert line_triage(RuleSet(many)) is None  # a screen of 99 searches a line costs more than decoding


def test_screens_move_to_the_groups_that_rule_lines_out() -> None:
    """The web shell rule's first group is event.category "process", which every process event holds; after a few
    lines the parent names screen it instead, and the verdicts stay the same."""
    triage = LineTriage.of_rules(load_bundled_rules().rules)
    assert triage is not None
    line = orjson.dumps(
        {"event": {"category": ["process"]}, "host": {"os": {"type": "windows"}}, "process": {"name": "cmd.exe"}}
    )
    assert any(b"process" in piece for piece in triage.screen)
    verdicts = {triage.may_match(line) for _ in range(40)}
    assert verdicts == {False}
    assert not any(b"process" in piece for piece in triage.screen)
    assert b"w3wp.exe" in triage.screen


def test_claims_are_counted_and_released() -> None:
    triage = LineTriage.of_rules(load_bundled_rules().rules)
    assert triage is not None
    benign = orjson.dumps({"process": {"name": "cmd.exe", "parent": {"name": "explorer.exe"}}})
    shell = orjson.dumps(
        {
            "event": {"category": "process"},
            "host": {"os": {"type": "windows"}},
            "process": {"name": "cmd.exe", "parent": {"name": "w3wp.exe"}},
        }
    )
    assert triage.claim(benign)
    assert not triage.claim(shell)
    assert triage.ruled_out_by_family == {RULED_OUT_FAMILY: 1}
    triage.release(benign)
    assert triage.ruled_out_by_family == {RULED_OUT_FAMILY: 0}


def test_the_reader_skips_claimed_lines_and_keeps_the_rest() -> None:
    triage = LineTriage.of_rules(load_bundled_rules().rules)
    assert triage is not None
    shell = {
        "event": {"category": "process"},
        "host": {"os": {"type": "windows"}},
        "process": {"name": "cmd.exe", "parent": {"executable": "C:\\inetpub\\w3wp.exe"}},
    }
    benign = {"process": {"name": "cmd.exe"}}
    text = b"\n".join([orjson.dumps(benign)] * 3 + [orjson.dumps(shell), orjson.dumps(benign)]) + b"\n"
    problems: list[object] = []
    records: list[RawRecord] = list(read_json(io.BytesIO(text), "t", problems.append, line_filter=triage))
    assert [(record.origin.line, record.data) for record in records] == [(4, shell)]
    assert triage.ruled_out_by_family == {RULED_OUT_FAMILY: 4}
    assert problems == []
