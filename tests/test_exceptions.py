"""Exception lists applied the way Kibana's detection engine applies them.

The reference is Kibana's filter builder, which turns a rule's exception items into a negated Elasticsearch
filter: elastic/kibana x-pack/plugins/lists/server/services/exception_lists/build_exception_filter.ts
(``buildMatchClause`` -> ``terms``, ``buildMatchWildcardClause`` -> ``wildcard`` without ``case_insensitive``,
``buildExistsClause`` -> ``exists``, ``buildListClause`` -> ``terms`` / ``range`` for ip_range, ``excluded`` ->
``must_not``, ``buildNestedClause`` -> ``nested``, ``transformOsType`` -> host.os.type OR host.os.name.caseless),
and Elastic's "Add and manage exceptions" page
(https://www.elastic.co/guide/en/security/current/add-exceptions.html).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sigma.rule import SigmaRule

from conftest import shared_path
from shellwatch.alerts.exceptions import (
    ExceptionEntryError,
    ExceptionListError,
    ExceptionLists,
    compile_entry,
    nested_objects,
    read_value_list,
)
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.ir import Const
from shellwatch.query.sigma import sigma_rule_to_ir
from shellwatch.rules.loader import load_rule_file
from shellwatch.rules.model import Rule, RuleSource

FIXTURES = Path(__file__).parent / "fixtures" / "exceptions"

WEB_SHELL_RULE = Rule(
    rule_id="2917d495-59bd-4250-b395-c29409b76086",
    name="Web Shell Detection: Script Process Child of Common Web Processes",
    description="web server spawning a shell",
    type="eql",
    language="eql",
    query="process where true",
    ir=Const(True),
    source=RuleSource(path="seed.toml"),
    severity="high",
    risk_score=73,
    exceptions_list=(
        {
            "id": "5c1f3a40-0871-11ef-9f8e-3f2b6a1d0c11",
            "list_id": "web-shell-tuning",
            "namespace_type": "single",
            "type": "detection",
        },
    ),
)


def _rule(**changes: Any) -> Rule:
    fields = {name: getattr(WEB_SHELL_RULE, name) for name in WEB_SHELL_RULE.__dataclass_fields__}
    return Rule(**{**fields, **changes})


def _holds(entry: dict[str, Any], event: dict[str, Any]) -> bool:
    return compile_entry(entry).test(event)


def _w3wp_child(name: str, pool: str, *, os_type: str | None = "windows") -> dict[str, Any]:
    event: dict[str, Any] = {
        "event.category": ["process"],
        "process.name": name,
        "process.parent.name": "w3wp.exe",
        "process.parent.command_line": (
            rf'c:\windows\system32\inetsrv\w3wp.exe -ap "{pool}" -v "v4.0" -l "webengine4.dll" -a \\.\pipe\iisipm'
        ),
        "process.parent.args": [r"c:\windows\system32\inetsrv\w3wp.exe", "-ap", pool, "-v", "v4.0"],
    }
    if os_type is not None:
        event["host.os.type"] = os_type
    return event


# ------------------------------------------------------------------------------------------------------------
# Seed 002: a legitimate whoami under one IIS application pool


def test_seed_002_whoami_under_one_app_pool_is_silenced_other_pools_still_alert() -> None:
    """Seed 002's false positive ("some sites run whoami from web apps legitimately") tuned by an exception
    whose entries are ANDed; Kibana's add-exceptions docs: "an event matching the item does not create an alert".
    https://www.elastic.co/guide/en/security/current/add-exceptions.html"""
    lists = ExceptionLists.load([FIXTURES / "iis_app_pool.ndjson"])
    exceptions = lists.for_rule(WEB_SHELL_RULE)

    assert exceptions.excludes(_w3wp_child("whoami.exe", "MyAppPool"))
    assert not exceptions.excludes(_w3wp_child("whoami.exe", "DefaultAppPool"))
    assert not exceptions.excludes(_w3wp_child("whoami.exe", "MyAppPool2"))
    assert not exceptions.excludes(_w3wp_child("cmd.exe", "MyAppPool"))
    # 4688 events carry no parent command line: the wildcard entry cannot hold, so they still alert.
    no_command_line = _w3wp_child("whoami.exe", "MyAppPool")
    del no_command_line["process.parent.command_line"]
    assert not exceptions.excludes(no_command_line)
    # The item is limited to Windows hosts.
    assert not exceptions.excludes(_w3wp_child("whoami.exe", "MyAppPool", os_type="linux"))
    assert exceptions.fields == {
        "process.name",
        "process.parent.name",
        "process.parent.command_line",
        "host.os.type",
        "host.os.name",
    }


