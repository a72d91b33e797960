"""Elastic exception lists: which matched events a rule must not turn into alerts.

Kibana's detection engine applies a rule's exception items before it creates alerts: the items become an
Elasticsearch filter with ``negate: true`` beside the rule's query (``buildExceptionFilter`` in Kibana,
x-pack/plugins/lists/server/services/exception_lists/build_exception_filter.ts). This module reproduces that
filter in Python, clause for clause, over flat ECS events:

* ``match`` is a ``terms`` query on the field with one value, ``match_any`` a ``terms`` query with several:
  exact, case-sensitive on keyword and wildcard fields (what ECS maps strings as); a field named ``*.caseless``
  (Elastic Endpoint's lower-case normalized keyword) compares case-insensitively. ``*.ip`` fields are ECS
  ``ip`` fields, where a term may be a CIDR block.
* ``wildcard`` ("matches") is a ``wildcard`` query *without* ``case_insensitive``: Lucene wildcard syntax
  (``*``, ``?``, backslash escapes), anchored, case-sensitive except on ``.caseless`` fields.
* ``exists`` is an ``exists`` query; ``list`` is a ``terms`` query over a value list's values (``ip_range``
  lists: CIDR terms and ``a-b`` ranges).
* ``operator: "excluded"`` wraps the clause in ``must_not``: "is not X" holds for an event without the field,
  and on a multi-valued field "is X" holds when any value is X, "is not X" when none is.
* ``nested`` is a ``nested`` query: its entries must hold for one and the same object of the array.
* An item's ``os_types`` ANDs ``host.os.type`` (or Endpoint's ``host.os.name.caseless``) being one of them.
* Entries of an item are ANDed; items of a list and lists of a rule are ORed.

Lists are read from Kibana's exception-list export (NDJSON of list objects, item objects and a final
export-summary line; a rule export holding rules and their lists reads the same, its rule lines skipped). A
rule's ``exceptions_list`` references lists by ``id``/``list_id``; a user may also attach loaded lists to
rules by rule id or name (or ``*`` for every rule), as Kibana's "add to rules" of a shared list does.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from shellwatch.ecs import flatten
from shellwatch.engine.patterns import PatternError, compile_wildcards
from shellwatch.rules.model import Rule

MAX_LINE_BYTES = 4 * 1024 * 1024
"""Longest line read from an exceptions file or a value list: a longer line is reported, never held."""

RULE_LIST_TYPES = frozenset({"detection", "rule_default", "endpoint"})
"""List types a detection rule applies; Elastic Defend's artifact lists (trusted apps, event filters, host
isolation exceptions, blocklists) are enforced on the host, not by rules."""

VALUE_LIST_TYPES = frozenset({"keyword", "ip", "ip_range"})
"""Value-list types Kibana turns into query clauses (``isListTypeProcessable``)."""

_OS_TYPES = frozenset({"linux", "macos", "windows"})
_NESTED_ENTRY_TYPES = frozenset({"match", "match_any", "exists"})
_ENTRY_TYPES = frozenset({"match", "match_any", "exists", "wildcard", "list", "nested"})

Predicate = Callable[[Mapping[str, Any]], bool]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ExceptionListError(ValueError):
    """Exception-list input is invalid; ``problems`` names each bad file and line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class ExceptionEntryError(ValueError):
    """One invalid entry, item or value list; the loader adds the file and line."""


# ------------------------------------------------------------------------------------------------------------
# Value lists


@dataclass(frozen=True, slots=True)
class ValueList:
    """A Kibana value list (one value per line, as Kibana imports it), read as the type an entry gives it."""

    id: str
    type: str
    path: Path
    values: tuple[str, ...]
    networks: tuple[IpNetwork, ...] = ()
    ranges: tuple[tuple[int, int, int], ...] = ()
    """``a-b`` ranges of an ip_range list, as (IP version, lowest, highest) integers."""


