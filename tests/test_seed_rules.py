"""The two seed rules, loaded from the bundled pack, over ECS process events: every clause, both ways.

Rules (``src/shellwatch/rules/pack``):
- [eql] Elastic's "Web Shell Detection: Script Process Child of Common Web Processes" (seed 000; elastic/
  detection-rules ``rules/windows/persistence_webshell_detection.toml``, version 416)::

    process where host.os.type == "windows" and event.type == "start" and
      process.parent.name : ("w3wp.exe", "httpd.exe", "nginx.exe", "php.exe", "php-cgi.exe", "tomcat.exe") and
      process.name : ("cmd.exe", "cscript.exe", "powershell.exe", "pwsh.exe", "powershell_ise.exe", "wmic.exe",
                      "wscript.exe") and
      not (process.parent.name : ("php.exe", "httpd.exe") and process.name : "cmd.exe" and
           process.command_line : ("cmd.exe /c mode CON", "cmd.exe /s /c \\"mode CON\\"", "cmd.exe /c \\"mode\\"",
                                   "cmd.exe /s /c \\"tput colors 2>&1\\""))

- [sigma] the seed 002 Sigma rule "web服务产生的可疑进程": logsource windows / process_creation, ``ParentImage``
  ends with ``\\`` + one of w3wp, httpd, nginx, php-cgi, tomcat, sqlservr (.exe) and ``Image`` ends with ``\\`` +
  one of cmd, sh, bash, powershell, bitsadmin, cscript, wscript, net, net1, ping, whoami (.exe).

Semantics cited:
- [eql-syntax] https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-syntax.html: ``==`` is
  case-sensitive, ``:`` case-insensitive; a multi-valued field matches when any value does; ``process where``
  tests ``event.category``.
- [eql-null] shellwatch/query/eql.py (module docstring, "Null and missing fields"): Elasticsearch translates
  ``not (...)`` to ``must_not``, so a document *without* ``process.command_line`` is not excluded by the
  ``not (... process.command_line : (...))`` clause and the rule fires.
- [sigma-spec] Sigma specification v2 (SigmaHQ/sigma-specification, sigma-rules-specification.md): values
  compare case-insensitively; ``*`` is a wildcard and ``\\`` before an ordinary character is a literal backslash.
- [sigma-ecs] shellwatch/query/sigma_fields.py, after pySigma's ``ecs_windows`` pipeline
  (pysigma-backend-elasticsearch ``sigma/pipelines/elasticsearch/windows.py``): ``ParentImage`` ->
  ``process.parent.executable``, ``Image`` -> ``process.executable``; product windows -> ``host.os.type``
  "windows" and category process_creation -> ``event.category`` "process" and ``event.type`` "start"
  (Elastic's categorization of process starts), compared case-insensitively like every Sigma value.
- [4688-ecs] ../shared/reference/sources/MAPPING.md §1 and the beats golden pair
  windows_security_4688/beats_ingest_security-windows2019_4688_Process_Created.golden.json: how Elastic's
  system/security pipeline writes a 4688 event in ECS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from shellwatch.ecs import flatten
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.rules.model import Rule

EQL_RULE_ID = "2917d495-59bd-4250-b395-c29409b76086"

EQL_PARENTS = ("w3wp.exe", "httpd.exe", "nginx.exe", "php.exe", "php-cgi.exe", "tomcat.exe")
EQL_CHILDREN = ("cmd.exe", "cscript.exe", "powershell.exe", "pwsh.exe", "powershell_ise.exe", "wmic.exe", "wscript.exe")
SIGMA_PARENTS = ("w3wp.exe", "httpd.exe", "nginx.exe", "php-cgi.exe", "tomcat.exe", "sqlservr.exe")
SIGMA_CHILDREN = (
    "cmd.exe",
    "sh.exe",
    "bash.exe",
    "powershell.exe",
    "bitsadmin.exe",
    "cscript.exe",
    "wscript.exe",
    "net.exe",
    "net1.exe",
    "ping.exe",
    "whoami.exe",
)
EXCLUDED_COMMAND_LINES = (
    "cmd.exe /c mode CON",
    'cmd.exe /s /c "mode CON"',
    'cmd.exe /c "mode"',
    'cmd.exe /s /c "tput colors 2>&1"',
)

Predicate = Callable[[Mapping[str, Any]], bool]


def _rules() -> dict[str, Rule]:
    loaded = load_bundled_rules().rules
    eql_rule = next(rule for rule in loaded if rule.rule_id == EQL_RULE_ID)
    sigma_rule = next(rule for rule in loaded if rule.type == "sigma")
    return {"eql": eql_rule, "sigma": sigma_rule}


RULES = _rules()
PREDICATES: dict[str, Predicate] = {kind: compile_predicate(rule.ir) for kind, rule in RULES.items()}


def fires(kind: str, document: Mapping[str, Any]) -> bool:
    return PREDICATES[kind](flatten(document))


def process_start(
    parent: str | None,
    child: str | None,
    command_line: str | None = "cmd.exe /c whoami",
    *,
    parent_dir: str = "C:\\Windows\\System32\\inetsrv\\",
    child_dir: str = "C:\\Windows\\System32\\",
    os_type: str | None = "windows",
    event_type: Any = ("start",),
    category: Any = ("process",),
) -> dict[str, Any]:
    """A process start as Elastic's Windows pipelines write it: name = last ``\\`` segment of the executable."""
    process: dict[str, Any] = {"pid": 4242}
    if child is not None:
        process["executable"] = child_dir + child
        process["name"] = child
    if parent is not None:
        process["parent"] = {"executable": parent_dir + parent, "name": parent, "pid": 4000}
    if command_line is not None:
        process["command_line"] = command_line
    document: dict[str, Any] = {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "event": {"code": "4688", "kind": "event"},
        "host": {"name": "iis01"},
        "process": process,
    }
    if category is not None:
        document["event"]["category"] = list(category) if isinstance(category, tuple) else category
    if event_type is not None:
        document["event"]["type"] = list(event_type) if isinstance(event_type, tuple) else event_type
    if os_type is not None:
        document["host"]["os"] = {"type": os_type}
    return document


