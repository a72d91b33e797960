"""Where a Windows event normalizer takes a field's text from: the event data keys it copies.

A field listed here for a source family holds, in every event of that family, only strings cut from the value of
one of the listed keys of the raw event's data (``EventData``, or ``UserData`` for an event without event data):
the whole string, or a part of it such as a path's last component or one side of ``DOMAIN\\user``, possibly with
its letter case changed (hashes are lower-cased) or its line breaks rewritten (CRLF to LF, trailing ones
dropped). When none of the keys is there, the field is missing. So each run of the field's value between control
characters occurs, up to ASCII case, in one of those keys' values: a look at those values in the record's text
can rule out a rule that needs a piece of the field (:mod:`shellwatch.triage`).

Fields a normalizer builds (process ids converted from hex, GUIDs given braces, arguments split from the command
line, constants, timestamps) are not listed; nor are ``winlog.event_data.*``, whose values a provider mapper may
rewrite (Sysmon's GUIDs). The tests check every listed field against its record's text over every EVTX record of
the corpus.
"""

from __future__ import annotations

from typing import Final

_SYSMON_PROCESS: Final = ("Image", "SourceImage", "Destination")
_SYSMON_FILE: Final = ("TargetFilename", "Device", "ImageLoaded", "PipeName")
_SECURITY_PROCESS: Final = ("NewProcessName", "ProcessName")

FIELD_SOURCES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "sysmon": {
        "process.executable": _SYSMON_PROCESS,
        "process.name": _SYSMON_PROCESS,
        "process.command_line": ("CommandLine",),
        "process.working_directory": ("CurrentDirectory",),
        "process.parent.executable": ("ParentImage",),
        "process.parent.name": ("ParentImage",),
        "process.parent.command_line": ("ParentCommandLine",),
        "process.pe.original_file_name": ("OriginalFileName",),
        "process.pe.company": ("Company",),
        "process.pe.description": ("Description",),
        "process.pe.file_version": ("FileVersion",),
        "process.pe.product": ("Product",),
        "process.hash.md5": ("Hashes", "Hash"),
        "process.hash.sha1": ("Hashes", "Hash"),
        "process.hash.sha256": ("Hashes", "Hash"),
        "process.hash.imphash": ("Hashes", "Hash"),
        "user.name": ("User",),
        "user.domain": ("User",),
        "file.path": _SYSMON_FILE,
        "file.name": _SYSMON_FILE,
        "file.directory": _SYSMON_FILE,
        "file.extension": _SYSMON_FILE,
    },
    "windows_security": {
        "process.executable": _SECURITY_PROCESS,
        "process.name": _SECURITY_PROCESS,
        "process.command_line": ("CommandLine",),
        "process.parent.executable": ("ParentProcessName",),
        "process.parent.name": ("ParentProcessName",),
        "user.name": ("SubjectUserName",),
        "user.domain": ("SubjectDomainName",),
    },
}
"""Source family -> field -> the event data keys its text is cut from (see the module docstring)."""


def field_sources(family: str) -> dict[str, tuple[str, ...]]:
    """The fields of ``family`` whose text comes from known event data keys, with those keys (empty for a
    family not listed)."""
    return FIELD_SOURCES.get(family, {})