def read_value_list(list_id: str, list_type: str, path: Path) -> ValueList:
    """Read a value-list file as ``list_type``; raises :class:`ExceptionEntryError` naming the file and line."""
    if list_type not in VALUE_LIST_TYPES:
        raise ExceptionEntryError(
            f"value list {list_id!r} has type {list_type!r}; supported types are {', '.join(sorted(VALUE_LIST_TYPES))}"
        )
    values: list[str] = []
    networks: list[IpNetwork] = []
    ranges: list[tuple[int, int, int]] = []
    try:
        for number, text, problem in _lines(path):
            if text is None:
                raise ExceptionEntryError(f"{path}:{number}: {problem}")
            value = text.strip()
            if not value:
                continue
            try:
                if list_type == "ip":
                    networks.append(ipaddress.ip_network(ipaddress.ip_address(value)))
                elif list_type == "ip_range":
                    if "-" in value:
                        low, high = (ipaddress.ip_address(part.strip()) for part in value.split("-", 1))
                        if low.version != high.version or int(low) > int(high):
                            raise ValueError("not a range from a lower to a higher address of one IP version")
                        ranges.append((low.version, int(low), int(high)))
                    else:
                        networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError as error:
                raise ExceptionEntryError(
                    f"{path}:{number}: {value!r} is not a valid {list_type} value ({error})"
                ) from None
            values.append(value)
    except OSError as error:
        raise ExceptionEntryError(f"{path}: cannot read value list {list_id!r}: {error.strerror or error}") from None
    return ValueList(list_id, list_type, path, tuple(values), tuple(networks), tuple(ranges))