def test_seed_002_with_process_parent_args_any_of() -> None:
    """``match`` on a multi-valued field is a ``terms`` query: it holds when any value is equal
    (build_exception_filter.ts ``buildMatchClause``), so process.parent.args names the pool as one argument."""
    item = [
        {"field": "process.name", "operator": "included", "type": "match", "value": "whoami.exe"},
        {"field": "process.parent.name", "operator": "included", "type": "match", "value": "w3wp.exe"},
        {"field": "process.parent.args", "operator": "included", "type": "match", "value": "MyAppPool"},
    ]
    entries = [compile_entry(e) for e in item]
    assert all(e.test(_w3wp_child("whoami.exe", "MyAppPool")) for e in entries)
    assert not all(e.test(_w3wp_child("whoami.exe", "OtherPool")) for e in entries)


# ------------------------------------------------------------------------------------------------------------
# Operators and their negations


def test_match_is_exact_and_case_sensitive_and_is_not_holds_on_missing_field() -> None:
    """ "is" is a ``terms`` query (exact; keyword fields are case-sensitive: Kibana docs, "Rule exceptions are
    case-sensitive"); "is not" is ``must_not`` of it, true for an event without the field."""
    is_ = {"field": "process.name", "operator": "included", "type": "match", "value": "whoami.exe"}
    is_not = {**is_, "operator": "excluded"}
    assert _holds(is_, {"process.name": "whoami.exe"})
    assert not _holds(is_, {"process.name": "WHOAMI.EXE"})
    assert not _holds(is_, {"process.name": "whoami.exe.bak"})
    assert not _holds(is_, {})
    assert _holds(is_not, {"process.name": "WHOAMI.EXE"})
    assert not _holds(is_not, {"process.name": "whoami.exe"})
    assert _holds(is_not, {})
    assert _holds(is_not, {"process.name": None})


def test_match_on_multi_valued_field_is_any_and_is_not_is_none() -> None:
    """``terms`` matches a document when any value of the field is a term; ``must_not`` when none is."""
    is_ = {"field": "process.args", "operator": "included", "type": "match", "value": "-enc"}
    is_not = {**is_, "operator": "excluded"}
    assert _holds(is_, {"process.args": ["powershell.exe", "-enc", "AAAA"]})
    assert not _holds(is_not, {"process.args": ["powershell.exe", "-enc", "AAAA"]})
    assert _holds(is_not, {"process.args": ["powershell.exe", "-File", "x.ps1"]})
    assert _holds(is_not, {"process.args": []})


def test_match_on_numbers_booleans_and_ip_fields() -> None:
    """A ``terms`` value is a string that the field's type parses: "4688" equals a numeric 4688, "true" a
    boolean, and a CIDR block matches the addresses of an ``ip`` field (ES terms query on ip fields)."""
    assert _holds(
        {"field": "event.code", "operator": "included", "type": "match", "value": "4688"}, {"event.code": 4688}
    )
    assert _holds(
        {"field": "event.code", "operator": "included", "type": "match", "value": "4688"}, {"event.code": "4688"}
    )
    trusted = {"field": "process.code_signature.trusted", "operator": "included", "type": "match", "value": "true"}
    assert _holds(trusted, {"process.code_signature.trusted": True})
    assert not _holds(trusted, {"process.code_signature.trusted": False})
    cidr = {"field": "source.ip", "operator": "included", "type": "match", "value": "10.1.0.0/16"}
    assert _holds(cidr, {"source.ip": "10.1.2.3"})
    assert not _holds(cidr, {"source.ip": "10.2.0.1"})
    # CIDR applies only to ip fields: on a keyword field the text must be equal.
    assert not _holds({**cidr, "field": "url.path"}, {"url.path": "10.1.2.3"})