# ---------------------------------------------------------------------------------------------------------------
# Seed 002's 4688 event: rundll32.exe started by explorer.exe


SEED_4688_ECS: dict[str, Any] = {
    "@timestamp": "2015-11-12T02:24:52.3773525Z",
    "event": {
        "action": "created-process",
        "category": ["process"],
        "code": "4688",
        "kind": "event",
        "module": "security",
        "outcome": "success",
        "provider": "Microsoft-Windows-Security-Auditing",
        "type": ["start"],
    },
    "host": {"name": "WIN-GG82ULGC9GO.contoso.local", "os": {"type": "windows"}},
    "process": {
        # CommandLine is empty: the pipeline drops empty event_data values, so no command_line and no args.
        "executable": "C:\\Windows\\System32\\rundll32.exe",
        "name": "rundll32.exe",
        "pid": 0x2BC,
        "parent": {"executable": "C:\\Windows\\explorer.exe", "name": "explorer.exe", "pid": 0xE74},
    },
    "user": {
        "domain": "CONTOSO",
        "effective": {
            "domain": "CONTOSO",
            "id": "S-1-5-21-1377283216-344919071-3415362939-1104",
            "name": "dadmin",
        },
        "id": "S-1-5-18",
        "name": "WIN-GG82ULGC9GO$",
    },
    "winlog": {
        "channel": "Security",
        "computer_name": "WIN-GG82ULGC9GO.contoso.local",
        "event_data": {
            "MandatoryLabel": "S-1-16-8192",
            "NewProcessId": "0x2bc",
            "NewProcessName": "C:\\Windows\\System32\\rundll32.exe",
            "ParentProcessName": "C:\\Windows\\explorer.exe",
            "ProcessId": "0xe74",
            "SubjectDomainName": "CONTOSO",
            "SubjectLogonId": "0x3e7",
            "SubjectUserName": "WIN-GG82ULGC9GO$",
            "SubjectUserSid": "S-1-5-18",
            "TargetDomainName": "CONTOSO",
            "TargetLogonId": "0x4a5af0",
            "TargetUserName": "dadmin",
            "TargetUserSid": "S-1-5-21-1377283216-344919071-3415362939-1104",
            "TokenElevationType": "%%1938",
        },
        "event_id": "4688",
        "logon": {"id": "0x3e7"},
        "process": {"pid": 4, "thread": {"id": 400}},
        "provider_name": "Microsoft-Windows-Security-Auditing",
        "record_id": "2814",
        "version": 2,
    },
}


@pytest.mark.parametrize("kind", ["eql", "sigma"])
def test_seed_4688_event_fires_neither_rule(kind: str) -> None:
    """Seed 002's 4688 (rundll32.exe under explorer.exe) in ECS [4688-ecs]: explorer.exe is in neither rule's
    parent list and rundll32.exe in neither child list [eql] [sigma], so neither rule fires."""
    assert not fires(kind, SEED_4688_ECS)