def _lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(1-based line number, text, problem) of each line of a UTF-8 file: text is None and problem says why
    for a line that is not UTF-8 or is longer than :data:`MAX_LINE_BYTES` (which is skipped, never held)."""
    with path.open("rb") as handle:
        number = 0
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(MAX_LINE_BYTES)
                yield number, None, f"line longer than {MAX_LINE_BYTES} bytes"
                continue
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n"), ""
            except UnicodeDecodeError as error:
                yield number, None, f"not UTF-8 text ({error.reason})"


# ------------------------------------------------------------------------------------------------------------
# Field values and comparisons


def _field_values(event: Mapping[str, Any], name: str) -> list[Any]:
    """The values of a field (Elasticsearch ignores nulls; an empty array is a missing field)."""
    value = event.get(name)
    if value is None and name.endswith(".caseless"):
        # Endpoint's ``.caseless`` is a multi-field of the base field: the same values, normalized.
        value = event.get(name[: -len(".caseless")])
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def _is_caseless(name: str) -> bool:
    return name.endswith(".caseless")


def _is_ip_field(name: str) -> bool:
    # ECS names its ``ip``-typed fields ``*.ip`` (source.ip, host.ip, related.ip, ...).
    return name.rsplit(".", 1)[-1] == "ip"


def _as_ip(value: Any) -> IpAddress | None:
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Terms:
    """A ``terms`` query's values for one field, ready to test an event value the way the field's type would."""

    strings: frozenset[str]
    numbers: frozenset[float]
    booleans: frozenset[bool]
    networks: tuple[IpNetwork, ...]
    ranges: tuple[tuple[int, int, int], ...]
    caseless: bool

    def matches(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value in self.booleans
        if isinstance(value, int | float):
            return float(value) in self.numbers
        if not isinstance(value, str):
            return False
        if (self.caseless and value.lower() in self.strings) or value in self.strings:
            return True
        if self.networks or self.ranges:
            address = _as_ip(value)
            if address is not None:
                return any(address in network for network in self.networks) or any(
                    version == address.version and low <= int(address) <= high for version, low, high in self.ranges
                )
        return False


def _terms(field_name: str, values: Sequence[str], value_list: ValueList | None = None) -> _Terms:
    caseless = _is_caseless(field_name)
    strings = frozenset(v.lower() for v in values) if caseless else frozenset(values)
    numbers: set[float] = set()
    booleans: set[bool] = set()
    networks: list[IpNetwork] = []
    for value in values:
        with contextlib.suppress(ValueError):
            numbers.add(float(value))
        if value in ("true", "false"):
            booleans.add(value == "true")
        if _is_ip_field(field_name):
            with contextlib.suppress(ValueError):
                networks.append(ipaddress.ip_network(value, strict=False))
    ranges: tuple[tuple[int, int, int], ...] = ()
    if value_list is not None and value_list.type != "keyword":
        networks = list(value_list.networks)
        ranges = value_list.ranges
        if value_list.type == "ip_range":
            strings = frozenset()  # an ip_range list matches addresses, never text
    return _Terms(strings, frozenset(numbers), frozenset(booleans), tuple(networks), ranges, caseless)


# ------------------------------------------------------------------------------------------------------------
# Entries


@dataclass(frozen=True, slots=True)
class _Entry:
    """One compiled entry: its test (with the operator applied) and its text for ``rules show``."""

    test: Predicate
    text: str
    field: str


def _string(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ExceptionEntryError(f"entry needs a non-empty string {key!r}, found {value!r}")
    return value


def _negated(operator: str, test: Predicate) -> Predicate:
    if operator == "included":
        return test
    return lambda event: not test(event)


def _any_value(field_name: str, accept: Callable[[Any], bool]) -> Predicate:
    return lambda event: any(accept(value) for value in _field_values(event, field_name))


def _quoted(value: str) -> str:
    return orjson.dumps(value).decode()


def compile_entry(
    entry: Any, value_lists: Mapping[str, ValueList] | None = None, *, inside_nested: bool = False
) -> _Entry:
    """Compile one exception-list entry (a mapping as Kibana stores it); raises ValueError when invalid."""
    if not isinstance(entry, Mapping):
        raise ExceptionEntryError(f"an entry must be an object, found {type(entry).__name__}")
    kind = entry.get("type")
    allowed = _NESTED_ENTRY_TYPES if inside_nested else _ENTRY_TYPES
    if kind not in allowed:
        raise ExceptionEntryError(
            f"entry type {kind!r} is not one of {', '.join(sorted(allowed))}"
            + (" (inside nested)" if inside_nested else "")
        )
    name = _string(entry, "field")
    if kind == "nested":
        return _compile_nested(name, entry, value_lists)
    operator = entry.get("operator")
    if operator not in ("included", "excluded"):
        raise ExceptionEntryError(f"entry on {name}: operator {operator!r} is not 'included' or 'excluded'")
    negative = operator == "excluded"

    if kind == "exists":
        return _Entry(
            _negated(operator, lambda event: bool(_field_values(event, name))),
            f"{name} {'does not exist' if negative else 'exists'}",
            name,
        )
    if kind == "match":
        value = _string(entry, "value")
        terms = _terms(name, [value])
        return _Entry(
            _negated(operator, _any_value(name, terms.matches)),
            f"{name} {'is not' if negative else 'is'} {_quoted(value)}",
            name,
        )
    if kind == "match_any":
        values = entry.get("value")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise ExceptionEntryError(
                f"entry on {name}: match_any needs a non-empty list of non-empty strings, found {values!r}"
            )
        terms = _terms(name, values)
        listed = ", ".join(_quoted(v) for v in values)
        return _Entry(
            _negated(operator, _any_value(name, terms.matches)),
            f"{name} {'is not one of' if negative else 'is one of'} [{listed}]",
            name,
        )
    if kind == "wildcard":
        pattern = _string(entry, "value")
        caseless = _is_caseless(name)
        try:
            patterns = compile_wildcards([pattern], insensitive=caseless)
        except PatternError as error:
            raise ExceptionEntryError(f"entry on {name}: {error}") from None

        def wildcard_accepts(value: Any) -> bool:
            return isinstance(value, str) and patterns.matches(value.lower() if caseless else value)

        return _Entry(
            _negated(operator, _any_value(name, wildcard_accepts)),
            f"{name} {'does not match' if negative else 'matches'} {_quoted(pattern)}",
            name,
        )
    # kind == "list"
    reference = entry.get("list")
    if not isinstance(reference, Mapping):
        raise ExceptionEntryError(f"entry on {name}: a list entry needs 'list': {{'id': ..., 'type': ...}}")
    list_id = _string(reference, "id")
    list_type = _string(reference, "type")
    found = (value_lists or {}).get(list_id)
    if found is None:
        raise ExceptionEntryError(
            f"entry on {name}: value list {list_id!r} was not given (give its file as a value list)"
        )
    if found.type != list_type:
        raise ExceptionEntryError(
            f"entry on {name}: value list {list_id!r} is read as {found.type}, the entry says {list_type}"
        )
    terms = _terms(name, found.values if list_type == "keyword" else (), found)
    return _Entry(
        _negated(operator, _any_value(name, terms.matches)),
        f"{name} {'is not in list' if negative else 'is in list'} {list_id} ({list_type}, {len(found.values)} values)",
        name,
    )


def _compile_nested(parent: str, entry: Mapping[str, Any], value_lists: Mapping[str, ValueList] | None) -> _Entry:
    raw_entries = entry.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ExceptionEntryError(f"nested entry on {parent} needs a non-empty 'entries' list")
    inner = [compile_entry(e, value_lists, inside_nested=True) for e in raw_entries]

    def nested_holds(event: Mapping[str, Any]) -> bool:
        return any(all(e.test(obj) for e in inner) for obj in nested_objects(event, parent))

    text = f"{parent} has one object where " + " AND ".join(e.text for e in inner)
    return _Entry(nested_holds, text, parent)


def nested_objects(event: Mapping[str, Any], parent: str) -> list[Mapping[str, Any]]:
    """The objects of the array at ``parent``, each as a flat mapping of its own fields (relative names).

    An event that kept the array of objects gives them directly. A flat event holds one list per leaf
    (``parent.a: [...]``, ``parent.b: [...]``): the objects are rebuilt position by position when every
    leaf has one value per object; when the leaves' lengths disagree the pairing is unknowable, and no object
    is returned, so a nested entry never silences an alert on a guess.
    """
    kept = event.get(parent)
    if isinstance(kept, Mapping):
        return [flatten(kept)]
    if isinstance(kept, list) and kept and all(isinstance(item, Mapping) for item in kept):
        return [flatten(item) for item in kept]
    prefix = parent + "."
    leaves = {name[len(prefix) :]: value for name, value in event.items() if name.startswith(prefix)}
    if not leaves:
        return []
    if not any(isinstance(value, list) for value in leaves.values()):
        return [leaves]
    lengths = {len(value) if isinstance(value, list) else -1 for value in leaves.values()}
    if len(lengths) != 1 or -1 in lengths:
        return []
    count = lengths.pop()
    return [{name: values[index] for name, values in leaves.items()} for index in range(count)]


# ------------------------------------------------------------------------------------------------------------
# Items and lists


@dataclass(frozen=True, slots=True)
class ExceptionItem:
    """One exception item: entries ANDed, optionally limited to some operating systems."""

    item_id: str
    name: str
    list_id: str
    namespace_type: str
    os_types: tuple[str, ...]
    entries: tuple[_Entry, ...]
    expire_time: datetime | None
    where: str
    """File and line the item was read from."""

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether the event falls under this item (so a rule applying it raises no alert for it)."""
        if self.os_types and not _os_matches(event, self.os_types):
            return False
        return all(entry.test(event) for entry in self.entries)

    def expired(self, at: datetime) -> bool:
        """Whether the item's ``expire_time`` has passed at ``at`` (Kibana no longer applies it then)."""
        return self.expire_time is not None and self.expire_time <= at

    @property
    def text(self) -> str:
        """The item's condition in words, as Kibana's exception builder shows it."""
        condition = " AND ".join(entry.text for entry in self.entries)
        if self.os_types:
            condition = f"[os: {', '.join(self.os_types)}] {condition}"
        return condition


