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
"""

from __future__ import annotations

import codecs
import gzip
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO

from shellwatch.sources.archives import tar_members, zip_members
from shellwatch.sources.csv_records import read_csv
from shellwatch.sources.event_xml import read_event_xml
from shellwatch.sources.evtx_file import RecordClaim, read_evtx
from shellwatch.sources.inputs import STDIN, Input, iter_inputs, list_inputs
from shellwatch.sources.json_records import read_json
from shellwatch.sources.record import Origin, RawRecord, ReadProblem
from shellwatch.sources.sniff import Sniffed, sniff
from shellwatch.sources.streams import as_utf8, peek, spool

__all__ = ["Input", "list_inputs", "read_paths"]

ProblemSink = Callable[[ReadProblem], None]

MAX_NESTING = 4
"""Archives inside archives are opened this deep at most (a .gz in a .zip is 2)."""

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
    try:
        stream = open(item.path, "rb")  # noqa: SIM115 -- closed below, after the generator is done with it
    except OSError as error:
        on_problem(ReadProblem(Origin(item.path), f"cannot open: {error.strerror or error}"))
        return
    with stream:
        yield from _read_stream(stream, item.path, item.path, on_problem, 0, claim)


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