@pytest.mark.parametrize("kind", ["eql", "sigma"])
def test_seed_4688_event_fires_once_the_parent_is_a_web_server(kind: str) -> None:
    """Control for the test above: the same 4688 document with w3wp.exe as the parent and cmd.exe as the child
    (in both rules' lists [eql] [sigma]) fires, so the verdict above comes from the process names."""
    document = flatten(SEED_4688_ECS)
    document["process.parent.executable"] = "c:\\windows\\system32\\inetsrv\\w3wp.exe"
    document["process.parent.name"] = "w3wp.exe"
    document["process.executable"] = "C:\\Windows\\System32\\cmd.exe"
    document["process.name"] = "cmd.exe"
    assert PREDICATES[kind](document)


# ---------------------------------------------------------------------------------------------------------------
# Every parent x every child, each rule with its own lists


@pytest.mark.parametrize("parent", EQL_PARENTS)
@pytest.mark.parametrize("child", EQL_CHILDREN)
def test_eql_fires_for_every_parent_and_child_in_its_lists(parent: str, child: str) -> None:
    """[eql] ``process.parent.name : (...)`` and ``process.name : (...)``: each listed pair fires (the command
    line is not an excluded one)."""
    assert fires("eql", process_start(parent, child))


@pytest.mark.parametrize("parent", SIGMA_PARENTS)
@pytest.mark.parametrize("child", SIGMA_CHILDREN)
def test_sigma_fires_for_every_parent_and_child_in_its_lists(parent: str, child: str) -> None:
    """[sigma] ``ParentImage|endswith \\<parent>`` and ``Image|endswith \\<child>`` on the executables
    [sigma-ecs]: each listed pair fires."""
    assert fires("sigma", process_start(parent, child))


@pytest.mark.parametrize("parent", sorted(set(EQL_PARENTS) - set(SIGMA_PARENTS)))
def test_sigma_ignores_parents_only_the_eql_rule_lists(parent: str) -> None:
    """php.exe is an [eql] parent but not a [sigma] one (Sigma lists php-cgi.exe only): Sigma stays silent."""
    assert fires("eql", process_start(parent, "cmd.exe"))
    assert not fires("sigma", process_start(parent, "cmd.exe"))


@pytest.mark.parametrize("parent", sorted(set(SIGMA_PARENTS) - set(EQL_PARENTS)))
def test_eql_ignores_parents_only_the_sigma_rule_lists(parent: str) -> None:
    """sqlservr.exe is a [sigma] parent but not an [eql] one: the EQL rule stays silent."""
    assert fires("sigma", process_start(parent, "cmd.exe"))
    assert not fires("eql", process_start(parent, "cmd.exe"))


@pytest.mark.parametrize("child", sorted(set(EQL_CHILDREN) - set(SIGMA_CHILDREN)))
def test_sigma_ignores_children_only_the_eql_rule_lists(child: str) -> None:
    """pwsh, powershell_ise and wmic are [eql] children but not [sigma] ones."""
    assert fires("eql", process_start("w3wp.exe", child))
    assert not fires("sigma", process_start("w3wp.exe", child))


@pytest.mark.parametrize("child", sorted(set(SIGMA_CHILDREN) - set(EQL_CHILDREN)))
def test_eql_ignores_children_only_the_sigma_rule_lists(child: str) -> None:
    """sh, bash, bitsadmin, net, net1, ping and whoami are [sigma] children but not [eql] ones."""
    assert fires("sigma", process_start("w3wp.exe", child))
    assert not fires("eql", process_start("w3wp.exe", child))


# ---------------------------------------------------------------------------------------------------------------
# The EQL rule's exclusion: php.exe/httpd.exe -> cmd.exe with one of four command lines


@pytest.mark.parametrize("parent", ["php.exe", "httpd.exe"])
@pytest.mark.parametrize("command_line", EXCLUDED_COMMAND_LINES)
def test_eql_excludes_the_four_command_lines_of_cmd_under_php_and_httpd(parent: str, command_line: str) -> None:
    """[eql] ``not (process.parent.name : ("php.exe", "httpd.exe") and process.name : "cmd.exe" and
    process.command_line : (...))``: each excluded command line under each excluded parent does not fire."""
    assert not fires("eql", process_start(parent, "cmd.exe", command_line))


@pytest.mark.parametrize("command_line", EXCLUDED_COMMAND_LINES)
def test_eql_exclusion_does_not_cover_w3wp(command_line: str) -> None:
    """[eql] the exclusion names php.exe and httpd.exe only: the same command line under w3wp.exe fires."""
    assert fires("eql", process_start("w3wp.exe", "cmd.exe", command_line))