def test_match_any_and_is_not_one_of() -> None:
    """ "is one of" / "is not one of": ``terms`` with several values, negated by ``must_not``."""
    one_of = {
        "field": "process.name",
        "operator": "included",
        "type": "match_any",
        "value": ["whoami.exe", "ipconfig.exe"],
    }
    not_one_of = {**one_of, "operator": "excluded"}
    assert _holds(one_of, {"process.name": "ipconfig.exe"})
    assert not _holds(one_of, {"process.name": "IPCONFIG.EXE"})
    assert not _holds(one_of, {"process.name": "cmd.exe"})
    assert _holds(not_one_of, {"process.name": "cmd.exe"})
    assert not _holds(not_one_of, {"process.name": "whoami.exe"})
    assert _holds(not_one_of, {})


def test_exists_and_does_not_exist() -> None:
    """ "exists" is an ``exists`` query (null and [] are missing in Elasticsearch); "does not exist" negates it."""
    exists = {"field": "process.parent.command_line", "operator": "included", "type": "exists"}
    missing = {**exists, "operator": "excluded"}
    assert _holds(exists, {"process.parent.command_line": ""})
    assert not _holds(exists, {"process.parent.command_line": None})
    assert not _holds(exists, {"process.parent.command_line": []})
    assert not _holds(exists, {})
    assert _holds(missing, {})
    assert not _holds(missing, {"process.parent.command_line": "x"})


def test_wildcard_matches_is_case_sensitive_anchored_lucene_syntax() -> None:
    """ "matches" is a ``wildcard`` query without ``case_insensitive`` (``buildMatchWildcardClause``): case
    depends on the field, and keyword/wildcard fields are case-sensitive; ``?`` is one character, ``*`` any run,
    backslash escapes (docs: "\\\\ for a literal backslash, \\* for an asterisk")."""
    entry = {
        "field": "process.executable",
        "operator": "included",
        "type": "wildcard",
        "value": "C:\\\\Windows\\\\*\\\\whoami.exe",
    }
    assert _holds(entry, {"process.executable": r"C:\Windows\System32\whoami.exe"})
    assert not _holds(entry, {"process.executable": r"c:\windows\system32\whoami.exe"})
    assert not _holds(entry, {"process.executable": r"C:\Windows\System32\whoami.exe.bak"})
    one = {"field": "process.name", "operator": "included", "type": "wildcard", "value": "net?.exe"}
    assert _holds(one, {"process.name": "net1.exe"})
    assert not _holds(one, {"process.name": "net.exe"})
    literal_star = {"field": "file.name", "operator": "included", "type": "wildcard", "value": "a\\*b"}
    assert _holds(literal_star, {"file.name": "a*b"})
    assert not _holds(literal_star, {"file.name": "axxb"})
    does_not_match = {**one, "operator": "excluded"}
    assert _holds(does_not_match, {"process.name": "net.exe"})
    assert _holds(does_not_match, {})
    assert not _holds(does_not_match, {"process.name": ["cmd.exe", "net1.exe"]})


def test_caseless_fields_compare_case_insensitively() -> None:
    """Elastic Endpoint's ``*.caseless`` multi-fields use a lower-case normalizer, which Elasticsearch applies to
    term and wildcard queries too; Kibana docs: "some ECS fields have a .caseless version" for case-insensitive
    exceptions. The multi-field reads the base field's values."""
    match = {"field": "file.path.caseless", "operator": "included", "type": "match", "value": "C:\\Temp\\A.EXE"}
    assert _holds(match, {"file.path": "c:\\temp\\a.exe"})
    wildcard = {
        "field": "process.executable.caseless",
        "operator": "included",
        "type": "wildcard",
        "value": "*\\WHOAMI.exe",
    }
    assert _holds(wildcard, {"process.executable": "C:\\Windows\\System32\\whoami.EXE"})


# ------------------------------------------------------------------------------------------------------------
# Value lists


