"""The scalar functions an IR :class:`~shellwatch.query.ir.Call` names, with Elasticsearch EQL's semantics.

Each function takes already-evaluated argument values (one value per argument, never a list: the engine
applies a function to every combination of a multi-valued field's values) and a ``insensitive`` flag (the
``~`` of EQL's case-insensitive variants). They follow Elasticsearch's EQL function processors
(elastic/elasticsearch x-pack/plugin/eql/.../expression/function/scalar) and its function reference
(https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-function-ref.html):

* ``null`` in, ``null`` out: a ``None`` argument makes the result ``None`` (``concat`` included);
* an argument of the wrong type is an error in Elasticsearch (the search fails); here it raises
  :class:`FunctionError`, which the engine turns into ``null`` for that event and the EQL front end into a
  query error when it folds constants;
* arithmetic follows Java: integer division truncates toward zero, ``%`` keeps the dividend's sign, division
  by zero is an error;
* strings are converted as Java's ``toString`` does (``true``, ``1.0``, ``1.0E10``);
* lengths and positions count Unicode code points (Java counts UTF-16 units: they differ only outside the
  BMP).

Besides Elasticsearch's functions the registry holds the ones the front ends need to express operators on
computed values: ``wildcard`` (IR wildcard patterns, see :mod:`shellwatch.engine.patterns`), ``regex`` (Lucene
regular expressions), ``is_null``, ``is_not_null`` and ``epoch_millis`` (a ``date`` field's value as the epoch
milliseconds Elasticsearch indexes, see :func:`iso_date_millis`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache

from shellwatch.engine.patterns import PatternError, compile_lucene, compile_wildcards
from shellwatch.normalize.timestamps import iso_utc


class FunctionError(ValueError):
    """A function was given arguments Elasticsearch rejects (wrong type, bad number, division by zero...)."""


Impl = Callable[[Sequence[object], bool], object]


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """How a function is called: its names, arity, whether it has a ``~`` variant and whether it is a test."""

    name: str
    """Canonical lower-case name, as IR ``Call.name`` carries it."""
    display: str
    """Elasticsearch's spelling, for messages."""
    min_args: int
    max_args: int | None
    case_variant: bool
    predicate: bool
    impl: Impl


def _is_number(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, float)


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise FunctionError(f"{what} needs a string, received {value!r}")
    return value


def _number(value: object, what: str) -> int | float:
    if not _is_number(value):
        raise FunctionError(f"{what} needs a number, received {value!r}")
    assert isinstance(value, int | float)
    return value


