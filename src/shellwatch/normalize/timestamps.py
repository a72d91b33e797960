"""Event times as ISO 8601 UTC strings ending in ``Z``, keeping the precision the source gave.

Windows writes ``TimeCreated/@SystemTime`` with 100 ns precision (``2019-11-14T17:10:15.1515514Z``) and the
evtx package renders it with microseconds; both are kept as given. Sysmon's ``UtcTime`` (``2020-10-27
20:00:14.320``) is UTC without a zone, as the sysmon pipeline's date processor (``timezone: UTC``) reads it.
Numbers are epoch milliseconds, the second default format of Elasticsearch's ``@timestamp`` mapping
(``epoch_millis``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_UTC_SUFFIXES = ("Z", "z", "+00:00", "-00:00", "+0000", "-0000", "+00", "-00")


def _looks_like_date_time(text: str) -> bool:
    return len(text) >= 19 and text[4] == "-" and text[7] == "-" and text[13] == ":" and text[16] == ":"


def iso_utc(value: Any) -> str | None:
    """``value`` as an ISO 8601 UTC string with ``Z``, or ``None`` when it is not a date-time."""
    if isinstance(value, str):
        # Fast path: already ISO 8601 UTC, as evtx and winlogbeat render it.
        if value[-1:] == "Z" and _looks_like_date_time(value) and value[10] == "T":
            return value
        return _parse_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return None


def sysmon_utc_time(text: str) -> str | None:
    """Sysmon's ``UtcTime`` (``yyyy-MM-dd HH:mm:ss.SSS``, UTC) as ISO 8601 UTC, or ``None`` when malformed."""
    if len(text) == 23 and text[10] == " " and text[19] == "." and _looks_like_date_time(text):
        candidate = f"{text[:10]}T{text[11:]}Z"
        if candidate[0].isspace():
            return candidate if _parse_text(candidate) is not None else None
        # What _parse_text decides for this shape: a UTC date-time is valid when Python can read it.
        try:
            datetime.fromisoformat(candidate)
        except ValueError:
            return None
        return candidate
    return None


def _parse_text(text: str) -> str | None:
    stripped = text.strip()
    if not _looks_like_date_time(stripped):
        return None
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        return None
    if moment.tzinfo is None:
        # Elasticsearch reads a date without a zone as UTC; the fraction is kept as written.
        return f"{stripped[:10]}T{stripped[11:]}Z"
    if not moment.utcoffset():
        # Already UTC: keep the fraction exactly as written (it may be finer than microseconds).
        for suffix in _UTC_SUFFIXES:
            if stripped.endswith(suffix):
                body = stripped[: -len(suffix)]
                return f"{body[:10]}T{body[11:]}Z"
    try:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:  # a first or last day whose UTC moment falls outside years 1-9999
        return None
