"""Files, archives and streams in, raw records out: the one entry point of the readers.

:func:`read_paths` walks the inputs (:mod:`shellwatch.sources.inputs`), recognizes each by content
(:mod:`shellwatch.sources.sniff`), unwraps gzip, zip and tar on the fly, and hands the content to the reader
of its format: EVTX (:mod:`~shellwatch.sources.evtx_file`), Windows event XML
(:mod:`~shellwatch.sources.event_xml`), JSON (:mod:`~shellwatch.sources.json_records`) or CSV with a header
row (:mod:`~shellwatch.sources.csv_records`). Every problem is
reported through ``on_problem`` with the input and position it concerns, and reading goes on with the next
record, member or input.

Record order: inputs in :func:`~shellwatch.sources.inputs.list_inputs` order, zip members by name, tar members
in archive order, records in file order (records an EVTX file gives up only after repair of a damaged chunk
come after the file's other records).

A large JSON lines file can be read in pieces by several processes (:func:`split_json_lines`): the pieces, read
one after the other, give exactly the records and problems, with the same line numbers, that reading the whole
file gives.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import orjson

from shellwatch.sources.archives import tar_members, zip_members
from shellwatch.sources.csv_records import read_csv
from shellwatch.sources.event_xml import read_event_xml
from shellwatch.sources.evtx_file import RecordClaim, read_evtx
from shellwatch.sources.inputs import STDIN, Input, iter_inputs, list_inputs
from shellwatch.sources.json_records import read_json
from shellwatch.sources.record import Origin, RawRecord, ReadProblem
from shellwatch.sources.sniff import Sniffed, sniff
from shellwatch.sources.streams import PEEK_SIZE, as_utf8, peek, spool

__all__ = ["Input", "list_inputs", "read_input", "read_paths", "split_json_lines"]

ProblemSink = Callable[[ReadProblem], None]

MAX_NESTING = 4
"""Archives inside archives are opened this deep at most (a .gz in a .zip is 2)."""

SPLIT_MIN_BYTES = 32 << 20
"""A JSON lines file is read in pieces from this size on..."""
SPLIT_PIECE_BYTES = 16 << 20
"""... of about this many bytes each (cut at the first line end from there on)."""
SPLIT_SAMPLE_LINES = 64
"""Lines of a file's head that must all be whole JSON documents the caller accepts for it to be split..."""
SPLIT_SAMPLE_BYTES = 1 << 20
"""... read from at most this many bytes of its head."""
_COUNT_BLOCK = 8 << 20
_RANGE_BUFFER = 1 << 20

_XML_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def read_paths(paths: Sequence[str], *, on_problem: Callable[[ReadProblem], None]) -> Iterator[RawRecord]:
    """Every record in the files, directories (walked recursively, sorted) and ``-`` (stdin) named by
    ``paths``.

    Formats are recognized by content: EVTX, gzip, zip, tar, Windows event XML, JSON / NDJSON. Members of
    archives are named ``archive.zip!member/path``. A problem (unreadable input, unrecognized format, damaged
    record, malformed line...) is passed to ``on_problem`` and reading goes on; nothing is raised for bad
    input.
    """
    for item in iter_inputs(paths, on_problem):
        yield from read_input(item, on_problem)


def read_input(item: Input, on_problem: ProblemSink, *, claim: RecordClaim | None = None) -> Iterator[RawRecord]:
    """Every record of one listed input; ``claim`` is offered the JSON text of each EVTX record first and takes
    the records it returns True for out of the yield (:data:`~shellwatch.sources.evtx_file.RecordClaim`)."""
    if item.path == STDIN:
        yield from _read_stream(sys.stdin.buffer, STDIN, None, on_problem, 0, claim)
        return
    if item.whole and item.size is not None and _POSITIONAL_READS:
        yield from _read_file(item.path, on_problem, claim)
        return
    try:
        stream = open(item.path, "rb")  # noqa: SIM115 -- closed below, after the generator is done with it
    except OSError as error:
        on_problem(ReadProblem(Origin(item.path), f"cannot open: {error.strerror or error}"))
        return
    with stream:
        if item.whole:
            yield from _read_stream(stream, item.path, item.path, on_problem, 0, claim)
        else:
            yield from _read_piece(stream, item, on_problem, claim)


_POSITIONAL_READS = hasattr(os, "pread")


