"""String-to-value conversions exactly as Elastic's ingest pipelines perform them.

Each function mirrors one Java/Elasticsearch conversion, so that a field converted here holds what
Elasticsearch would have stored. They return ``None`` where the pipeline's processor would fail (the pipelines
run these with ``ignore_failure``, so the field is then simply not set).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1


def _in_long_range(value: int) -> int | None:
    return value if _LONG_MIN <= value <= _LONG_MAX else None


def whole_number(value: Any) -> int | None:
    """A decoded JSON value as a long: an integer in the long range, a float with no fraction, a string as
    :func:`es_convert_long`; None for anything else (booleans included)."""
    kind = type(value)
    if kind is int:
        return _in_long_range(value)
    if kind is str:
        return es_convert_long(value)
    if kind is float and value.is_integer():
        return _in_long_range(int(value))
    return None


def _ascii_digits(text: str, base: int) -> int | None:
    # int() also takes a sign, underscores and surrounding blanks, which Java rejects here.
    if not text or not text.isascii() or text[0] in "+-" or "_" in text or text.strip() != text:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def es_convert_long(text: str) -> int | None:
    """The ``convert`` processor with ``type: long``: ``0x``-prefixed hex, else a signed decimal.

    Elasticsearch's ConvertProcessor decodes ``0x``/``-0x`` with ``Long.decode`` and everything else with
    ``Long.parseLong``.
    """
    # Plain decimal digits (ids as evtx renders them): up to 18 of them always fit.
    if len(text) < 19 and text.isdigit() and text.isascii():
        return int(text)
    if text.startswith("0x") or text.startswith("-0x"):
        negative = text[0] == "-"
        value = _ascii_digits(text[3:] if negative else text[2:], 16)
        if value is None:
            return None
        return _in_long_range(-value if negative else value)
    body = text[1:] if text[:1] in ("+", "-") else text
    value = _ascii_digits(body, 10)
    if value is None:
        return None
    return _in_long_range(-value if text[:1] == "-" else value)


def java_long_decode(text: str) -> int | None:
    """Java's ``Long.decode``: optional sign, then ``0x``/``0X``/``#`` hex, a leading ``0`` octal, or decimal.

    The Security pipeline uses it for the hex pids of 4688 (``"0x2bc"`` -> 700).
    """
    sign = 1
    body = text
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body[:2] in ("0x", "0X"):
        value = _ascii_digits(body[2:], 16)
    elif body[:1] == "#":
        value = _ascii_digits(body[1:], 16)
    elif len(body) > 1 and body[0] == "0":
        value = _ascii_digits(body[1:], 8)
    else:
        value = _ascii_digits(body, 10)
    if value is None:
        return None
    return _in_long_range(sign * value)


def es_convert_boolean(text: str) -> bool | None:
    """The ``convert`` processor with ``type: boolean``: ``true``/``false`` in any case, nothing else."""
    lowered = str.lower(text)
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


@lru_cache(maxsize=4096)  # addresses repeat from event to event; parsing one is costly
def es_convert_ip(text: str) -> str | None:
    """The ``convert`` processor with ``type: ip``: the text itself when it is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text
