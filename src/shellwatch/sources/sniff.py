"""Which reader an input needs, decided from its first bytes (magic numbers, byte order marks, the first
non-space characters), never from its name alone: logs are renamed, exported without extensions, or piped in.

Text is Windows event XML when it opens with markup, JSON when it opens an object or array, and CSV when its
first line is a header row: two or more comma-separated column names (letters, digits, ``_``, spaces, dots,
each optionally in double quotes), as Microsoft Defender's Advanced Hunting, Sentinel and spreadsheet exports
write it. Anything else is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Format = Literal["evtx", "gzip", "zip", "tar", "xml", "json", "csv", "empty", "unknown"]

EVTX_FILE_MAGIC = b"ElfFile\x00"
EVTX_CHUNK_MAGIC = b"ElfChnk\x00"
_EVTX_FIRST_CHUNK_OFFSET = 4096
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record
_TAR_MAGIC_OFFSET = 257
_TAR_MAGIC = b"ustar"

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_TEXT_WHITESPACE = " \t\r\n\ufeff"
# The Event Viewer's XML view marks every element it can fold with "- " (unfolded) or "+ " (folded).
_EVENT_VIEWER_MARKERS = ("- <", "+ <")
# Characters a CSV column name may hold besides letters and digits. Free text with a comma ("Hello, world!")
# fails on its punctuation; a log line on its colons, slashes or brackets.
_COLUMN_NAME_EXTRAS = frozenset("_ .")


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What an input's first bytes say it is; for text, its encoding and the length of its byte order mark."""

    format: Format
    encoding: str = "utf-8"
    bom_length: int = 0


def sniff(head: bytes) -> Sniffed:
    """Classify an input by its first bytes (as many as :data:`~shellwatch.sources.streams.PEEK_SIZE`)."""
    if not head:
        return Sniffed("empty")
    if head.startswith(EVTX_FILE_MAGIC):
        return Sniffed("evtx")
    if head.startswith(_GZIP_MAGIC):
        return Sniffed("gzip")
    if head.startswith(_ZIP_MAGICS):
        return Sniffed("zip")
    if head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + len(_TAR_MAGIC)] == _TAR_MAGIC:
        return Sniffed("tar")
    # An EVTX file whose file header was overwritten still has its chunks; the reader can rebuild the header.
    if head[_EVTX_FIRST_CHUNK_OFFSET : _EVTX_FIRST_CHUNK_OFFSET + len(EVTX_CHUNK_MAGIC)] == EVTX_CHUNK_MAGIC:
        return Sniffed("evtx")
    return _sniff_text(head)


def _sniff_text(head: bytes) -> Sniffed:
    encoding, bom_length = _text_encoding(head)
    body = head[bom_length:]
    if encoding == "utf-8" and b"\x00" in body:
        return Sniffed("unknown")  # binary: text formats never hold NUL bytes
    # The head may end inside a multi-byte character; decoding leniently is enough to see the first
    # characters.
    text = body.decode(encoding, errors="replace").lstrip(_TEXT_WHITESPACE)
    if text.startswith("<") or text.startswith(_EVENT_VIEWER_MARKERS):
        return Sniffed("xml", encoding, bom_length)
    if _looks_like_json(text):
        return Sniffed("json", encoding, bom_length)
    if not text:
        return Sniffed("empty")
    if _looks_like_csv_header(text):
        return Sniffed("csv", encoding, bom_length)
    return Sniffed("unknown")


def _looks_like_json(text: str) -> bool:
    # "{" must open an object ("{" then a key or "}"), "[" an array of values; TOML tables ("[metadata]") and
    # INI sections start with "[" too.
    opener, rest = text[:1], text[1:].lstrip(_TEXT_WHITESPACE)
    if opener == "{":
        return rest[:1] in ('"', "}", "")
    if opener == "[":
        return rest[:1] in ("{", "[", "]", '"', "-", "t", "f", "n", "") or rest[:1].isdigit()
    return False


def _looks_like_csv_header(text: str) -> bool:
    # The head may end inside the header row; a row cut short still shows its first column names.
    names = text.split("\n", 1)[0].rstrip("\r").split(",")
    return len(names) >= 2 and all(_is_column_name(name) for name in names)


def _is_column_name(text: str) -> bool:
    name = text.strip(" \t")
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        name = name[1:-1]
    has_word = False
    for char in name:
        if char.isalnum() or char == "_":
            has_word = True
        elif char not in _COLUMN_NAME_EXTRAS:
            return False
    return has_word


def _text_encoding(head: bytes) -> tuple[str, int]:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, len(bom)
    # UTF-16 without a byte order mark: ASCII markup alternates with NUL bytes.
    if len(head) >= 2 and head[0] != 0 and head[1] == 0:
        return "utf-16-le", 0
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be", 0
    return "utf-8", 0
