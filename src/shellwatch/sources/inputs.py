"""Which inputs a list of command-line paths names: files as given, directories walked recursively in sorted
order (so every run reads the same inputs in the same order), ``-`` for stdin.

Use :func:`list_inputs` to size a progress bar: reading ``[input.path]`` for each listed input, in order,
reads exactly what ``read_paths(paths)`` reads.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from shellwatch.sources.record import Origin, ReadProblem

STDIN = "-"


class Input(NamedTuple):
    """One input to read: a path (``-`` for stdin) and its size in bytes (None for stdin or a pipe).

    A piece of a large JSON lines file (:func:`shellwatch.sources.reader.split_json_lines`) is the bytes
    ``[start, end)`` of the file (``end`` None: to its end, however long it has grown), whose first line is line
    ``first_line`` of the file; ``size`` is then the piece's size. The defaults name the whole file.

    A named tuple: inputs are sent to worker processes by the thousand, and tuples pickle fastest."""

    path: str
    size: int | None
    start: int = 0
    end: int | None = None
    first_line: int = 1

    @property
    def whole(self) -> bool:
        """Whether this is a whole input rather than a piece of one."""
        return self.start == 0 and self.end is None

    @property
    def last_piece(self) -> bool:
        """Whether reading this reaches the end of the input (a whole input, or the last piece of one)."""
        return self.end is None


def list_inputs(paths: Sequence[str], *, on_problem: Callable[[ReadProblem], None] | None = None) -> list[Input]:
    """Every input the paths name, in reading order. Paths that do not exist or cannot be listed are reported
    through ``on_problem`` (or ignored when it is None)."""
    return list(iter_inputs(paths, on_problem or _ignore))


def iter_inputs(paths: Sequence[str], on_problem: Callable[[ReadProblem], None]) -> Iterator[Input]:
    """Like :func:`list_inputs`, lazily."""
    for path in paths:
        if path == STDIN:
            yield Input(STDIN, None)
            continue
        try:
            status = os.stat(path)
        except OSError as error:
            on_problem(ReadProblem(Origin(path), _os_error(error)))
            continue
        if stat.S_ISDIR(status.st_mode):
            yield from _walk(path, on_problem, {(status.st_dev, status.st_ino)})
        else:
            # Named explicitly, a pipe or device is read as a stream (e.g. a shell's <(zcat logs.gz)).
            yield Input(path, status.st_size if stat.S_ISREG(status.st_mode) else None)


def _walk(directory: str, on_problem: Callable[[ReadProblem], None], visited: set[tuple[int, int]]) -> Iterator[Input]:
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        on_problem(ReadProblem(Origin(directory), _os_error(error)))
        return
    for entry in entries:
        try:
            status = entry.stat()  # follows symbolic links
        except OSError as error:
            on_problem(ReadProblem(Origin(entry.path), _os_error(error)))
            continue
        if stat.S_ISDIR(status.st_mode):
            key = (status.st_dev, status.st_ino)
            if key in visited:
                continue  # a symbolic link back up the tree
            yield from _walk(entry.path, on_problem, visited | {key})
        elif stat.S_ISREG(status.st_mode):
            yield Input(entry.path, status.st_size)


def _os_error(error: OSError) -> str:
    return error.strerror or str(error)


def _ignore(_problem: ReadProblem) -> None:
    pass
