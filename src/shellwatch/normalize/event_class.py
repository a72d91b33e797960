"""Event classes: raw Windows events that share a provider, channel and event id, and the fields the normalizers
give every event of a class whatever its data.

A hunt decides its rules once per class with these fields (:mod:`shellwatch.prefilter`): when the fields a class
settles already make every rule false, its events need no normalization at all. That is only sound if the fields
are exactly what :func:`~shellwatch.normalize.windows_event.normalize_windows_event` writes, so they come from the
same code: the provider, channel and event id are read by
:func:`~shellwatch.normalize.windows_event.event_parts`, the fields derived from them by
:func:`~shellwatch.normalize.windows_event.identity_fields` and each provider mapper's ``class_fields``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shellwatch.normalize.providers import mapper_class_fields, mapping_depends_on_channel, mapping_for
from shellwatch.normalize.windows_event import DATA_PREFIXES, SYSTEM_FIELDS, event_parts, identity_fields

_CACHE_LIMIT = 4096
"""Classes kept; a crafted log can name any number of providers and event ids."""


@dataclass(frozen=True, slots=True, eq=False)
class EventClass:
    """The raw Windows events of one provider, channel and event id (compared by identity: one object per
    class while it is cached)."""

    family: str
    """The source family of every event of the class."""
    settled: Mapping[str, Any]
    """Field -> the value every normalized event of the class has (``None``: no event of the class has it)."""
    unmapped: bool
    """No provider mapping runs for the class: an event has no field beyond the System fields, the event and
    user data and those in :attr:`settled`."""

    def value(self, field: str) -> Any:
        """The value every normalized event of the class has for ``field`` (``None``: none has it).

        Raises KeyError when the value depends on the event.
        """
        if field in self.settled:
            return self.settled[field]
        if self.unmapped and field not in SYSTEM_FIELDS and not field.startswith(DATA_PREFIXES):
            return None
        raise KeyError(field)


_CLASSES: dict[tuple[str | None, str | None, str | None], EventClass] = {}
_BY_RENDERED_KEY: dict[tuple[str, str, int], EventClass] = {}
"""Classes by (provider name, channel, integer event id) as evtx renders them, found without event_parts."""


def windows_event_class(document: Mapping[str, Any]) -> EventClass:
    """The class of a raw Windows event (RecordShape ``windows_event``)."""
    # The shape evtx renders, read directly (this runs for every event of a hunt); where it holds, event_parts
    # would read the same provider, channel and event id (the id as its decimal text).
    rendered_key = None
    root = document.get("Event")
    if type(root) is dict:
        system = root.get("System")
        if type(system) is dict:
            provider_element = system.get("Provider")
            if type(provider_element) is dict:
                attributes = provider_element.get("#attributes")
                if type(attributes) is dict:
                    provider = attributes.get("Name")
                    channel = system.get("Channel")
                    event_id = system.get("EventID")
                    if (
                        type(provider) is str
                        and provider
                        and type(channel) is str
                        and channel
                        and type(event_id) is int
                    ):
                        rendered_key = (provider, channel, event_id)
                        found = _BY_RENDERED_KEY.get(rendered_key)
                        if found is not None:
                            return found
    made = _class_of(document)
    if rendered_key is not None:
        if len(_BY_RENDERED_KEY) >= _CACHE_LIMIT:
            _BY_RENDERED_KEY.clear()
        _BY_RENDERED_KEY[rendered_key] = made
    return made


def _make_class(provider: str | None, channel: str | None, code: str | None, channel_known: bool) -> EventClass:
    """The class of (provider, channel, event id); with ``channel_known`` False, of that provider and event id on
    any channel (only for a provider whose mapping does not depend on the channel)."""
    family, mapper = mapping_for(provider, channel)
    settled = identity_fields(provider, channel, code)
    if not channel_known:
        del settled["winlog.channel"]
    unmapped = mapper is None or code is None
    if mapper is not None and code is not None:
        settled.update(mapper_class_fields(mapper, code))
    return EventClass(family, settled, unmapped)


def _class_of(document: Mapping[str, Any]) -> EventClass:
    _, _, _, provider, channel, code = event_parts(document)
    key = (provider, channel, code)
    found = _CLASSES.get(key)
    if found is not None:
        return found
    made = _make_class(provider, channel, code, True)
    if len(_CLASSES) >= _CACHE_LIMIT:
        _CLASSES.clear()
    _CLASSES[key] = made
    return made


# The head of a record as the evtx package renders it to JSON: the root, then System's first two members, the
# provider (its Name first, then plain attributes) and the event id.
_RENDERED_PREFIX = (
    '{"Event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"},'
    '"System":{"Provider":{"#attributes":{"Name":"'
)
PREFIX_LENGTH = len(_RENDERED_PREFIX)
_ID_MARKER = '}},"EventID":'
_RENDERED_PROVIDER_AND_ID = re.compile(
    r'([^"\\]+)"(?:,"(?!Name")[A-Za-z]+":"[^"\\]*")*(\}\},"EventID":)'
    r'(?:(\d{1,5})|\{"#attributes":\{"Qualifiers":\d{1,5}\},"#text":(\d{1,5})\})'
)
"""The provider's name, its other plain attributes, and the event id: a number, or with its qualifiers (as evtx
renders the ids of classic event sources: ``{"#attributes":{"Qualifiers":16384},"#text":7045}``), which the
normalizers do not read."""
KEY_TAIL = len(_ID_MARKER) + 51
"""A key ends this far after the event id marker: room for the id with its qualifiers (Windows event ids and
qualifiers are 16-bit: five digits at most) and the character after it, which shows the id is whole."""
_HEAD_LIMIT = 512
"""Characters of a provider name and its attributes read at most; a longer head is decoded."""
KEY_SEARCH_END = PREFIX_LENGTH + _HEAD_LIMIT
"""Where :func:`rendered_key`'s search for the event id stops (exported, with :data:`PREFIX_LENGTH` and
:data:`KEY_TAIL`, for callers that inline it)."""
_BY_KEY: dict[str, EventClass | None] = {}


def rendered_event_class(text: str) -> EventClass | None:
    """The class of a raw Windows event given as the JSON text evtx renders, read without decoding the event, with
    the channel left unsettled; None when the text does not show the provider and event id plainly (decode the
    event and ask :func:`windows_event_class`), or when the provider's mapping depends on the channel.

    Only the head of the text is read: a prefix, then the provider's name and the event id as System's first two
    members, every string in between plain (no escapes), so that they are System's own members and not text
    inside a value. Keys are unique within an object in evtx's rendering (a repeated child element is written
    with a ``_N`` suffix), so a decoder reads the same two values. Leaving the channel unsettled keeps the
    verdicts sound for every channel: a rule that reads ``winlog.channel`` is never decided on such a class.
    """
    key = rendered_key(text)
    return None if key is None else rendered_key_class(key)


def rendered_key(text: str) -> str | None:
    """The start of evtx's JSON text of a record, up to just past its event id: the same text in most records of
    one provider and id, and all :func:`rendered_key_class` reads. None when the text shows no event id early on.

    This runs for every record of a hunt: one search and one slice; the checks are made once per distinct key.
    """
    id_at = text.find(_ID_MARKER, PREFIX_LENGTH, KEY_SEARCH_END)
    return None if id_at < 0 else text[: id_at + KEY_TAIL]


def rendered_key_class(key: str) -> EventClass | None:
    """The class of the records whose :func:`rendered_key` is ``key`` (see :func:`rendered_event_class`)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        pass
    made = None
    # The id must follow the first marker, where rendered_key found it (the key holds the text up to there), and
    # be whole: the key goes on after it.
    id_at = key.find(_ID_MARKER, PREFIX_LENGTH)
    match = _RENDERED_PROVIDER_AND_ID.match(key, PREFIX_LENGTH) if key.startswith(_RENDERED_PREFIX) else None
    if match is not None and match.start(2) == id_at and match.end() < len(key) and key[match.end()] in ",}":
        provider = match.group(1)
        digits = match.group(3) or match.group(4)
        if not mapping_depends_on_channel(provider):
            made = _channel_free_class(provider, str(int(digits)))
    if len(_BY_KEY) >= _CACHE_LIMIT:
        _BY_KEY.clear()
    _BY_KEY[key] = made
    return made


_CHANNEL_FREE: dict[tuple[str, str], EventClass] = {}


def _channel_free_class(provider: str, code: str) -> EventClass:
    """The class of a provider's events with one id on any channel: one object however many keys lead to it, so
    that verdicts cached per class (the prefilter's) are made once."""
    found = _CHANNEL_FREE.get((provider, code))
    if found is None:
        found = _make_class(provider, None, code, False)
        if len(_CHANNEL_FREE) >= _CACHE_LIMIT:
            _CHANNEL_FREE.clear()
        _CHANNEL_FREE[(provider, code)] = found
    return found