def java_string(value: object) -> str:
    """``value.toString()`` as Java prints it (``true``, doubles as ``Double.toString`` writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    return str(value)


def _java_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        # repr is already the shortest decimal form here (it switches to exponents only below 1e-4)
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    kept = list(digits)
    while len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    power = exponent + len(kept) - 1
    mantissa = f"{kept[0]}." + ("".join(str(d) for d in kept[1:]) or "0")
    return f"{'-' if sign else ''}{mantissa}E{power}"


# -- arithmetic ----------------------------------------------------------------------------------------------


def _arith(name: str, op: Callable[[int | float, int | float], int | float]) -> Impl:
    def impl(args: Sequence[object], insensitive: bool) -> object:
        left, right = args
        if left is None or right is None:
            return None
        return op(_number(left, name), _number(right, name))

    return impl


def _divide(a: int | float, b: int | float) -> int | float:
    if b == 0:
        raise FunctionError("divide by zero")
    if isinstance(a, int) and isinstance(b, int):
        quotient = abs(a) // abs(b)
        return quotient if (a >= 0) == (b >= 0) else -quotient
    return a / b


def _modulo(a: int | float, b: int | float) -> int | float:
    if b == 0:
        raise FunctionError("modulo by zero")
    if isinstance(a, int) and isinstance(b, int):
        remainder = abs(a) % abs(b)
        return remainder if a >= 0 else -remainder
    return math.fmod(a, b)


# -- strings -------------------------------------------------------------------------------------------------


def _between(args: Sequence[object], insensitive: bool) -> object:
    source, left, right = args[0], args[1], args[2]
    greedy = args[3] if len(args) > 3 else False
    if source is None or left is None or right is None:
        return None
    text = _string(source, "between")
    left_s = _string(left, "between")
    right_s = _string(right, "between")
    if not isinstance(greedy, bool):
        raise FunctionError(f"between needs a boolean for greedy matching, received {greedy!r}")
    # Elasticsearch's StringUtils.between: an empty source, left or right returns the source unchanged.
    if not text or not left_s or not right_s:
        return text
    haystack = text
    if insensitive:
        haystack, left_s, right_s = haystack.lower(), left_s.lower(), right_s.lower()
    idx = haystack.find(left_s)
    if idx < 0:
        return ""
    start = idx + len(left_s)
    end = haystack.rfind(right_s) if greedy else haystack.find(right_s, start)
    if end < 0:
        return ""
    return text[start:end]


def _concat(args: Sequence[object], insensitive: bool) -> object:
    if any(arg is None for arg in args):
        return None
    return "".join(java_string(arg) for arg in args)


def _ends_with(args: Sequence[object], insensitive: bool) -> object:
    source, suffix = args
    if source is None or suffix is None:
        return None
    text, end = _string(source, "endsWith"), _string(suffix, "endsWith")
    if insensitive:
        text, end = text.lower(), end.lower()
    return text.endswith(end)


def _starts_with(args: Sequence[object], insensitive: bool) -> object:
    source, prefix = args
    if source is None or prefix is None:
        return None
    text, start = _string(source, "startsWith"), _string(prefix, "startsWith")
    if insensitive:
        text, start = text.lower(), start.lower()
    return text.startswith(start)


def _string_contains(args: Sequence[object], insensitive: bool) -> object:
    source, substring = args
    if source is None or substring is None:
        return None
    text, part = _string(source, "stringContains"), _string(substring, "stringContains")
    # Elasticsearch's StringUtils.stringContains: an empty string or substring contains nothing.
    if not text or not part:
        return False
    if insensitive:
        text, part = text.lower(), part.lower()
    return part in text


def _index_of(args: Sequence[object], insensitive: bool) -> object:
    source, substring = args[0], args[1]
    start = args[2] if len(args) > 2 else None
    if source is None or substring is None:
        return None
    text, part = _string(source, "indexOf"), _string(substring, "indexOf")
    position = 0 if start is None else int(_number(start, "indexOf"))
    if insensitive:
        text, part = text.lower(), part.lower()
    position = max(position, 0)
    # Java's String.indexOf(str, from): past the end, only the empty string is found (at the end).
    if position >= len(text):
        return len(text) if part == "" else None
    found = text.find(part, position)
    return None if found < 0 else found


def _length(args: Sequence[object], insensitive: bool) -> object:
    (value,) = args
    if value is None:
        return None
    return len(_string(value, "length"))


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


def _to_number(args: Sequence[object], insensitive: bool) -> object:
    source = args[0]
    base = args[1] if len(args) > 1 else None
    if source is None:
        return None
    text = _string(source, "number").strip()
    hex_prefix = text.startswith("0x")
    if base is None:
        radix = 16 if hex_prefix else 10
    elif isinstance(base, int) and not isinstance(base, bool):
        radix = base
    else:
        raise FunctionError(f"number needs an integer base, received {base!r}")
    if hex_prefix and radix == 16:
        text = text[2:]
    if radix == 10:
        if not _DECIMAL.fullmatch(text):
            raise FunctionError(f"unable to convert [{source}] to a number of base 10")
        number = float(text)
        # Java's DecimalFormat hands back a long whenever the value is integral.
        if number.is_integer() and abs(number) < 2**63:
            return int(number)
        return number
    if not 2 <= radix <= 36:
        raise FunctionError(f"unsupported base {radix}")
    try:
        return int(text, radix)
    except ValueError:
        raise FunctionError(f"unable to convert [{source}] to a number of base {radix}") from None


def _to_string(args: Sequence[object], insensitive: bool) -> object:
    (value,) = args
    return None if value is None else java_string(value)


def _substring(args: Sequence[object], insensitive: bool) -> object:
    source, start = args[0], args[1]
    end = args[2] if len(args) > 2 else None
    if source is None:
        return None
    text = _string(source, "substring")
    length = len(text)
    begin = 0 if start is None else int(_number(start, "substring"))
    stop = length if end is None else int(_number(end, "substring"))
    # Elasticsearch's StringUtils.substringSlice: Python slice semantics, clamped.
    if not text:
        return text
    if begin < 0:
        begin = max(begin + length, 0)
    if stop < 0:
        stop = max(stop + length, 0)
    stop = min(stop, length)
    if begin >= stop:
        return ""
    return text[begin:stop]


# -- networks ------------------------------------------------------------------------------------------------

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=1024)
def parse_network(text: str) -> IPNetwork:
    """A CIDR block (host bits allowed, as Elasticsearch's CIDRUtils accepts ``10.6.48.157/8``)."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FunctionError(f"invalid CIDR block {text!r}") from None


def ip_in_networks(value: str, networks: Sequence[IPNetwork]) -> bool:
    """Whether an IP address string lies in one of ``networks`` (False when it is not an IP address)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in networks)


def _cidr_match(args: Sequence[object], insensitive: bool) -> object:
    source, blocks = args[0], args[1:]
    if source is None or any(block is None for block in blocks):
        return None
    text = _string(source, "cidrMatch")
    networks = [parse_network(_string(block, "cidrMatch")) for block in blocks]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise FunctionError(f"cidrMatch needs an IP address, received {text!r}") from None
    return any(address.version == net.version and address in net for net in networks)


# -- dates ---------------------------------------------------------------------------------------------------
#
# Elasticsearch's ``date`` type stores epoch milliseconds, and an ECS ``date`` field is mapped with the default
# format ``strict_date_optional_time||epoch_millis``. ``strict_date_optional_time`` (DateFormatters.java,
# STRICT_DATE_OPTIONAL_TIME_FORMATTER) reads ``yyyy[-MM[-dd]]`` then optionally ``T`` and
# ``HH[:mm[:ss[.fraction]]]`` and a zone (``Z``, ``+HH:mm``, ``+HHmm``, ``+HH``); the fraction has 1 to 9
# digits, of which a millisecond field keeps 3 (truncated). When Elasticsearch parses the upper end of a range
# (``lte``) or the lower end of an exclusive one (``gt``) it rounds up: missing time fields become 23:59:59.999
# (JavaDateFormatter ROUND_UP_BASE_FIELDS); month and day default to 01 either way.

_ISO_DATE_TIME = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?"
    r"(?:T(?:(?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?)?)?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_EPOCH_MILLIS = re.compile(r"-?\d{1,18}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)


def iso_date_millis(text: str, *, zone: tzinfo = UTC, round_up: bool = False) -> int | None:
    """``text`` read by ``strict_date_optional_time`` as epoch milliseconds, or None when it has not that shape.

    ``zone`` applies when the text carries no zone of its own (Elasticsearch's ``time_zone``, UTC by default);
    ``round_up`` fills missing time fields with their largest value, as Elasticsearch does for ``gt`` and ``lte``
    bounds. :class:`FunctionError` when the shape is right but a field is out of range (month 13).
    """
    match = _ISO_DATE_TIME.fullmatch(text)
    if match is None:
        return None
    parts = match.groupdict()
    try:
        moment = datetime(
            int(parts["year"]),
            int(parts["month"] or 1),
            int(parts["day"] or 1),
            int(parts["hour"] or (23 if round_up else 0)),
            int(parts["minute"] or (59 if round_up else 0)),
            int(parts["second"] or (59 if round_up else 0)),
            tzinfo=_zone_of(parts["zone"]) or zone,
        )
    except ValueError as exc:
        raise FunctionError(f"{text!r} is not a valid date: {exc}") from None
    fraction = parts["fraction"]
    millis = int(fraction[:3].ljust(3, "0")) if fraction else (999 if round_up else 0)
    return (moment - _EPOCH) // _ONE_SECOND * 1000 + millis


def _zone_of(text: str | None) -> tzinfo | None:
    if text is None:
        return None
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 18 or minutes > 59:
        raise FunctionError(f"invalid zone offset {text!r}")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def epoch_millis_value(value: object) -> int | None:
    """An event's ``date`` field value as the epoch milliseconds Elasticsearch would have indexed, or None when
    it is not a date Elasticsearch accepts (the document would not have been indexed with that value).

    Strings read as ``strict_date_optional_time`` (no zone: UTC), then as ``epoch_millis``; other date-time
    text the normalizer understands (``2024-01-02 03:04:05``) as it reads it; numbers are epoch milliseconds.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return math.floor(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        millis = iso_date_millis(value)
    except FunctionError:
        return None
    if millis is not None:
        return millis
    if _EPOCH_MILLIS.fullmatch(value):
        return int(value)
    normalized = iso_utc(value)
    if normalized is None or normalized == value:
        return None
    try:
        return iso_date_millis(normalized)
    except FunctionError:
        return None


def _epoch_millis(args: Sequence[object], insensitive: bool) -> object:
    (value,) = args
    return None if value is None else epoch_millis_value(value)


# -- operators on computed values ----------------------------------------------------------------------------


def _wildcard(args: Sequence[object], insensitive: bool) -> object:
    source, patterns = args[0], args[1:]
    if source is None:
        return None
    text = _string(source, "wildcard")
    texts = tuple(_string(p, "wildcard") for p in patterns)
    matcher = compile_wildcards(texts, insensitive=insensitive)
    return matcher.matches(text.lower() if insensitive else text)


def _regex(args: Sequence[object], insensitive: bool) -> object:
    source, patterns = args[0], args[1:]
    if source is None:
        return None
    text = _string(source, "regex")
    try:
        compiled = [compile_lucene(_string(p, "regex"), insensitive) for p in patterns]
    except PatternError as exc:
        raise FunctionError(str(exc)) from None
    return any(p.fullmatch(text) is not None for p in compiled)


def _is_null(args: Sequence[object], insensitive: bool) -> object:
    (value,) = args
    return value is None


def _is_not_null(args: Sequence[object], insensitive: bool) -> object:
    (value,) = args
    return value is not None


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec("add", "add", 2, 2, False, False, _arith("add", lambda a, b: a + b)),
        FunctionSpec("subtract", "subtract", 2, 2, False, False, _arith("subtract", lambda a, b: a - b)),
        FunctionSpec("multiply", "multiply", 2, 2, False, False, _arith("multiply", lambda a, b: a * b)),
        FunctionSpec("divide", "divide", 2, 2, False, False, _arith("divide", _divide)),
        FunctionSpec("modulo", "modulo", 2, 2, False, False, _arith("modulo", _modulo)),
        FunctionSpec("between", "between", 3, 4, True, False, _between),
        FunctionSpec("cidrmatch", "cidrMatch", 2, None, False, True, _cidr_match),
        FunctionSpec("concat", "concat", 1, None, False, False, _concat),
        FunctionSpec("endswith", "endsWith", 2, 2, True, True, _ends_with),
        FunctionSpec("indexof", "indexOf", 2, 3, True, False, _index_of),
        FunctionSpec("length", "length", 1, 1, False, False, _length),
        FunctionSpec("number", "number", 1, 2, False, False, _to_number),
        FunctionSpec("startswith", "startsWith", 2, 2, True, True, _starts_with),
        FunctionSpec("string", "string", 1, 1, False, False, _to_string),
        FunctionSpec("stringcontains", "stringContains", 2, 2, True, True, _string_contains),
        FunctionSpec("substring", "substring", 2, 3, False, False, _substring),
        FunctionSpec("wildcard", "wildcard", 2, None, True, True, _wildcard),
        FunctionSpec("regex", "regex", 2, None, True, True, _regex),
        FunctionSpec("is_null", "is_null", 1, 1, False, True, _is_null),
        FunctionSpec("is_not_null", "is_not_null", 1, 1, False, True, _is_not_null),
        FunctionSpec("epoch_millis", "epoch_millis", 1, 1, False, False, _epoch_millis),
    )
}
"""Every function an IR ``Call`` may name, by canonical lower-case name."""

ELASTICSEARCH_FUNCTIONS = frozenset(
    {
        "add",
        "between",
        "cidrmatch",
        "concat",
        "divide",
        "endswith",
        "indexof",
        "length",
        "modulo",
        "multiply",
        "number",
        "startswith",
        "string",
        "stringcontains",
        "substring",
        "subtract",
    }
)
"""The functions Elasticsearch EQL documents (the others in :data:`FUNCTIONS` are internal to the front
ends)."""


def call_function(name: str, args: Sequence[object], insensitive: bool = False) -> object:
    """Apply the function ``name`` to argument values; :class:`FunctionError` where Elasticsearch errs."""
    spec = FUNCTIONS.get(name)
    if spec is None:
        raise FunctionError(f"unknown function {name!r}")
    if len(args) < spec.min_args or (spec.max_args is not None and len(args) > spec.max_args):
        raise FunctionError(f"{spec.display} takes {arity_text(spec)} arguments, received {len(args)}")
    return spec.impl(args, insensitive)


def arity_text(spec: FunctionSpec) -> str:
    """How many arguments a function takes, in words (for messages)."""
    if spec.max_args is None:
        return f"at least {spec.min_args}"
    if spec.max_args == spec.min_args:
        return str(spec.min_args)
    return f"{spec.min_args} to {spec.max_args}"
