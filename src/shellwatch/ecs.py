"""The in-memory ECS event: a flat mapping from dotted field paths to values.

Rules read fields by dotted path (``process.parent.name``), so events are kept flat: one dict lookup per field on
the hot path, whatever nesting the source document used. Flattening follows Elasticsearch's own treatment of
object fields: ``{"process": {"parent": {"name": "w3wp.exe"}}}`` and ``{"process.parent.name": "w3wp.exe"}`` are
the same field, and an array of objects becomes one multi-valued field per leaf
(``{"a": [{"b": 1}, {"b": 2}]}`` -> ``{"a.b": [1, 2]}``), which is how Elasticsearch indexes non-``nested``
object arrays and therefore what its queries see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
    object that can hold it, so no value is lost. Objects list their keys in the sorted order of the paths.
    """
    keys = tuple(event)
    shape = _SHAPES.get(keys)
    if shape is None:
        if len(keys) > _SHAPE_KEYS_LIMIT:
            return unflatten_sorted(event)
        shape = _Shape(keys)
        if len(_SHAPES) >= _SHAPES_LIMIT:
            _SHAPES.clear()
        _SHAPES[keys] = shape
    for path in shape.prefix_leaves:
        value = event[path]
        if value is None or isinstance(value, dict):
            return unflatten_sorted(event)
    return shape.build(event)


def unflatten_sorted(event: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`unflatten` worked out path by path: the reference the cached shapes are tested against."""
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


_SHAPES_LIMIT = 1024
"""Key sequences whose nesting is kept; a crafted input can make any number of them."""

_SHAPE_KEYS_LIMIT = 1024
"""Events with more keys than this are rare: they are nested path by path, and their shape not kept."""

_SHAPE_FACTORY = "_shellwatch_shape_factory"


class _Shape:
    """How the events with one sequence of keys nest: worked out once (events of one kind have the same keys in
    the same order, the order their normalizer writes them in), as a generated function that builds the nested
    document with one dict display per object. That is about six times faster than a split and a walk per path,
    and an alert is made of its event's nested document.

    The generated source holds only this class's templates and generated names: keys and paths are passed to it
    as arguments (``k0``, ``k1``...), never written into it, so that no text of an event can become code.
    """

    __slots__ = ("build", "prefix_leaves")

    def __init__(self, keys: tuple[str, ...]) -> None:
        # The reference walk, run on the keys alone: per object (numbered as made, the root 0), its keys in
        # insertion order, each mapped to the path of its leaf or the number of its child object.
        placed: list[dict[str, str | int]] = [{}]
        prefix_leaves: set[str] = set()
        for path in sorted(keys):
            node = 0
            parts = path.split(".")
            for i, part in enumerate(parts[:-1]):
                entry = placed[node].get(part)
                if entry is None:
                    child = len(placed)
                    placed.append({})
                    placed[node][part] = child
                    node = child
                elif isinstance(entry, str):
                    # A leaf where an object would go: the rest of the path becomes a dotted key beside it
                    # (unless the leaf's value is None or an object: see prefix_leaves).
                    prefix_leaves.add(entry)
                    placed[node][".".join(parts[i:])] = path
                    break
                else:
                    node = entry
            else:
                placed[node][parts[-1]] = path
        self.prefix_leaves = tuple(sorted(prefix_leaves))
        """Paths that are a prefix of another path. When one's value is None the reference walk puts an object
        in its place, when it is an object the walk descends into it: neither is what the shape describes, and
        :func:`unflatten` hands such an event to :func:`unflatten_sorted`."""
        texts: list[str] = []

        def name_of(text: str) -> str:
            texts.append(text)
            return f"k{len(texts) - 1}"

        # A child is made after its parent: in reverse order, every object is built after its children.
        lines = []
        for node in range(len(placed) - 1, -1, -1):
            items = ", ".join(
                f"{name_of(key)}: " + (f"o{target}" if isinstance(target, int) else f"e[{name_of(target)}]")
                for key, target in placed[node].items()
            )
            lines.append(f"        o{node} = {{{items}}}")
        source = "\n".join(
            [
                f"def {_SHAPE_FACTORY}({', '.join(f'k{i}' for i in range(len(texts)))}):",
                "    def build(e):",
                *lines,
                "        return o0",
                "    return build",
            ]
        )
        namespace: dict[str, Any] = {"__builtins__": {}}
        # The source holds only the templates above, generated names and numbers (see the class docstring).
        exec(compile(source, "<shellwatch generated shape>", "exec"), namespace)  # noqa: S102
        self.build: Callable[[Mapping[str, Any]], dict[str, Any]] = namespace[_SHAPE_FACTORY](*texts)
        """The nested document of an event with the shape's keys (and no prefix leaf None or an object)."""


_SHAPES: dict[tuple[str, ...], _Shape] = {}


def values_of(event: Mapping[str, Any], path: str) -> list[Any]:
    """The non-null values of a field as a list (empty when missing)."""
    value = event.get(path)
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]
