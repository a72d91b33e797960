"""A Windows event given as XML, rendered as the dict the evtx package's JSON rendering gives for the same
event, so normalizers see one shape (RecordShape ``windows_event``) whether the event came from an .evtx file
or from XML.

The rules are those of evtx's JSON renderer (omerbenamram/evtx ``src/binxml/ir_json.rs``):

* the root element becomes ``{"Event": value}``; an element without child elements, text or non-empty
  attributes is ``null``; one with only text is that text as a scalar; otherwise an object with
  ``#attributes`` (attributes with a non-empty value only), ``#text`` (its text) and one key per child
  element;
* repeated child names get suffixes: ``Header``, ``Header_1``, ``Header_2`` (counted for the first 64 distinct
  names);
* inside ``EventData`` and ``UserData``: when some ``<Data>`` has a non-empty ``Name``, every named ``<Data>``
  becomes ``"Name": value`` (``""`` when empty) and unnamed ones are dropped; otherwise all ``<Data>``
  together become ``"Data": {"#text": value}`` (a list when there are several).

XML carries no value types, BinXML does: evtx writes integers and booleans as JSON numbers and booleans, and
everything else as strings. Here a value is an integer when it is written as a canonical decimal integer that
fits in 64 bits, and a boolean when it is ``true`` or ``false``. Windows' own XML rendering differs from
evtx's in two ways this module undoes: GUIDs come in braces (``{5770385F-...}``; evtx writes them bare) and
FILETIMEs carry seven to nine fractional digits (evtx writes six, i.e. microseconds).

Unavoidable differences (from the types XML lacks): a string-typed value that looks like an integer or a
boolean (e.g. Security 4624 ``IpPort`` ``"49832"``) becomes a number or a boolean; an uppercase braced GUID
stored as a string loses its braces; a value made only of whitespace with a line break is taken for layout and
dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_DATA_CONTAINERS = frozenset({"EventData", "UserData"})
_MAX_SUFFIXED_NAMES = 64
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,19})")
_INTEGER_RANGE = range(-(2**63), 2**64)
_BRACED_GUID = re.compile(r"\{([0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12})\}")
_LONG_FRACTION_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})\d{1,3}Z")


@dataclass(slots=True)
class XmlElement:
    """An XML element as parsed, names and attributes exactly as written (``xmlns`` declarations included)."""

    name: str
    attributes: dict[str, str]
    children: list[XmlElement | str] = field(default_factory=list)


def render_event(root: XmlElement) -> dict[str, Any]:
    """The evtx JSON rendering of an ``<Event>`` element."""
    return {root.name: _element_value(root, in_data_container=False)}


def scalar(text: str) -> Any:
    """A text value as evtx would type it: see the module docstring."""
    if _INTEGER.fullmatch(text):
        number = int(text)
        if number in _INTEGER_RANGE:
            return number
        return text
    if text == "true":
        return True
    if text == "false":
        return False
    guid = _BRACED_GUID.fullmatch(text)
    if guid is not None:
        return guid.group(1)
    long_time = _LONG_FRACTION_TIME.fullmatch(text)
    if long_time is not None:
        return long_time.group(1) + "Z"
    return text


def _is_layout(text: str) -> bool:
    # Indentation between tags (and inside empty elements, as evtx's own XML writes them); BinXML has none.
    return "\n" in text and text.isspace()


def _text(element: XmlElement) -> str | None:
    parts = [child for child in element.children if isinstance(child, str)]
    if not parts:
        return None
    if len(parts) != len(element.children):
        parts = [part for part in parts if not _is_layout(part)]
    text = "".join(parts)
    if not text or _is_layout(text):
        return None
    return text


def _has_child_elements(element: XmlElement) -> bool:
    return any(not isinstance(child, str) for child in element.children)


def _element_value(element: XmlElement, in_data_container: bool) -> Any:
    text = _text(element)
    has_attributes = any(element.attributes.values())
    if not _has_child_elements(element):
        if text is None and not has_attributes:
            return None
        if not has_attributes:
            return scalar(text) if text is not None else None
    return _element_object(element, in_data_container, text)


def _element_object(element: XmlElement, in_data_container: bool, text: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attributes = {name: scalar(value) for name, value in element.attributes.items() if value}
    if attributes:
        out["#attributes"] = attributes
    if text is not None:
        out["#text"] = scalar(text)
    children = [child for child in element.children if not isinstance(child, str)]
    named_data = in_data_container and any(child.name == "Data" and child.attributes.get("Name") for child in children)
    data_elements = [child for child in children if child.name == "Data"] if in_data_container else []
    positional_done = False
    seen_names: dict[str, int] = {}
    for child in children:
        if in_data_container and child.name == "Data":
            if named_data:
                name = child.attributes.get("Name")
                if name:
                    out[name] = _data_value(child)
            elif not positional_done:
                positional_done = True
                values = [_data_value(data) for data in data_elements]
                out["Data"] = {"#text": values[0] if len(values) == 1 else values}
            continue
        out[_suffixed(child.name, seen_names)] = _element_value(child, child.name in _DATA_CONTAINERS)
    return out


def _suffixed(name: str, seen_names: dict[str, int]) -> str:
    count = seen_names.get(name)
    if count is None:
        if len(seen_names) < _MAX_SUFFIXED_NAMES:
            seen_names[name] = 1
        return name
    seen_names[name] = count + 1
    return f"{name}_{count}"


def _data_value(element: XmlElement) -> Any:
    text = _text(element)
    if _has_child_elements(element):
        return _element_object(element, in_data_container=False, text=text)
    if text is None:
        return ""
    return scalar(text)
