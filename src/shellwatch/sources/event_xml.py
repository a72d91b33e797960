"""Windows event XML in, raw Windows event records out.

Accepted layouts: one ``<Event>``; many back to back as ``wevtutil qe`` prints them (no root element); wrapped
in ``<Events>``; the Event Viewer's "XML view" copy, whose lines start with ``- `` or ``+ `` fold markers.
Text is UTF-8 (the stream handed in has been re-encoded already when it was UTF-16 or declared another
encoding).

Each ``<Event>...</Event>`` is cut out of the byte stream first and parsed on its own, so one malformed event
is reported and skipped while the others are read, and memory is bounded by :data:`MAX_EVENT_BYTES`. Parsing
is safe against hostile input, as defusedxml does it (https://github.com/tiran/defusedxml,
``DefusedXMLParser``): no DTD (and so no entity declarations, no billion laughs, no external entities fetched:
expat reports an undefined entity instead), external references refused, nesting depth bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import IO
from xml.parsers import expat

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from shellwatch.sources.evtx_json_shape import XmlElement, render_event
from shellwatch.sources.record import Origin, RawRecord, ReadProblem

ProblemSink = Callable[[ReadProblem], None]

MAX_EVENT_BYTES = 8 << 20
"""An event larger than this is reported and skipped; real ones are a few KiB (EVTX records are < 64 KiB)."""

_MAX_DEPTH = 64
_READ_BLOCK = 1 << 20
_EVENT_START = re.compile(rb"<Event(?=[\s/>])")
_EVENT_END = re.compile(rb"</Event\s*>")
_TAG_OVERLAP = 16
"""Bytes kept from the end of a block so a tag split across two blocks is still found."""
_FOLD_MARKER = re.compile(rb"(?m)^([ \t]*)[-+] (?=<)")
# A carriage return in element text: followed by text up to the next tag, not by the end of a tag.
_TEXT_CARRIAGE_RETURN = re.compile(rb"\r(?=[^<>]*<)")
# C0 controls other than tab, line feed and carriage return: not allowed in XML 1.0, even as references, yet
# Windows writes them into event XML when a value holds them (and an attacker can put one in a command line).
_XML_ILLEGAL_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_STAND_IN = 0xFDD0
"""Controls are parsed as the noncharacters U+FDD0 + code (never used in interchange), then restored."""
_RESTORE_CONTROLS = {_CONTROL_STAND_IN + code: code for code in range(0x20)}


def read_event_xml(stream: IO[bytes], display: str, on_problem: ProblemSink) -> Iterator[RawRecord]:
    """Every ``<Event>`` in a UTF-8 XML stream as an evtx-shaped record, with the line it starts on."""
    found = False
    for line, fragment in _EventSplitter(stream, display, on_problem).fragments():
        found = True
        try:
            root = _parse_lenient_utf8(fragment, Origin(display, line=line), on_problem)
        except _REFUSED as error:
            reason = f"malformed event XML: {_describe(error, line)}"
            on_problem(ReadProblem(Origin(display, line=line), reason))
            continue
        yield RawRecord(render_event(root), "windows_event", Origin(display, line=line))
    if not found:
        on_problem(ReadProblem(Origin(display), "XML without any Windows <Event> element"))


_REFUSED = (expat.ExpatError, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden, ValueError)


def _parse_lenient_utf8(fragment: bytes, origin: Origin, on_problem: ProblemSink) -> XmlElement:
    """Parse a fragment; invalid UTF-8 (which expat refuses) is replaced by U+FFFD and reported, so that a
    stray byte cannot hide an event."""
    try:
        return parse_fragment(fragment)
    except expat.ExpatError:
        try:
            fragment.decode("utf-8")
        except UnicodeDecodeError:
            root = parse_fragment(fragment.decode("utf-8", "replace").encode("utf-8"))
            on_problem(ReadProblem(origin, "invalid UTF-8 bytes replaced by U+FFFD"))
            return root
        raise


def _describe(error: Exception, first_line: int) -> str:
    if isinstance(error, expat.ExpatError):
        # Expat counts lines from the fragment's start; report them as lines of the file.
        return f"{expat.errors.messages.get(error.code, str(error))} (line {first_line + error.lineno - 1})"
    if isinstance(error, DTDForbidden | EntitiesForbidden | ExternalReferenceForbidden):
        return f"{type(error).__name__}: DTDs, entity declarations and external references are refused"
    return str(error)


def parse_fragment(fragment: bytes) -> XmlElement:
    """Parse one ``<Event>`` element (UTF-8 bytes) into an element tree, refusing DTDs, entities and deep
    nesting.

    Fold markers of the Event Viewer's XML view (``- <System>``) are removed first. Unlike a plain XML parser,
    this keeps carriage returns in element text (XML would turn CR LF into LF; the event's value, as evtx
    reads it from an .evtx file, has CR LF) and control characters XML 1.0 does not allow.
    """
    if b"- <" in fragment or b"+ <" in fragment:
        fragment = _FOLD_MARKER.sub(rb"\1", fragment)
    if b"\r" in fragment:
        fragment = _TEXT_CARRIAGE_RETURN.sub(b"&#13;", fragment)
    has_controls = _XML_ILLEGAL_CONTROL.search(fragment) is not None
    if has_controls:
        fragment = _XML_ILLEGAL_CONTROL.sub(_control_stand_in, fragment)
    parser = expat.ParserCreate(encoding="utf-8")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_unparsed_entity
    parser.ExternalEntityRefHandler = _refuse_external_reference
    stack: list[XmlElement] = []
    roots: list[XmlElement] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        if len(stack) >= _MAX_DEPTH:
            raise ValueError(f"elements nested deeper than {_MAX_DEPTH} levels")
        if has_controls:
            attributes = {key: value.translate(_RESTORE_CONTROLS) for key, value in attributes.items()}
        element = XmlElement(name, attributes)
        if stack:
            stack[-1].children.append(element)
        else:
            roots.append(element)
        stack.append(element)

    def end(_name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].children.append(data.translate(_RESTORE_CONTROLS) if has_controls else data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.Parse(fragment, True)
    return roots[0]


def _control_stand_in(match: re.Match[bytes]) -> bytes:
    return chr(_CONTROL_STAND_IN + match[0][0]).encode("utf-8")


def _refuse_doctype(name: str, system_id: str | None, public_id: str | None, _internal: bool) -> None:
    raise DTDForbidden(name, system_id, public_id)


def _refuse_entity(
    name: str,
    _is_parameter: bool,
    value: str | None,
    base: str | None,
    system_id: str | None,
    public_id: str | None,
    notation: str | None,
) -> None:
    raise EntitiesForbidden(name, value, base, system_id, public_id, notation)


def _refuse_unparsed_entity(
    name: str, base: str | None, system_id: str | None, public_id: str | None, notation: str | None
) -> None:
    raise EntitiesForbidden(name, None, base, system_id, public_id, notation)


def _refuse_external_reference(context: str, base: str | None, system_id: str | None, public_id: str | None) -> int:
    raise ExternalReferenceForbidden(context, base, system_id, public_id)


class _EventSplitter:
    """Cuts ``<Event>...</Event>`` fragments out of a byte stream read block by block.

    The buffer holds the current block (plus the event being cut, when it spans blocks); bytes before the
    current position are dropped only when more input is needed, and line numbers are counted as the position
    advances.
    """

    def __init__(self, stream: IO[bytes], display: str, on_problem: ProblemSink) -> None:
        self._stream = stream
        self._display = display
        self._on_problem = on_problem
        self._buffer = b""
        self._at_end = False
        self._counted_to = 0
        self._line = 1  # the line of self._buffer[self._counted_to]

    def fragments(self) -> Iterator[tuple[int, bytes]]:
        """``(line, bytes)`` of every event in order; oversized, unterminated events are reported, skipped."""
        position = 0
        while True:
            start = _EVENT_START.search(self._buffer, position)
            if start is None:
                if self._at_end:
                    return
                self._drop_before(max(position, len(self._buffer) - _TAG_OVERLAP))
                position = 0
                self._read_more()
                continue
            line = self._line_at(start.start())
            fragment, position = self._cut_event(start.start(), start.end() - start.start(), line)
            if fragment is not None:
                yield line, fragment

    def _cut_event(self, event_start: int, start_tag_length: int, line: int) -> tuple[bytes | None, int]:
        """The event starting at ``event_start`` (None when skipped), and where to look for the next one."""
        scan = event_start + start_tag_length
        while True:
            end = _EVENT_END.search(self._buffer, scan)
            limit = end.start() if end is not None else len(self._buffer)
            following = _EVENT_START.search(self._buffer, event_start + start_tag_length, limit)
            if following is not None:
                self._problem(line, "unterminated <Event> element; skipped")
                return None, following.start()
            if end is not None:
                return self._buffer[event_start : end.end()], end.end()
            if self._at_end:
                self._problem(line, "unterminated <Event> element at the end of the input; skipped")
                return None, len(self._buffer)
            if len(self._buffer) - event_start > MAX_EVENT_BYTES:
                self._problem(line, f"event larger than {MAX_EVENT_BYTES >> 20} MiB; skipped")
                return None, self._skip_to_event_end(event_start + start_tag_length)
            self._drop_before(event_start)
            event_start = 0
            scan = max(start_tag_length, len(self._buffer) - _TAG_OVERLAP)
            self._read_more()

    def _skip_to_event_end(self, scan: int) -> int:
        """Read past the end of an oversized event without keeping it; where to look for the next event."""
        while True:
            end = _EVENT_END.search(self._buffer, scan)
            limit = end.start() if end is not None else len(self._buffer)
            following = _EVENT_START.search(self._buffer, scan, limit)
            if following is not None:
                return following.start()
            if end is not None:
                return end.end()
            if self._at_end:
                return len(self._buffer)
            self._drop_before(max(scan, len(self._buffer) - _TAG_OVERLAP))
            scan = 0
            self._read_more()

    def _problem(self, line: int, reason: str) -> None:
        self._on_problem(ReadProblem(Origin(self._display, line=line), reason))

    def _line_at(self, position: int) -> int:
        self._line += self._buffer.count(b"\n", self._counted_to, position)
        self._counted_to = position
        return self._line

    def _drop_before(self, position: int) -> None:
        position = max(position, self._counted_to)
        self._line_at(position)
        self._buffer = self._buffer[position:]
        self._counted_to = 0

    def _read_more(self) -> None:
        block = self._stream.read(_READ_BLOCK)
        self._buffer += block
        self._at_end = not block