def _os_matches(event: Mapping[str, Any], os_types: tuple[str, ...]) -> bool:
    # Kibana's transformOsType ORs host.os.type (Beats, Agent integrations) with host.os.name.caseless
    # (Endpoint and Endgame, whose host.os.name carries the same word in any case).
    types = _field_values(event, "host.os.type")
    if any(value in os_types for value in types if isinstance(value, str)):
        return True
    names = _field_values(event, "host.os.name.caseless")
    return any(value.lower() in os_types for value in names if isinstance(value, str))


@dataclass(eq=False, slots=True)
class ExceptionList:
    """An exception list (container) and its items."""

    id: str
    list_id: str
    name: str
    type: str
    namespace_type: str
    where: str
    items: list[ExceptionItem] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.list_id, self.namespace_type)


@dataclass(frozen=True, slots=True)
class RuleExceptions:
    """The exception lists one rule applies, and the references it makes that could not be resolved."""

    rule_id: str
    lists: tuple[ExceptionList, ...]
    items: tuple[ExceptionItem, ...]
    """Items applied: those of :attr:`lists` not expired when the rule ran."""
    expired: tuple[ExceptionItem, ...] = ()
    missing: tuple[str, ...] = ()
    """References of the rule's ``exceptions_list`` to lists that were not loaded (they silence nothing)."""
    ignored: tuple[ExceptionList, ...] = ()
    """Lists attached whose type a detection rule does not apply (Elastic Defend artifacts)."""

    def excludes(self, event: Mapping[str, Any]) -> bool:
        """Whether an event matched by the rule must not become an alert (any item matches it)."""
        return any(item.matches(event) for item in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def fields(self) -> frozenset[str]:
        """Every event field the items read (a nested entry's field is the array's path, whose leaves it reads),
        so that a reader loading only the fields rules need loads these too."""
        names: set[str] = set()
        for item in self.items:
            names.update(entry.field for entry in item.entries)
            names.update(entry.field[: -len(".caseless")] for entry in item.entries if _is_caseless(entry.field))
            if item.os_types:
                names.update(("host.os.type", "host.os.name"))
        return frozenset(names)

    def describe(self) -> list[str]:
        """Human-readable lines for ``rules show``: each list, each item's condition, what is not applied."""
        lines: list[str] = []
        if not self.lists and not self.missing and not self.ignored:
            return ["no exceptions"]
        lines.append(
            f"{len(self.items)} exception item(s) in {len(self.lists)} list(s):"
            " an event matching any item raises no alert"
        )
        for exception_list in self.lists:
            lines.append(
                f"list {_quoted(exception_list.name)} [{exception_list.list_id}, {exception_list.type},"
                f" {exception_list.namespace_type}] from {exception_list.where}"
            )
            for item in exception_list.items:
                state = " (expired: not applied)" if item in self.expired else ""
                lines.append(f"  item {_quoted(item.name)} ({item.item_id}){state}: {item.text}")
            if not exception_list.items:
                lines.append("  (no items)")
        for reference in self.missing:
            lines.append(f"list {reference}: referenced by the rule but not loaded; it silences nothing")
        for exception_list in self.ignored:
            lines.append(
                f"list {exception_list.list_id} [{exception_list.type}]: enforced by Elastic Defend on the host,"
                " not by rules; ignored"
            )
        return lines


# ------------------------------------------------------------------------------------------------------------
# Loading


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ExceptionEntryError(f"expire_time {value!r} is not a date string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExceptionEntryError(f"expire_time {value!r} is not an ISO 8601 date") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _namespace(document: Mapping[str, Any]) -> str:
    namespace = document.get("namespace_type", "single")
    if namespace not in ("single", "agnostic"):
        raise ExceptionEntryError(f"namespace_type {namespace!r} is not 'single' or 'agnostic'")
    return str(namespace)


def _os_types(document: Mapping[str, Any]) -> tuple[str, ...]:
    os_types = document.get("os_types") or []
    if not isinstance(os_types, list) or not all(t in _OS_TYPES for t in os_types):
        raise ExceptionEntryError(f"os_types {os_types!r} must be a list of {', '.join(sorted(_OS_TYPES))}")
    return tuple(os_types)


def _value_list_references(entries: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        if entry.get("type") == "list" and isinstance(entry.get("list"), Mapping):
            reference = entry["list"]
            if isinstance(reference.get("id"), str) and isinstance(reference.get("type"), str):
                yield reference["id"], reference["type"]
        elif entry.get("type") == "nested":
            yield from _value_list_references(entry.get("entries"))


@dataclass(slots=True)
class _PendingItem:
    document: Mapping[str, Any]
    where: str


class ExceptionLists:
    """Every exception list loaded, and which extra lists the user attached to which rules."""

    def __init__(self, lists: Sequence[ExceptionList], attach: Mapping[str, Sequence[str]] | None = None) -> None:
        self.lists: tuple[ExceptionList, ...] = tuple(lists)
        self.attach: dict[str, tuple[str, ...]] = {rule: tuple(ids) for rule, ids in (attach or {}).items()}

    @classmethod
    def load(
        cls,
        paths: Sequence[str | Path],
        value_lists: Mapping[str, Path] | None = None,
        *,
        attach: Mapping[str, Sequence[str]] | None = None,
    ) -> ExceptionLists:
        """Read Kibana exception-list exports; ``value_lists`` maps a value list's id to its file, ``attach``
        a rule id or name (or ``*``) to list_ids applied to it besides those the rule references.

        Raises :class:`ExceptionListError` listing every invalid file, line, item or reference.
        """
        problems: list[str] = []
        lists: dict[tuple[str, str], ExceptionList] = {}
        pending: list[_PendingItem] = []
        for raw_path in paths:
            path = Path(raw_path)
            try:
                for number, text, problem in _lines(path):
                    where = f"{path}:{number}"
                    if text is None:
                        problems.append(f"{where}: {problem}")
                        continue
                    if not text.strip():
                        continue
                    try:
                        _read_object(text, where, lists, pending)
                    except ExceptionEntryError as error:
                        problems.append(f"{where}: {error}")
            except OSError as error:
                problems.append(f"{path}: cannot read: {error.strerror or error}")

        loaded_values: dict[str, ValueList] = {}
        for item in pending:
            for list_id, list_type in _value_list_references(item.document.get("entries")):
                if list_id in loaded_values or value_lists is None or list_id not in value_lists:
                    continue
                try:
                    loaded_values[list_id] = read_value_list(list_id, list_type, Path(value_lists[list_id]))
                except ExceptionEntryError as error:
                    problems.append(f"{item.where}: {error}")

        for item in pending:
            try:
                compiled = _compile_item(item.document, item.where, loaded_values)
            except ExceptionEntryError as error:
                problems.append(f"{item.where}: {error}")
                continue
            owner = lists.get((compiled.list_id, compiled.namespace_type))
            if owner is None:
                problems.append(
                    f"{item.where}: item {compiled.item_id!r} belongs to list {compiled.list_id!r}"
                    f" ({compiled.namespace_type}), which no file given defines"
                )
                continue
            if any(existing.item_id == compiled.item_id for existing in owner.items):
                problems.append(f"{item.where}: item {compiled.item_id!r} appears twice in list {compiled.list_id!r}")
                continue
            owner.items.append(compiled)

        known = {exception_list.list_id for exception_list in lists.values()}
        for rule_key, list_ids in (attach or {}).items():
            for list_id in list_ids:
                if list_id not in known:
                    problems.append(f"exceptions attached to {rule_key!r}: no file given defines list {list_id!r}")
        if problems:
            raise ExceptionListError(problems)
        return cls(list(lists.values()), attach)

    def for_rule(self, rule: Rule, *, at: datetime | None = None) -> RuleExceptions:
        """The exceptions ``rule`` applies: the lists its ``exceptions_list`` references and those attached to
        it, without items expired at ``at`` (default: now)."""
        moment = at or datetime.now(UTC)
        chosen: list[ExceptionList] = []
        missing: list[str] = []
        for reference in rule.exceptions_list:
            found = self._resolve(reference)
            if found is None:
                missing.append(_reference_text(reference))
            elif found not in chosen:
                chosen.append(found)
        for key in ("*", rule.rule_id, rule.name):
            for list_id in self.attach.get(key, ()):
                for exception_list in self.lists:
                    if exception_list.list_id == list_id and exception_list not in chosen:
                        chosen.append(exception_list)
        applied = [exception_list for exception_list in chosen if exception_list.type in RULE_LIST_TYPES]
        ignored = [exception_list for exception_list in chosen if exception_list.type not in RULE_LIST_TYPES]
        items = [item for exception_list in applied for item in exception_list.items]
        return RuleExceptions(
            rule_id=rule.rule_id,
            lists=tuple(applied),
            items=tuple(item for item in items if not item.expired(moment)),
            expired=tuple(item for item in items if item.expired(moment)),
            missing=tuple(missing),
            ignored=tuple(ignored),
        )

    def _resolve(self, reference: Mapping[str, Any]) -> ExceptionList | None:
        list_id = reference.get("list_id")
        saved_id = reference.get("id")
        namespace = reference.get("namespace_type", "single")
        for exception_list in self.lists:
            if list_id is not None and exception_list.list_id == list_id and exception_list.namespace_type == namespace:
                return exception_list
        for exception_list in self.lists:
            if saved_id is not None and exception_list.id == saved_id:
                return exception_list
        return None


def _reference_text(reference: Mapping[str, Any]) -> str:
    list_id = reference.get("list_id") or reference.get("id") or "?"
    return f"{list_id} [{reference.get('type', '?')}, {reference.get('namespace_type', 'single')}]"


def _read_object(
    text: str, where: str, lists: dict[tuple[str, str], ExceptionList], pending: list[_PendingItem]
) -> None:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ExceptionEntryError(f"not JSON ({error})") from None
    if not isinstance(document, dict):
        raise ExceptionEntryError(f"a line must hold a JSON object, found {type(document).__name__}")
    if any(key.startswith(("exported_", "missing_")) for key in document):
        return  # the export summary Kibana writes last
    if "rule_id" in document:
        return  # a rule of a rule export, which carries its exception lists beside it
    if "entries" in document or "item_id" in document:
        pending.append(_PendingItem(document, where))
        return
    if "list_id" not in document:
        raise ExceptionEntryError(
            "neither an exception list (list_id, type), an item (item_id, entries) nor an export summary"
        )
    list_id = _string(document, "list_id")
    list_type = _string(document, "type")
    namespace = _namespace(document)
    if (list_id, namespace) in lists:
        raise ExceptionEntryError(
            f"list {list_id!r} ({namespace}) is defined again (first at {lists[(list_id, namespace)].where})"
        )
    saved_id = document.get("id")
    lists[(list_id, namespace)] = ExceptionList(
        id=saved_id if isinstance(saved_id, str) and saved_id else list_id,
        list_id=list_id,
        name=str(document.get("name") or list_id),
        type=list_type,
        namespace_type=namespace,
        where=where,
    )


def _compile_item(document: Mapping[str, Any], where: str, value_lists: Mapping[str, ValueList]) -> ExceptionItem:
    list_id = _string(document, "list_id")
    item_type = document.get("type", "simple")
    if item_type != "simple":
        raise ExceptionEntryError(f"item type {item_type!r} is not 'simple'")
    entries = document.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ExceptionEntryError("an item needs a non-empty 'entries' list")
    item_id = document.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise ExceptionEntryError("an item needs a non-empty string 'item_id'")
    return ExceptionItem(
        item_id=item_id,
        name=str(document.get("name") or item_id),
        list_id=list_id,
        namespace_type=_namespace(document),
        os_types=_os_types(document),
        entries=tuple(compile_entry(entry, value_lists) for entry in entries),
        expire_time=_parse_time(document.get("expire_time")),
        where=where,
    )
