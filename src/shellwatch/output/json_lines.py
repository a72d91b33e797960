"""Alerts as JSON: one document per line (NDJSON) or one JSON array.

JSON escapes C0 control characters by itself; C1 controls (U+0080..U+009F, e.g. U+009B, a one-character ANSI CSI
that some terminals honour) and the line/paragraph separators U+2028/U+2029 are valid raw in JSON, so they are
escaped too: an attacker's command line never acts on the terminal that shows the output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import IO, Any

import orjson

# The UTF-8 encodings of U+0080..U+009F and of U+2028 / U+2029.
_RAW_UNSAFE = re.compile(rb"\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")


def _escape(match: re.Match[bytes]) -> bytes:
    return f"\\u{ord(match.group().decode()):04x}".encode()


def dumps(document: Any) -> bytes:
    """One JSON document, terminal-safe, without a trailing newline."""
    raw = orjson.dumps(document, default=str)
    return _RAW_UNSAFE.sub(_escape, raw)


def write_ndjson(alerts: Iterable[dict[str, Any]], stream: IO[bytes]) -> int:
    """Write each alert on its own line; returns how many were written."""
    count = 0
    for alert in alerts:
        stream.write(dumps(alert) + b"\n")
        count += 1
    return count


def write_json_array(alerts: Iterable[dict[str, Any]], stream: IO[bytes]) -> int:
    """Write the alerts as one JSON array, streaming (the array is never held in memory)."""
    count = 0
    stream.write(b"[")
    for alert in alerts:
        stream.write(b"\n" if count == 0 else b",\n")
        stream.write(dumps(alert))
        count += 1
    stream.write(b"\n]\n" if count else b"]\n")
    return count