@pytest.mark.parametrize("command_line", EXCLUDED_COMMAND_LINES)
def test_eql_exclusion_covers_cmd_only(command_line: str) -> None:
    """[eql] the exclusion requires ``process.name : "cmd.exe"``: the command line under php.exe with
    powershell.exe as the child fires."""
    assert fires("eql", process_start("php.exe", "powershell.exe", command_line))


@pytest.mark.parametrize("command_line", EXCLUDED_COMMAND_LINES)
def test_eql_exclusion_ignores_case(command_line: str) -> None:
    """[eql-syntax] ``:`` is case-insensitive, so the exclusion also holds for an upper-cased command line and
    parent/child names."""
    assert not fires("eql", process_start("HTTPD.EXE", "CMD.EXE", command_line.upper()))


def test_eql_exclusion_needs_the_whole_command_line() -> None:
    """[eql-syntax] ``:`` without wildcards is an equality: a longer command line is not excluded."""
    assert fires("eql", process_start("php.exe", "cmd.exe", "cmd.exe /c mode CON && whoami"))


@pytest.mark.parametrize("command_line", EXCLUDED_COMMAND_LINES)
def test_sigma_has_no_command_line_exclusion(command_line: str) -> None:
    """[sigma] has no exclusion: httpd.exe -> cmd.exe fires whatever the command line; php.exe is not a Sigma
    parent."""
    assert fires("sigma", process_start("httpd.exe", "cmd.exe", command_line))
    assert not fires("sigma", process_start("php.exe", "cmd.exe", command_line))


def test_eql_fires_when_the_excluded_pair_has_no_command_line() -> None:
    """[eql-null] php.exe -> cmd.exe without ``process.command_line`` (4688 without command-line auditing):
    ``process.command_line : (...)`` does not match a document lacking the field, so ``not (...)`` (must_not)
    keeps it and the rule fires, as Elasticsearch does."""
    assert fires("eql", process_start("php.exe", "cmd.exe", command_line=None))


def test_sigma_does_not_need_a_command_line() -> None:
    """[sigma] tests only ParentImage and Image: no command line is needed."""
    assert fires("sigma", process_start("w3wp.exe", "cmd.exe", command_line=None))


# ---------------------------------------------------------------------------------------------------------------
# Case


@pytest.mark.parametrize(("parent", "child"), [("W3WP.EXE", "CMD.EXE"), ("W3wp.Exe", "PowerShell.exe")])
def test_eql_names_compare_without_case(parent: str, child: str) -> None:
    """[eql-syntax] ``:`` is case-insensitive: W3WP.EXE -> CMD.EXE fires."""
    assert fires("eql", process_start(parent, child))


def test_sigma_paths_compare_without_case() -> None:
    """[sigma-spec] values are case-insensitive: C:\\WINDOWS\\...\\W3WP.EXE -> ...\\CMD.EXE fires."""
    document = process_start(
        "W3WP.EXE", "CMD.EXE", parent_dir="C:\\WINDOWS\\SYSTEM32\\INETSRV\\", child_dir="C:\\WINDOWS\\SYSTEM32\\"
    )
    assert fires("sigma", document)


def test_eql_host_os_type_is_case_sensitive() -> None:
    """[eql-syntax] ``host.os.type == "windows"`` uses ``==``, which is case-sensitive: "Windows" does not
    fire."""
    assert not fires("eql", process_start("w3wp.exe", "cmd.exe", os_type="Windows"))


def test_sigma_logsource_compares_without_case() -> None:
    """[sigma-ecs] the logsource condition is a Sigma value test, case-insensitive: "Windows" still fires."""
    assert fires("sigma", process_start("w3wp.exe", "cmd.exe", os_type="Windows"))


def test_eql_event_type_is_case_sensitive() -> None:
    """[eql-syntax] ``event.type == "start"`` is case-sensitive: "START" does not fire."""
    assert not fires("eql", process_start("w3wp.exe", "cmd.exe", event_type=("START",)))


# ---------------------------------------------------------------------------------------------------------------
# event.type and event.category


@pytest.mark.parametrize("kind", ["eql", "sigma"])
@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        (("start",), True),
        (("start", "info"), True),
        (("info", "start"), True),
        ("start", True),
        (("end",), False),
        (("info",), False),
        (None, False),
    ],
)
def test_event_type_is_any_of_a_list(kind: str, event_type: Any, expected: bool) -> None:
    """[eql-syntax] a multi-valued field matches when any value does: ["start","info"] fires, ["end"] (a
    process end) does not, nor an event without event.type; [sigma-ecs] process_creation requires
    ``event.type`` "start" the same way."""
    assert fires(kind, process_start("w3wp.exe", "cmd.exe", event_type=event_type)) is expected


