"""The in-memory ECS event: a flat mapping from dotted field paths to values.

Rules read fields by dotted path (``process.parent.name``), so events are kept flat: one dict lookup per field on
the hot path, whatever nesting the source document used. Flattening follows Elasticsearch's own treatment of
object fields: ``{"process": {"parent": {"name": "w3wp.exe"}}}`` and ``{"process.parent.name": "w3wp.exe"}`` are
the same field, and an array of objects becomes one multi-valued field per leaf
(``{"a": [{"b": 1}, {"b": 2}]}`` -> ``{"a.b": [1, 2]}``), which is how Elasticsearch indexes non-``nested``
object arrays and therefore what its queries see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Event = dict[str, Any]
"""A flat ECS event: dotted path -> scalar, or list of scalars for a multi-valued field."""


def flatten(document: Mapping[str, Any]) -> Event:
    """Flatten a nested JSON document into an :data:`Event`."""
    out: Event = {}
    _flatten_into(out, "", document)
    return out


_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None), list})
"""Value types that are never a mapping: checked by identity first, since JSON decoders make only these and dict."""


def _is_mapping(value: Any) -> bool:
    kind = type(value)
    return kind is dict or (kind not in _PLAIN and isinstance(value, Mapping))


def _flatten_into(out: Event, prefix: str, document: Mapping[str, Any]) -> None:
    # Type identity before isinstance: this runs for every field of every JSON document a hunt reads.
    for key, value in document.items():
        path = f"{prefix}{key}"
        kind = type(value)
        if kind is dict or (kind not in _PLAIN and isinstance(value, Mapping)):
            _flatten_into(out, path + ".", value)
        elif kind is list and any(_is_mapping(item) for item in value):
            _flatten_object_array(out, path, value)
        elif path in out:
            # The same field written twice (nested and dotted forms both present): keep every value.
            _append(out, path, value)
        else:
            out[path] = value


def flatten_fields(document: Mapping[str, Any], paths: Iterable[str]) -> Event:
    """The fields ``paths`` of :func:`flatten` (``document``), found without flattening the rest.

    Each field has the values flattening gives it, from every way the document can spell it (nested objects,
    dotted keys, arrays of objects); a field several spellings write lists its values in the order the spellings
    are looked at here, which may differ from the document's. Rules read fields as any-of, so for matching the
    two are the same; output uses :func:`flatten`.
    """
    out: Event = {}
    for path in paths:
        found: list[tuple[Any, bool]] = []
        _collect(document, _spellings(path), 0, found, False)
        if not found:
            continue
        if len(found) == 1 and not found[0][1]:
            out[path] = found[0][0]
        else:
            values: list[Any] = []
            for value, _ in found:
                if type(value) is list:
                    values.extend(value)
                else:
                    values.append(value)
            out[path] = values
    return out


_Spellings = tuple[dict[str, int], ...]
_SPELLINGS: dict[str, _Spellings] = {}
_SPELLINGS_LIMIT = 4096


def _spellings(path: str) -> _Spellings:
    """For each position in the path's parts, the keys that spell the path on from there (``a``, ``a.b``...),
    with the position each leads to."""
    found = _SPELLINGS.get(path)
    if found is None:
        parts = path.split(".")
        found = tuple(
            {".".join(parts[start:stop]): stop for stop in range(start + 1, len(parts) + 1)}
            for start in range(len(parts))
        )
        if len(_SPELLINGS) >= _SPELLINGS_LIMIT:
            _SPELLINGS.clear()
        _SPELLINGS[path] = found
    return found


def _collect(
    node: Mapping[str, Any], spellings: _Spellings, start: int, found: list[tuple[Any, bool]], listed: bool
) -> None:
    """Append to ``found`` what flattening ``node`` writes at the path from position ``start`` on (with whether it
    is appended as a list, as inside an array of objects)."""
    end = len(spellings)
    for key, stop in spellings[start].items():
        if key not in node:
            continue
        value = node[key]
        if stop == end:
            if _is_mapping(value):
                continue  # an object: flattened into fields below this one
            if type(value) is list and any(_is_mapping(item) for item in value):
                # An array of objects: its other items stay at this path.
                for item in value:
                    if not _is_mapping(item):
                        found.append((item, True))
                continue
            found.append((value, listed))
        elif _is_mapping(value):
            _collect(value, spellings, stop, found, listed)
        elif type(value) is list:
            for item in value:
                if _is_mapping(item):
                    _collect(item, spellings, stop, found, True)


def _flatten_object_array(out: Event, path: str, items: list[Any]) -> None:
    for item in items:
        if _is_mapping(item):
            part: Event = {}
            _flatten_into(part, path + ".", item)
            for sub_path, sub_value in part.items():
                _append(out, sub_path, sub_value)
        else:
            _append(out, path, item)


def _append(out: Event, path: str, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if path not in out:
        out[path] = list(values)
        return
    current = out[path]
    if not isinstance(current, list):
        current = [current]
    current.extend(values)
    out[path] = current


def unflatten(event: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild a nested document from a flat event, for output.

    A path whose prefix is itself a leaf (``a`` and ``a.b`` both set) keeps the dotted key under the deepest
    object that can hold it, so no value is lost.
    """
    root: dict[str, Any] = {}
    for path in sorted(event):
        node = root
        parts = path.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                node[".".join(parts[i:])] = event[path]
                break
            node = child
        else:
            # Paths are visited in sorted order, so a leaf ``a`` is always placed before ``a.b`` arrives.
            node[parts[-1]] = event[path]
    return root


def values_of(event: Mapping[str, Any], path: str) -> list[Any]:
    """The non-null values of a field as a list (empty when missing)."""
    value = event.get(path)
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]