def test_keyword_value_list_in_and_not_in(tmp_path: Path) -> None:
    """ "is in list" is a ``terms`` query over the list's values (``buildListClause``); Kibana imports a value
    list as one value per line. Keyword values are exact and case-sensitive."""
    lists_file = _write_items(
        tmp_path,
        [
            {
                "field": "host.name",
                "operator": "included",
                "type": "list",
                "list": {"id": "admin_hosts.txt", "type": "keyword"},
            }
        ],
        [
            {
                "field": "host.name",
                "operator": "excluded",
                "type": "list",
                "list": {"id": "admin_hosts.txt", "type": "keyword"},
            }
        ],
    )
    lists = ExceptionLists.load([lists_file], {"admin_hosts.txt": FIXTURES / "admin_hosts.txt"})
    in_list, not_in_list = lists.lists[0].items
    assert in_list.matches({"host.name": "build-03"})  # the CRLF line ending is not part of the value
    assert in_list.matches({"host.name": "BUILD-02"})
    assert not in_list.matches({"host.name": "build-02"})
    assert not in_list.matches({})
    assert not_in_list.matches({"host.name": "web-01"})
    assert not_in_list.matches({})
    assert not not_in_list.matches({"host.name": "build-01"})


def test_ip_range_value_list_cidr_and_dash_ranges() -> None:
    """ip_range lists: dash notation becomes ``range`` clauses, the rest ``terms`` (CIDR) on the ip field
    (``buildListClause`` / ``buildIpRangeClauses``)."""
    ranges = read_value_list("scanners", "ip_range", FIXTURES / "scanner_ranges.txt")
    entry = compile_entry(
        {"field": "source.ip", "operator": "included", "type": "list", "list": {"id": "scanners", "type": "ip_range"}},
        {"scanners": ranges},
    )
    assert entry.test({"source.ip": "10.20.99.1"})
    assert entry.test({"source.ip": "192.168.1.15"})
    assert entry.test({"source.ip": "192.168.1.20"})
    assert not entry.test({"source.ip": "192.168.1.21"})
    assert entry.test({"source.ip": "2001:db8::1"})
    assert not entry.test({"source.ip": "10.21.0.1"})
    assert not entry.test({"source.ip": "not an address"})


def test_bad_value_list_names_file_and_line() -> None:
    """An ip list whose line is not an address is refused with the file and line."""
    with pytest.raises(ExceptionEntryError, match=r"bad_ips\.txt:2: 'not-an-ip' is not a valid ip"):
        read_value_list("bad", "ip", FIXTURES / "bad_ips.txt")
    with pytest.raises(ExceptionEntryError, match="type 'text'"):
        read_value_list("bad", "text", FIXTURES / "admin_hosts.txt")


# ------------------------------------------------------------------------------------------------------------
# Nested entries and os_types


def test_nested_entries_must_hold_on_the_same_object() -> None:
    """A ``nested`` entry is a ``nested`` query: all its entries on one object of the array
    (``buildNestedClause``), unlike flattened object arrays where values of different objects mix."""
    entry = compile_entry(
        {
            "field": "file.Ext.code_signature",
            "type": "nested",
            "entries": [
                {"field": "subject_name", "operator": "included", "type": "match", "value": "Contoso Ltd"},
                {"field": "trusted", "operator": "included", "type": "match", "value": "true"},
            ],
        }
    )
    same_object = {
        "file.Ext.code_signature.subject_name": ["Evil Inc", "Contoso Ltd"],
        "file.Ext.code_signature.trusted": [False, True],
    }
    crossed = {
        "file.Ext.code_signature.subject_name": ["Evil Inc", "Contoso Ltd"],
        "file.Ext.code_signature.trusted": [True, False],
    }
    single = {"file.Ext.code_signature.subject_name": "Contoso Ltd", "file.Ext.code_signature.trusted": True}
    kept_array = {"file.Ext.code_signature": [{"subject_name": "Contoso Ltd", "trusted": True}]}
    assert entry.test(same_object)
    assert not entry.test(crossed)
    assert entry.test(single)
    assert entry.test(kept_array)
    assert not entry.test({})


def test_nested_objects_refuse_to_guess_when_leaf_lengths_differ() -> None:
    """Flattened leaves of unequal length cannot be paired back into objects; no object is assumed."""
    event = {"a.b": ["x", "y"], "a.c": ["z"]}
    assert nested_objects(event, "a") == []
    assert nested_objects({"a.b": ["x", "y"], "a.c": [1, 2]}, "a") == [{"b": "x", "c": 1}, {"b": "y", "c": 2}]


def test_nested_entries_accept_only_match_match_any_exists() -> None:
    """Kibana's schema allows match, match_any and exists inside a nested entry (``nestedEntryItem``)."""
    with pytest.raises(ExceptionEntryError, match="inside nested"):
        compile_entry(
            {
                "field": "a",
                "type": "nested",
                "entries": [{"field": "b", "operator": "included", "type": "wildcard", "value": "x*"}],
            }
        )


