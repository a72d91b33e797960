"""Count, independently of shellwatch, the events each seed rule should alert on in a set of Windows logs.

This reads the raw records with the `evtx` package (and OTRF JSON lines from .zip files) and applies each seed
rule's parent x child logic by hand, straight from the rule texts -- no shellwatch code is imported, so the counts
are a check on shellwatch's readers, normalizers and engine together:

* EQL seed rule (Elastic): Windows process start; basename of the parent in {w3wp, httpd, nginx, php, php-cgi,
  tomcat}.exe and of the child in {cmd, cscript, powershell, pwsh, powershell_ise, wmic, wscript}.exe, case-
  insensitive; minus php.exe/httpd.exe -> cmd.exe with one of four command lines (case-insensitive).
* Sigma seed rule: Windows process creation; parent path ends with \\ + one of {w3wp, httpd, nginx, php-cgi, tomcat,
  sqlservr}.exe and child path with \\ + one of {cmd, sh, bash, powershell, bitsadmin, cscript, wscript, net, net1,
  ping, whoami}.exe, case-insensitive.

Process starts are Sysmon event 1 and Security event 4688. An event seen in several files (same computer, channel
and record id) counts once, as it yields one alert id; an event without a record id (some OTRF exports carry no
RecordNumber) is identified by where it was read (file, member, line), so such events never merge.

Usage: python tools/count_webshell_pairs.py PATH... (files or folders) -- prints JSON counts.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evtx

EQL_PARENTS = {"w3wp.exe", "httpd.exe", "nginx.exe", "php.exe", "php-cgi.exe", "tomcat.exe"}
EQL_CHILDREN = {
    "cmd.exe",
    "cscript.exe",
    "powershell.exe",
    "pwsh.exe",
    "powershell_ise.exe",
    "wmic.exe",
    "wscript.exe",
}
EQL_EXCLUDED_LINES = {
    "cmd.exe /c mode con",
    'cmd.exe /s /c "mode con"',
    'cmd.exe /c "mode"',
    'cmd.exe /s /c "tput colors 2>&1"',
}
SIGMA_PARENTS = ("w3wp.exe", "httpd.exe", "nginx.exe", "php-cgi.exe", "tomcat.exe", "sqlservr.exe")
SIGMA_CHILDREN = (
    "cmd.exe", "sh.exe", "bash.exe", "powershell.exe", "bitsadmin.exe", "cscript.exe",
    "wscript.exe", "net.exe", "net1.exe", "ping.exe", "whoami.exe",
)  # fmt: skip


def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("#text")
    return "" if value is None else str(value)


def process_start(system: dict[str, Any], data: dict[str, Any]) -> tuple[str, str, str] | None:
    """(child path, parent path, command line) of a Sysmon 1 or Security 4688 event, else None."""
    event_id = _text(system.get("EventID"))
    provider = system.get("Provider", {})
    provider_name = provider.get("#attributes", {}).get("Name", "") if isinstance(provider, dict) else ""
    if event_id == "1" and provider_name == "Microsoft-Windows-Sysmon":
        return _text(data.get("Image")), _text(data.get("ParentImage")), _text(data.get("CommandLine"))
    if event_id == "4688" and provider_name == "Microsoft-Windows-Security-Auditing":
        return (
            _text(data.get("NewProcessName")),
            _text(data.get("ParentProcessName")),
            _text(data.get("CommandLine")),
        )
    return None


def eql_fires(child: str, parent: str, command_line: str) -> bool:
    child_name = child.rsplit("\\", 1)[-1].lower()
    parent_name = parent.rsplit("\\", 1)[-1].lower()
    if parent_name not in EQL_PARENTS or child_name not in EQL_CHILDREN:
        return False
    excluded = (
        parent_name in {"php.exe", "httpd.exe"}
        and child_name == "cmd.exe"
        and command_line.lower() in EQL_EXCLUDED_LINES
    )
    return not excluded


def sigma_fires(child: str, parent: str) -> bool:
    parent_l, child_l = parent.lower(), child.lower()
    return any(parent_l.endswith("\\" + p) for p in SIGMA_PARENTS) and any(
        child_l.endswith("\\" + c) for c in SIGMA_CHILDREN
    )


def _evtx_records(path: Path) -> Iterator[dict[str, Any]]:
    parser = evtx.PyEvtxParser(str(path), number_of_threads=1)
    iterator = parser.records_json()
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except Exception:  # a damaged record: the parser moves on to the next one
            continue
        if record is not None:  # the stubs allow None; the parser ends with StopIteration
            yield json.loads(record["data"])


def _otrf_records(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(member name, 1-based line, record) of the OTRF flat JSON lines in a .zip."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if not name.endswith(".json"):
                continue
            for number, line in enumerate(archive.read(name).splitlines(), 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield name, number, record


def count(paths: list[str]) -> dict[str, Any]:
    """Counts of process starts and of each rule's expected alerts over the files under ``paths``."""
    seen: set[tuple[str, ...]] = set()
    eql: list[str] = []
    sigma: list[str] = []
    starts = 0
    files = sorted(
        p for root in paths for p in (Path(root).rglob("*") if Path(root).is_dir() else [Path(root)]) if p.is_file()
    )
    for path in files:
        if path.suffix.lower() == ".evtx":
            for doc in _evtx_records(path):
                event = doc.get("Event", {})
                system = event.get("System", {})
                key = (
                    _text(system.get("Computer")),
                    _text(system.get("Channel")),
                    _text(system.get("EventRecordID")),
                )
                found = process_start(system, event.get("EventData") or {})
                if found is None or key in seen:
                    continue
                seen.add(key)
                starts += 1
                if eql_fires(*found):
                    eql.append(f"{path.name} {key[2]}")
                if sigma_fires(found[0], found[1]):
                    sigma.append(f"{path.name} {key[2]}")
        elif path.suffix.lower() == ".zip" and "otrf" in str(path):
            for member, line_number, flat in _otrf_records(path):
                event_id = str(flat.get("EventID", ""))
                source = str(flat.get("SourceName", ""))
                if (event_id, source) == ("1", "Microsoft-Windows-Sysmon"):
                    child, parent, line = flat.get("Image"), flat.get("ParentImage"), flat.get("CommandLine")
                elif (event_id, source) == ("4688", "Microsoft-Windows-Security-Auditing"):
                    child, parent, line = (
                        flat.get("NewProcessName"),
                        flat.get("ParentProcessName"),
                        flat.get("CommandLine"),
                    )
                else:
                    continue
                record_number = flat.get("RecordNumber")
                if record_number in (None, ""):
                    identity: tuple[str, ...] = (str(path), member, str(line_number))
                    label = f"{path.name}!{member}:{line_number}"
                else:
                    identity = (str(flat.get("Hostname", "")), str(flat.get("Channel", "")), str(record_number))
                    label = f"{path.name} {record_number}"
                if identity in seen:
                    continue
                seen.add(identity)
                starts += 1
                found = (str(child or ""), str(parent or ""), str(line or ""))
                if eql_fires(*found):
                    eql.append(label)
                if sigma_fires(found[0], found[1]):
                    sigma.append(label)
    return {
        "process_starts": starts,
        "eql": len(eql),
        "sigma": len(sigma),
        "eql_events": eql,
        "sigma_events": sigma,
    }


if __name__ == "__main__":
    print(json.dumps(count(sys.argv[1:] or ["../shared/corpus"]), indent=1))