def _read_file(path: str, on_problem: ProblemSink, claim: RecordClaim | None) -> Iterator[RawRecord]:
    """The records of a whole regular file. Its head is read by position from a bare descriptor; an EVTX file is
    then read by the parser from its path and checked through the same descriptor, without a buffered file object
    (most EVTX files hold a few dozen records: what is spent per file counts). Other formats get a buffered
    stream over the descriptor."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        on_problem(ReadProblem(Origin(path), f"cannot open: {error.strerror or error}"))
        return
    try:
        head = _head(descriptor)
        if sniff(head).format == "evtx":
            yield from read_evtx(path, path, on_problem, opened=descriptor, head=head, claim=claim)
            return
        with open(descriptor, "rb", closefd=False) as stream:
            yield from _read_stream(stream, path, path, on_problem, 0, claim)
    except Exception as error:  # an I/O error: report, go on
        on_problem(ReadProblem(Origin(path), f"read error: {type(error).__name__}: {error}"))
    finally:
        os.close(descriptor)


def _head(descriptor: int) -> bytes:
    """The first :data:`~shellwatch.sources.streams.PEEK_SIZE` bytes of a file (fewer at its end)."""
    parts: list[bytes] = []
    offset = 0
    while offset < PEEK_SIZE:
        data = os.pread(descriptor, PEEK_SIZE - offset, offset)
        if not data:
            break
        parts.append(data)
        offset += len(data)
    return b"".join(parts)


def _read_piece(
    stream: IO[bytes], item: Input, on_problem: ProblemSink, claim: RecordClaim | None
) -> Iterator[RawRecord]:
    """The records of a piece of a JSON lines file (see :func:`split_json_lines`)."""
    try:
        stream.seek(item.start)
        piece: IO[bytes] = stream
        if item.end is not None:
            piece = io.BufferedReader(_ByteRange(stream, item.end - item.start), buffer_size=_RANGE_BUFFER)
        if item.start == 0:
            # The head piece: recognized (byte order mark, encoding) exactly as the whole file would be.
            yield from _read_stream(piece, item.path, None, on_problem, 0, claim)
            return
        # The head piece had records (the split was decided on them): no giving up on this one.
        yield from read_json(piece, item.path, on_problem, first_line=item.first_line, records_before=True)
    except Exception as error:  # an I/O error: report, go on
        on_problem(ReadProblem(Origin(item.path), f"read error: {type(error).__name__}: {error}"))


class _ByteRange(io.RawIOBase):
    """At most ``length`` bytes of a stream, from its current position."""

    def __init__(self, stream: IO[bytes], length: int) -> None:
        super().__init__()
        self._stream = stream
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)
        wanted = min(len(view), self._left)
        data = self._stream.read(wanted)
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)


def split_json_lines(item: Input, accepts: Callable[[dict[str, Any]], bool]) -> list[Input]:
    """``item`` in pieces for several processes to read, or ``[item]`` when it is not to be split.

    A file is split when it is at least :data:`SPLIT_MIN_BYTES` and its head reads as JSON lines: UTF-8, and every
    non-blank line among the first :data:`SPLIT_SAMPLE_LINES` (within :data:`SPLIT_SAMPLE_BYTES`) a whole JSON
    object, not a batch of records nor a raw Windows event, that ``accepts`` (the caller's judgement that reading
    it needs nothing remembered from earlier records). Pieces of about :data:`SPLIT_PIECE_BYTES` are cut just after
    a line end, numbered by counting the line ends before them; the last piece reads to the end of the file, so a
    file that grew is read as far as the whole file would be.

    Only the head is sampled: a file whose later lines are pretty-printed values spanning a cut, or records of a
    source that remembers earlier ones, is read with the piece boundaries as input boundaries.
    """
    if item.path == STDIN or not item.whole or item.size is None or item.size < SPLIT_MIN_BYTES:
        return [item]
    try:
        with open(item.path, "rb") as stream:
            if not _head_is_json_lines(stream.read(SPLIT_SAMPLE_BYTES), accepts):
                return [item]
            stream.seek(0)
            cuts = _line_cuts(stream, item.size)
    except OSError:
        return [item]  # the whole-file read reports it
    if not cuts:
        return [item]
    pieces: list[Input] = []
    start, first_line = 0, 1
    for cut, line_after in cuts:
        pieces.append(Input(item.path, cut - start, start, cut, first_line))
        start, first_line = cut, line_after
    pieces.append(Input(item.path, item.size - start, start, None, first_line))
    return pieces


def _head_is_json_lines(head: bytes, accepts: Callable[[dict[str, Any]], bool]) -> bool:
    sniffed = sniff(head)
    if sniffed.format != "json" or codecs.lookup(sniffed.encoding).name != "utf-8":
        return False
    lines = head[sniffed.bom_length :].split(b"\n")
    if len(head) == SPLIT_SAMPLE_BYTES:
        lines.pop()  # cut short by the sample's end
    documents = 0
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(document, dict) or "records" in document or "Event" in document:
            return False
        if not accepts(document):
            return False
        documents += 1
        if documents >= SPLIT_SAMPLE_LINES:
            break
    return documents > 0


def _line_cuts(stream: IO[bytes], size: int) -> list[tuple[int, int]]:
    """Where pieces end (just after a line end, before ``size``) and the file line number that follows each."""
    cuts: list[tuple[int, int]] = []
    target = SPLIT_PIECE_BYTES
    position = 0
    lines = 0
    while position < size:
        block = stream.read(min(_COUNT_BLOCK, size - position))
        if not block:
            break
        block_end = position + len(block)
        while target < block_end:
            newline = block.find(b"\n", max(target - position, 0))
            if newline < 0:
                break  # the cut falls in a later block
            cut = position + newline + 1
            if cut >= size:
                return cuts
            cuts.append((cut, lines + block.count(b"\n", 0, newline + 1) + 1))
            target = cut + SPLIT_PIECE_BYTES
        lines += block.count(b"\n")
        position = block_end
    return cuts


def _read_stream(
    stream: IO[bytes],
    display: str,
    file_path: str | None,
    on_problem: ProblemSink,
    nesting: int,
    claim: RecordClaim | None = None,
) -> Iterator[RawRecord]:
    """Records of one stream; ``file_path`` is set when the stream is that file on disk (EVTX and zip then
    read the file directly instead of a copy)."""
    try:
        head, stream = peek(stream)
        sniffed = sniff(head)
        if sniffed.format in ("gzip", "zip", "tar") and nesting >= MAX_NESTING:
            on_problem(ReadProblem(Origin(display), f"archive nested more than {MAX_NESTING} deep; skipped"))
            return
        if sniffed.format == "evtx":
            if file_path is not None:
                # The parser reads the file by its path; the chunk-header check reuses this open stream.
                opened = stream if stream.seekable() else None
                yield from read_evtx(file_path, display, on_problem, opened=opened, claim=claim)
            else:
                yield from _read_evtx_copy(stream, display, on_problem, claim)
        elif sniffed.format == "gzip":
            with gzip.GzipFile(fileobj=stream, mode="rb") as inner:
                yield from _read_stream(inner, display, None, on_problem, nesting + 1, claim)  # type: ignore[arg-type]
        elif sniffed.format == "zip":
            yield from _read_zip(stream, display, file_path, on_problem, nesting, claim)
        elif sniffed.format == "tar":
            for name, member in tar_members(stream):
                yield from _read_stream(member, f"{display}!{name}", None, on_problem, nesting + 1, claim)
        elif sniffed.format == "xml":
            yield from read_event_xml(_xml_text(stream, sniffed, head), display, on_problem)
        elif sniffed.format == "json":
            yield from read_json(as_utf8(stream, sniffed.encoding, sniffed.bom_length), display, on_problem)
        elif sniffed.format == "csv":
            yield from read_csv(as_utf8(stream, sniffed.encoding, sniffed.bom_length), display, on_problem)
        elif sniffed.format == "empty":
            on_problem(ReadProblem(Origin(display), "empty input"))
        else:
            reason = "unrecognized format (not EVTX, event XML, JSON, CSV or an archive)"
            on_problem(ReadProblem(Origin(display), reason))
    except Exception as error:  # a corrupt archive, a truncated gzip stream, an I/O error: report, go on
        on_problem(ReadProblem(Origin(display), f"read error: {type(error).__name__}: {error}"))


def _read_evtx_copy(
    stream: IO[bytes], display: str, on_problem: ProblemSink, claim: RecordClaim | None
) -> Iterator[RawRecord]:
    # The parser needs a file it can seek in: a stream (gzip member, stdin) is copied to one first.
    with spool(stream) as copy:
        yield from read_evtx(copy, display, on_problem, claim=claim)


def _read_zip(
    stream: IO[bytes],
    display: str,
    file_path: str | None,
    on_problem: ProblemSink,
    nesting: int,
    claim: RecordClaim | None,
) -> Iterator[RawRecord]:
    if file_path is not None:
        yield from _read_zip_members(file_path, display, on_problem, nesting, claim)
        return
    # zip's index is at its end: a one-way stream is copied to a seekable file first.
    with spool(stream) as copy:
        yield from _read_zip_members(copy, display, on_problem, nesting, claim)


def _read_zip_members(
    archive_file: str | IO[bytes], display: str, on_problem: ProblemSink, nesting: int, claim: RecordClaim | None
) -> Iterator[RawRecord]:
    for name, archive, member in zip_members(archive_file):
        member_display = f"{display}!{name}"
        try:
            opened = archive.open(member)
        except Exception as error:  # encrypted, unsupported compression: this member only
            on_problem(ReadProblem(Origin(member_display), f"cannot open archive member: {error}"))
            continue
        with opened:
            yield from _read_stream(opened, member_display, None, on_problem, nesting + 1, claim)


def _xml_text(stream: IO[bytes], sniffed: Sniffed, head: bytes) -> IO[bytes]:
    encoding = sniffed.encoding
    if encoding == "utf-8" and not sniffed.bom_length:
        # Without a byte order mark, an XML declaration may name the encoding (e.g. windows-1252 exports).
        declared = _XML_DECLARED_ENCODING.match(head)
        if declared is not None:
            encoding = _known_codec(declared.group(1).decode("ascii"), default=encoding)
    return as_utf8(stream, encoding, sniffed.bom_length)


def _known_codec(name: str, default: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return default
    # A UTF-16 declaration without a byte order mark or NUL pattern is wrong: the bytes are ASCII-compatible.
    return default if codec.startswith("utf-16") or codec.startswith("utf-32") else codec