def test_os_types_limit_an_item_to_host_os_type_or_endpoint_caseless_name(tmp_path: Path) -> None:
    """``transformOsType``: an item with os_types holds only when host.os.type is one of them, or Endpoint's
    host.os.name.caseless is (Endpoint writes host.os.name "Windows")."""
    path = _write_items(
        tmp_path,
        [{"field": "process.name", "operator": "included", "type": "match", "value": "whoami.exe"}],
        os_types=["windows"],
    )
    item = ExceptionLists.load([path]).lists[0].items[0]
    assert item.matches({"process.name": "whoami.exe", "host.os.type": "windows"})
    assert item.matches({"process.name": "whoami.exe", "host.os.name": "Windows"})
    assert not item.matches({"process.name": "whoami.exe", "host.os.type": "linux"})
    assert not item.matches({"process.name": "whoami.exe"})
    assert not item.matches({"process.name": "cmd.exe", "host.os.type": "windows"})


# ------------------------------------------------------------------------------------------------------------
# Items, lists, rules


def test_items_are_ored_entries_anded_and_lists_resolved_from_rule_and_attachment(tmp_path: Path) -> None:
    """Entries of an item are ANDed (``bool.filter``), items and lists ORed (``bool.should``); a rule applies
    the lists its exceptions_list references, and lists the user attaches to it by rule id, name or ``*``."""
    shared = _write_items(
        tmp_path,
        [
            {"field": "process.name", "operator": "included", "type": "match", "value": "a.exe"},
            {"field": "user.name", "operator": "included", "type": "match", "value": "svc"},
        ],
        [{"field": "process.name", "operator": "included", "type": "match", "value": "b.exe"}],
        list_id="shared-tuning",
    )
    lists = ExceptionLists.load(
        [FIXTURES / "iis_app_pool.ndjson", shared], attach={WEB_SHELL_RULE.name: ["shared-tuning"]}
    )
    exceptions = lists.for_rule(WEB_SHELL_RULE)
    assert [exception_list.list_id for exception_list in exceptions.lists] == ["web-shell-tuning", "shared-tuning"]
    assert exceptions.excludes({"process.name": "a.exe", "user.name": "svc"})
    assert not exceptions.excludes({"process.name": "a.exe", "user.name": "bob"})
    assert exceptions.excludes({"process.name": "b.exe"})
    assert exceptions.excludes(_w3wp_child("whoami.exe", "MyAppPool"))
    other = lists.for_rule(_rule(rule_id="other", name="Other", exceptions_list=()))
    assert not other.excludes({"process.name": "b.exe"})
    assert other.describe() == ["no exceptions"]
    everyone = ExceptionLists.load([shared], attach={"*": ["shared-tuning"]}).for_rule(_rule(rule_id="x", name="X"))
    assert everyone.excludes({"process.name": "b.exe"})


def test_unloaded_reference_and_expired_items_are_reported_not_applied(tmp_path: Path) -> None:
    """A referenced list that was not loaded silences nothing; an item past its ``expire_time`` is no longer
    applied (Kibana exception TTL, "expire_time" of the exception items API)."""
    path = _write_items(
        tmp_path,
        [{"field": "process.name", "operator": "included", "type": "match", "value": "old.exe"}],
        expire_time="2024-01-01T00:00:00.000Z",
        list_id="web-shell-tuning",
    )
    rule = _rule(
        exceptions_list=(
            *WEB_SHELL_RULE.exceptions_list,
            {"id": "endpoint_list", "list_id": "endpoint_list", "namespace_type": "agnostic", "type": "endpoint"},
        )
    )
    before = ExceptionLists.load([path]).for_rule(rule, at=datetime(2023, 12, 1, tzinfo=UTC))
    after = ExceptionLists.load([path]).for_rule(rule, at=datetime(2024, 2, 1, tzinfo=UTC))
    assert before.excludes({"process.name": "old.exe"})
    assert not after.excludes({"process.name": "old.exe"})
    text = "\n".join(after.describe())
    assert "expired" in text
    assert "endpoint_list [endpoint, agnostic]: referenced by the rule but not loaded" in text


