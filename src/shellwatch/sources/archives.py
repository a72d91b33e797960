"""The members of archives, as named binary streams: zip (``archive.zip!member/path``) and tar, plain or
compressed (``archive.tar.gz!member``). Members are read one at a time, never extracted to disk."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterator
from typing import IO


def zip_members(archive: str | IO[bytes]) -> Iterator[tuple[str, zipfile.ZipFile, zipfile.ZipInfo]]:
    """``(member name, archive, member)`` for every file in a zip archive, sorted by name.

    ``archive`` is a path or a seekable file (zip's index is at its end).
    """
    with zipfile.ZipFile(archive) as opened:
        for member in sorted(opened.infolist(), key=lambda info: info.filename):
            if not member.is_dir():
                yield member.filename, opened, member


def tar_members(stream: IO[bytes]) -> Iterator[tuple[str, IO[bytes]]]:
    """``(member name, stream)`` for every regular file in a tar stream, in archive order (a one-way stream
    cannot be sorted without holding it), each stream valid until the next member is asked for."""
    with tarfile.open(fileobj=stream, mode="r|") as opened:
        for member in opened:
            if not member.isfile():
                continue
            content = opened.extractfile(member)
            if content is not None:
                yield member.name, content
