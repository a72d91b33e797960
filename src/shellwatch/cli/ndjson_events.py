"""NDJSON event files for ``shellwatch eval``: each line one ECS document, kept with its original bytes.

Lines are read with a bound (:data:`MAX_LINE_BYTES`) so that one enormous line cannot exhaust memory; a line
that is too long, not JSON or not a JSON object becomes a :class:`BadLine` (file and line number, and why) and
reading goes on. Documents may be nested or use dotted keys: :func:`shellwatch.ecs.flatten` makes both the
same event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from shellwatch.ecs import Event, flatten

MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest event line read; longer lines are skipped with a warning."""

_SKIP_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EventLine:
    """A document read from a line: the flat event and the line exactly as read (without its line break)."""

    path: str
    line: int
    raw: bytes
    event: Event


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that holds no event, and why."""

    path: str
    line: int
    reason: str


def _lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) pairs; the line is None when it is longer than ``limit`` (its rest is skipped)."""
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(_SKIP_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line


def read_events(path: Path, limit: int = MAX_LINE_BYTES) -> Iterator[EventLine | BadLine]:
    """Each non-blank line of an NDJSON file as an event or a bad line; OSError if it cannot be opened."""
    shown = str(path)
    with path.open("rb") as stream:
        for number, line in _lines(stream, limit):
            if line is None:
                yield BadLine(shown, number, f"line longer than {limit} bytes, skipped")
                continue
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield BadLine(shown, number, f"invalid JSON: {exc}")
                continue
            if not isinstance(document, dict):
                yield BadLine(shown, number, "not a JSON object")
                continue
            try:
                event = flatten(document)
            except RecursionError:
                # orjson accepts 1,024 levels of nesting, more than Python's recursion limit lets flatten walk.
                yield BadLine(shown, number, "JSON object nested too deeply")
                continue
            yield EventLine(shown, number, raw, event)