def test_describe_lists_each_item_condition() -> None:
    """``rules show`` lines: the list, then each item's entries in the words of Kibana's exception builder."""
    lines = ExceptionLists.load([FIXTURES / "iis_app_pool.ndjson"]).for_rule(WEB_SHELL_RULE).describe()
    assert lines[0].startswith("1 exception item(s) in 1 list(s)")
    assert "web-shell-tuning, detection, single" in lines[1]
    assert lines[2] == (
        '  item "whoami under the MyAppPool application pool" (whoami-under-myapppool): [os: windows]'
        ' process.name is "whoami.exe" AND process.parent.name is "w3wp.exe"'
        ' AND process.parent.command_line matches "*-ap \\"MyAppPool\\"*"'
    )


def test_endpoint_artifact_lists_are_not_applied_by_rules(tmp_path: Path) -> None:
    """Trusted applications and event filters are enforced by Elastic Defend, not by detection rules."""
    path = _write_items(
        tmp_path,
        [{"field": "process.name", "operator": "included", "type": "match", "value": "a.exe"}],
        list_id="endpoint_trusted_apps",
        list_type="endpoint_trusted_apps",
    )
    exceptions = ExceptionLists.load([path], attach={"*": ["endpoint_trusted_apps"]}).for_rule(WEB_SHELL_RULE)
    assert not exceptions.excludes({"process.name": "a.exe"})
    assert any("ignored" in line for line in exceptions.describe())


# ------------------------------------------------------------------------------------------------------------
# Bad input


def test_bad_file_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    """Bad input gives clear messages naming the file and line, all at once, never a traceback."""
    with pytest.raises(ExceptionListError) as raised:
        ExceptionLists.load([FIXTURES / "broken.ndjson", tmp_path / "absent.ndjson"])
    problems = raised.value.problems
    assert any(p.startswith(f"{FIXTURES / 'broken.ndjson'}:3: not JSON") for p in problems)
    assert any(":4: entry on process.name: operator 'equals'" in p for p in problems)
    assert any(":5: a line must hold a JSON object" in p for p in problems)
    assert any(":6: item 'orphan' belongs to list 'nowhere'" in p for p in problems)
    assert any("absent.ndjson: cannot read" in p for p in problems)
    assert len(problems) == 5


def test_missing_value_list_and_unknown_attachment_are_errors(tmp_path: Path) -> None:
    """A list entry needs its value list file; attaching a list no file defines is a mistake worth naming."""
    path = _write_items(
        tmp_path,
        [{"field": "host.name", "operator": "included", "type": "list", "list": {"id": "hosts", "type": "keyword"}}],
    )
    with pytest.raises(ExceptionListError, match="value list 'hosts' was not given"):
        ExceptionLists.load([path])
    with pytest.raises(ExceptionListError, match="no file given defines list 'nope'"):
        ExceptionLists.load([FIXTURES / "iis_app_pool.ndjson"], attach={"x": ["nope"]})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"field": "a", "operator": "included", "type": "regex", "value": "x"}, "entry type 'regex'"),
        ({"field": "", "operator": "included", "type": "match", "value": "x"}, "non-empty string 'field'"),
        ({"field": "a", "operator": "included", "type": "match", "value": ""}, "non-empty string 'value'"),
        ({"field": "a", "operator": "included", "type": "match_any", "value": []}, "non-empty list"),
        ({"field": "a", "operator": "included", "type": "list", "list": "x"}, "needs 'list'"),
        ({"field": "a", "type": "nested", "entries": []}, "non-empty 'entries'"),
        ("not an object", "must be an object"),
    ],
)
def test_invalid_entries_are_refused(entry: Any, message: str) -> None:
    """Kibana's entry schema (``@kbn/securitysolution-io-ts-list-types``): typed entries, non-empty values."""
    with pytest.raises(ExceptionEntryError, match=message):
        compile_entry(entry)


