"""The seed Sigma rule (../shared/seeds/002: a web server process spawning a shell or recon tool, T1505.003), as
written there -- multi-line YAML with comments -- through pySigma, the front end and the Python engine.

Its meaning, from the Sigma specification v2 (https://github.com/SigmaHQ/sigma-specification,
``specification/sigma-rules-specification.md``): values are case-insensitive; ``'*\\w3wp.exe'`` is "ends with
\\w3wp.exe" because a backslash escapes only ``*``, ``?`` and ``\\`` ("Escaping"); the lists are OR-linked and the
two fields AND-linked ("Lists", "Maps"); ``logsource: windows/process_creation`` selects Windows process starts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sigma.rule import SigmaRule

from conftest import shared_path
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.sigma import logsource_support, sigma_rule_to_ir

PARENTS = ("w3wp.exe", "httpd.exe", "nginx.exe", "php-cgi.exe", "tomcat.exe", "sqlservr.exe")
CHILDREN = (
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


@pytest.fixture(scope="module")
def seed_rule() -> SigmaRule:
    text = shared_path("seeds", "002_34a43a8019901ab4.txt").read_text(encoding="utf-8")
    block = re.search(r"```yml\n(title:.*?)```", text, re.DOTALL)
    assert block is not None, "the seed's Sigma rule block"
    yaml_text = block.group(1)
    assert "#" in yaml_text, "the rule is used as written, comments included"
    return SigmaRule.from_yaml(yaml_text)


@pytest.fixture(scope="module")
def seed(seed_rule: SigmaRule) -> Callable[[Mapping[str, Any]], bool]:
    return compile_predicate(sigma_rule_to_ir(seed_rule))


def event(parent: str, child: str, **extra: Any) -> dict[str, Any]:
    """A process start in ECS as Elastic's Sysmon and Security pipelines write it."""
    return {
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "host.os.type": "windows",
        "host.name": "IIS01",
        "event.category": ["process"],
        "event.type": ["start"],
        "event.code": "1",
        "process.parent.executable": parent,
        "process.parent.name": parent.rsplit("\\", 1)[-1],
        "process.executable": child,
        "process.name": child.rsplit("\\", 1)[-1],
        "process.command_line": f'"{child}" /c whoami',
        **extra,
    }


def test_seed_log_source_is_fully_supported(seed_rule: SigmaRule) -> None:
    assert logsource_support(seed_rule) is None


def test_every_parent_and_child_pair_fires(seed: Callable[[Mapping[str, Any]], bool]) -> None:
    for parent, child in itertools.product(PARENTS, CHILDREN):
        assert seed(event(rf"C:\Program Files\Server\{parent}", rf"C:\Windows\System32\{child}")), (parent, child)


def test_case_variants_fire(seed: Callable[[Mapping[str, Any]], bool]) -> None:
    assert seed(event(r"C:\WINDOWS\SYSTEM32\INETSRV\W3WP.EXE", r"C:\WINDOWS\SYSTEM32\CMD.EXE"))
    assert seed(event(r"c:\windows\system32\inetsrv\w3wp.exe", r"c:\windows\system32\whoami.exe"))
    assert seed(event(r"D:\Apps\Tomcat\Bin\Tomcat.Exe", r"C:\Windows\System32\WindowsPowerShell\v1.0\PowerShell.exe"))


def test_look_alikes_do_not_fire(seed: Callable[[Mapping[str, Any]], bool]) -> None:
    shell = r"C:\Windows\System32\cmd.exe"
    server = r"C:\Windows\System32\inetsrv\w3wp.exe"
    assert not seed(event(r"C:\Windows\System32\inetsrv\w3wp.exe.bak", shell))
    assert not seed(event(r"C:\foo\notw3wp.exe", shell))
    assert not seed(event("w3wp.exe", shell)), "'*\\w3wp.exe' needs a backslash before the name"
    assert not seed(event(server, r"C:\Windows\System32\cmd.exe.bak"))
    assert not seed(event(server, r"C:\tools\mycmd.exe"))
    assert not seed(event(server, r"C:\Windows\System32\notepad.exe"))
    assert not seed(event(r"C:\Windows\explorer.exe", shell))
    assert not seed(event(r"C:\Program Files\PHP\php.exe", shell)), "the Sigma rule lists php-cgi.exe, not php.exe"


def test_other_hosts_and_events_do_not_fire(seed: Callable[[Mapping[str, Any]], bool]) -> None:
    parent, child = r"C:\Windows\System32\inetsrv\w3wp.exe", r"C:\Windows\System32\cmd.exe"
    assert not seed(event(parent, child, **{"host.os.type": "linux"}))
    assert not seed(event(parent, child, **{"host.os.type": "macos"}))
    assert not seed(event(parent, child, **{"event.type": ["end"]}))
    assert not seed(event(parent, child, **{"event.type": ["info"]}))
    assert not seed(event(parent, child, **{"event.category": ["network"], "event.type": ["start"]}))
    without_parent = event(parent, child)
    del without_parent["process.parent.executable"]
    assert not seed(without_parent), "the rule reads ParentImage (process.parent.executable), not the name"


def test_linux_web_server_spawning_a_shell_does_not_fire(seed: Callable[[Mapping[str, Any]], bool]) -> None:
    linux = event("/usr/sbin/nginx", "/bin/sh", **{"host.os.type": "linux"})
    assert not seed(linux)
