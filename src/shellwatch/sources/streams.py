"""Byte streams shared by the readers: looking at a stream's first bytes without consuming them, re-encoding
UTF-16 text to UTF-8, and copying a one-way stream to a seekable temporary file.

Every reader works on buffered binary streams (``io.BufferedIOBase``: ``read(n)`` and ``readline(limit)``),
whatever the input was: a file, stdin, a gzip stream, an archive member.
"""

from __future__ import annotations

import codecs
import io
import shutil
import tempfile
from typing import IO

PEEK_SIZE = 8192
"""How many leading bytes the format sniffer sees: enough for an EVTX file header (4096 bytes) and the magic
of the first chunk behind it, so a file whose header is damaged is still recognized by its first chunk."""

_READ_BLOCK = 1 << 20


class _PrefixedRaw(io.RawIOBase):
    """Serves bytes already read from a stream, then the rest of that stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        data = self._rest.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        return count


def peek(stream: IO[bytes], size: int = PEEK_SIZE) -> tuple[bytes, IO[bytes]]:
    """The first ``size`` bytes of ``stream`` (fewer at its end) and a stream that still yields them.

    A seekable stream is rewound; a one-way stream (stdin, a decompressor) is wrapped so the bytes are served
    again.
    """
    seekable = _is_seekable(stream)
    head = _read_up_to(stream, size)
    if seekable:
        stream.seek(0)
        return head, stream
    return head, io.BufferedReader(_PrefixedRaw(head, stream), buffer_size=_READ_BLOCK)


def _is_seekable(stream: IO[bytes]) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, OSError):
        return False  # a tar member over a one-way stream asks a stream that does not know


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    # A pipe or decompressor may return short reads before its end.
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        data = stream.read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts)


class _Utf8TranscodedRaw(io.RawIOBase):
    """Text in another encoding (its byte order mark already skipped) re-encoded to UTF-8, block by block.

    Undecodable bytes, and the unpaired surrogates Windows strings may hold, become U+FFFD rather than
    stopping the read.
    """

    def __init__(self, source: IO[bytes], encoding: str) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            block = self._source.read(_READ_BLOCK)
            final = not block
            self._pending = self._decoder.decode(block, final=final).encode("utf-8", "replace")
            self._done = final
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def as_utf8(stream: IO[bytes], encoding: str, bom_length: int) -> IO[bytes]:
    """The text in ``stream`` as UTF-8 bytes, without its byte order mark.

    ``encoding`` is a codec Python knows (``utf-8``, ``utf-16-le``, ``windows-1252``, ...). UTF-8 passes
    through untouched: invalid bytes there are left for the reader to report with their position.
    """
    if bom_length:
        stream.read(bom_length)
    if codecs.lookup(encoding).name == "utf-8":
        return stream
    return io.BufferedReader(_Utf8TranscodedRaw(stream, encoding), buffer_size=_READ_BLOCK)


def spool(stream: IO[bytes]) -> IO[bytes]:
    """A seekable copy of a one-way stream in an anonymous temporary file (deleted when closed).

    EVTX and zip need random access; a member of an archive or stdin does not offer it.
    """
    copy = tempfile.TemporaryFile()  # noqa: SIM115 -- the caller owns and closes it
    shutil.copyfileobj(stream, copy, _READ_BLOCK)
    copy.seek(0)
    return copy
