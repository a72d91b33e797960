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
# provider (its Name first, then plain attributes) and the event id as a number.
_RENDERED_PREFIX = (
    '{"Event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"},'
    '"System":{"Provider":{"#attributes":{"Name":"'
)
_RENDERED_PROVIDER_AND_ID = re.compile(r'([^"\\]+)"(?:,"(?!Name")[A-Za-z]+":"[^"\\]*")*\}\},"EventID":(\d{1,18})')
_HEAD_LIMIT = 512
"""Characters of a provider name, its attributes and the event id read at most; a longer head is decoded."""
_BY_HEAD: dict[str, EventClass | None] = {}


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
    head = rendered_head(text)
    return None if head is None else rendered_head_class(head)


def rendered_head(text: str) -> str | None:
    """The part of evtx's JSON text of a record that names its provider and event id (the same text in every
    record of one provider and id), for :func:`rendered_head_class`; None when the text does not start as evtx
    renders a record."""
    if not text.startswith(_RENDERED_PREFIX):
        return None
    start = len(_RENDERED_PREFIX)
    id_at = text.find('}},"EventID":', start, start + _HEAD_LIMIT)
    if id_at < 0:
        return None
    end = text.find(",", id_at + 13, id_at + 33)
    if end < 0:
        return None
    return text[start:end]


def rendered_head_class(head: str) -> EventClass | None:
    """The class of the records whose :func:`rendered_head` is ``head`` (see :func:`rendered_event_class`)."""
    # The head is checked against the pattern once, then cached.
    try:
        return _BY_HEAD[head]
    except KeyError:
        pass
    match = _RENDERED_PROVIDER_AND_ID.fullmatch(head)
    made = None
    if match is not None:
        provider, digits = match.group(1, 2)
        if not mapping_depends_on_channel(provider):
            made = _make_class(provider, None, str(int(digits)), False)
    if len(_BY_HEAD) >= _CACHE_LIMIT:
        _BY_HEAD.clear()
    _BY_HEAD[head] = made
    return made