def test_overlong_line_is_reported_and_the_rest_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory per record is bounded: a line longer than the limit is named and skipped, later lines still read."""
    import shellwatch.alerts.exceptions as module

    monkeypatch.setattr(module, "MAX_LINE_BYTES", 200)
    path = tmp_path / "long.ndjson"
    good = orjson.dumps({"list_id": "l", "type": "detection", "namespace_type": "single"}).decode()
    path.write_text('{"x": "' + "a" * 500 + '"}\n' + good + "\n" + '{"list_id": 5}\n')
    with pytest.raises(ExceptionListError) as raised:
        ExceptionLists.load([path])
    assert raised.value.problems == (
        f"{path}:1: line longer than 200 bytes",
        f"{path}:3: entry needs a non-empty string 'list_id', found 5",
    )


# ------------------------------------------------------------------------------------------------------------


def _write_items(
    folder: Path,
    *items_entries: list[dict[str, Any]],
    list_id: str = "tuning",
    list_type: str = "detection",
    os_types: list[str] | None = None,
    expire_time: str | None = None,
) -> Path:
    """A small export: one list and one item per entries list, then Kibana's export summary."""
    lines: list[dict[str, Any]] = [{"list_id": list_id, "type": list_type, "name": list_id, "namespace_type": "single"}]
    for number, entries in enumerate(items_entries):
        item: dict[str, Any] = {
            "list_id": list_id,
            "item_id": f"{list_id}-{number}",
            "type": "simple",
            "namespace_type": "single",
            "entries": entries,
            "os_types": os_types or [],
        }
        if expire_time is not None:
            item["expire_time"] = expire_time
        lines.append(item)
    lines.append({"exported_exception_list_count": 1, "exported_exception_list_item_count": len(items_entries)})
    path = folder / f"{list_id}.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return path


def test_seed_rule_toml_reference_resolves_against_loaded_lists(tmp_path: Path) -> None:
    """The seed EQL rule as Elastic ships it, with a ``[[rule.exceptions_list]]`` reference added the way a
    rule's TOML carries one (id, list_id, namespace_type, type; elastic/detection-rules rule schema): the
    loaded rule resolves it to the list of the export."""
    seed = shared_path("reference", "elastic", "persistence_webshell_detection.eql-version.toml")
    rule_file = tmp_path / "seed.toml"
    rule_file.write_text(
        seed.read_text(encoding="utf-8")
        + '\n[[rule.exceptions_list]]\nid = "5c1f3a40-0871-11ef-9f8e-3f2b6a1d0c11"\nlist_id = "web-shell-tuning"\n'
        'namespace_type = "single"\ntype = "detection"\n',
        encoding="utf-8",
    )
    (outcome,) = load_rule_file(rule_file, cache=False)
    assert outcome.rule is not None, outcome.reason
    exceptions = ExceptionLists.load([FIXTURES / "iis_app_pool.ndjson"]).for_rule(outcome.rule)
    assert [exception_list.list_id for exception_list in exceptions.lists] == ["web-shell-tuning"]
    assert exceptions.missing == ()
    assert len(exceptions.items) == 1


def test_seed_002_sigma_rule_with_attached_list_alerts_on_every_pool_but_the_tuned_one() -> None:
    """Seed 002's Sigma rule, used as written, with the exceptions file attached to it by rule id: the rule
    matches whoami under every pool; after exceptions only the pools not named in the item alert."""
    text = shared_path("seeds", "002_34a43a8019901ab4.txt").read_text(encoding="utf-8")
    block = re.search(r"```yml\n(title:.*?)```", text, re.DOTALL)
    assert block is not None
    sigma_rule = SigmaRule.from_yaml(block.group(1))
    matches = compile_predicate(sigma_rule_to_ir(sigma_rule))
    rule = _rule(rule_id="seed-002", name=str(sigma_rule.title), exceptions_list=())
    exceptions = ExceptionLists.load([FIXTURES / "iis_app_pool.ndjson"], attach={"seed-002": ["web-shell-tuning"]})
    applied = exceptions.for_rule(rule)

    def process_start(pool: str) -> dict[str, Any]:
        event = _w3wp_child("whoami.exe", pool)
        event.update(
            {
                "event.type": ["start"],
                "process.executable": r"C:\Windows\System32\whoami.exe",
                "process.parent.executable": r"C:\Windows\System32\inetsrv\w3wp.exe",
            }
        )
        return event

    events = [process_start(pool) for pool in ("MyAppPool", "DefaultAppPool", "Payroll", "MyAppPool")]
    matched = [e for e in events if matches(e)]
    alerted = [e for e in matched if not applied.excludes(e)]
    assert len(matched) == 4
    assert [e["process.parent.args"][2] for e in alerted] == ["DefaultAppPool", "Payroll"]