@pytest.mark.parametrize("kind", ["eql", "sigma"])
@pytest.mark.parametrize(
    ("category", "expected"), [(("process",), True), ("process", True), (("file",), False), (None, False)]
)
def test_event_category_must_be_process(kind: str, category: Any, expected: bool) -> None:
    """[eql-syntax] ``process where`` requires ``event.category`` "process"; [sigma-ecs] so does category
    process_creation."""
    assert fires(kind, process_start("w3wp.exe", "cmd.exe", category=category)) is expected


# ---------------------------------------------------------------------------------------------------------------
# Missing fields, other operating systems, look-alikes


@pytest.mark.parametrize("kind", ["eql", "sigma"])
def test_no_parent_no_alert(kind: str) -> None:
    """[eql] [sigma] both rules test the parent: an event without process.parent.* does not fire."""
    assert not fires(kind, process_start(None, "cmd.exe"))


@pytest.mark.parametrize("kind", ["eql", "sigma"])
def test_no_child_no_alert(kind: str) -> None:
    """[eql] [sigma] both rules test the child: an event without process.name/executable does not fire."""
    assert not fires(kind, process_start("w3wp.exe", None))


def test_eql_reads_names_and_sigma_reads_executables() -> None:
    """[eql] reads ``process.parent.name``; [sigma-ecs] ``ParentImage`` reads ``process.parent.executable``.
    With only the parent's name, EQL fires and Sigma does not; with only its executable, the reverse."""
    name_only = process_start("w3wp.exe", "cmd.exe")
    del name_only["process"]["parent"]["executable"]
    assert fires("eql", name_only)
    assert not fires("sigma", name_only)
    executable_only = process_start("w3wp.exe", "cmd.exe")
    del executable_only["process"]["parent"]["name"]
    assert not fires("eql", executable_only)
    assert fires("sigma", executable_only)


@pytest.mark.parametrize("kind", ["eql", "sigma"])
@pytest.mark.parametrize("os_type", ["linux", "macos", None])
def test_non_windows_hosts_do_not_fire(kind: str, os_type: str | None) -> None:
    """[eql] ``host.os.type == "windows"`` and [sigma-ecs] product windows -> ``host.os.type`` "windows": a
    Linux or macOS host, or an event that does not say, does not fire."""
    assert not fires(kind, process_start("w3wp.exe", "cmd.exe", os_type=os_type))


@pytest.mark.parametrize("kind", ["eql", "sigma"])
@pytest.mark.parametrize(
    ("parent", "child"),
    [
        ("w3wp.exe.bak", "cmd.exe"),
        ("notw3wp.exe", "cmd.exe"),
        ("w3wp.exe", "cmd.exe.bak"),
        ("w3wp.exe", "xcmd.exe"),
        ("w3wp", "cmd.exe"),
    ],
)
def test_look_alike_names_do_not_fire(kind: str, parent: str, child: str) -> None:
    """[eql] ``:`` without wildcards is whole-value equality; [sigma] ``endswith \\w3wp.exe`` needs the whole
    file name after a backslash: w3wp.exe.bak, notw3wp.exe, cmd.exe.bak, xcmd.exe and w3wp do not fire."""
    assert not fires(kind, process_start(parent, child))


def test_sigma_needs_a_backslash_before_the_file_name() -> None:
    """[sigma-spec] ``'*\\w3wp.exe'`` is "ends with \\w3wp.exe": a bare executable name (no directory) or a
    forward-slash path does not fire Sigma, while EQL, which reads the name, fires."""
    bare = process_start("w3wp.exe", "cmd.exe", parent_dir="")
    assert not fires("sigma", bare)
    assert fires("eql", bare)
    slashed = process_start("w3wp.exe", "cmd.exe", parent_dir="C:/Windows/System32/inetsrv/")
    assert not fires("sigma", slashed)


def test_dotted_and_nested_documents_are_the_same_event() -> None:
    """shellwatch.ecs.flatten: ``{"process": {"name": ...}}`` and ``{"process.name": ...}`` are one field
    (Elasticsearch's object-field rule), so a dotted document fires like the nested one."""
    nested = process_start("w3wp.exe", "cmd.exe")
    dotted = flatten(nested)
    assert fires("eql", nested) and PREDICATES["eql"](dotted)
    assert fires("sigma", nested) and PREDICATES["sigma"](dotted)
