"""Which mapping a Windows event gets, decided by its provider, whatever container it came in.

The same provider mapping serves raw EVTX/XML events, raw Winlogbeat documents and OTRF flat records: each of
those front ends builds the System part and the event data, then hands them to the mapper named here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from shellwatch.ecs import Event
from shellwatch.normalize import security, sysmon
from shellwatch.normalize.demand import FieldDemand
from shellwatch.normalize.security import map_security
from shellwatch.normalize.sysmon import map_sysmon


class ProviderMapper(Protocol):
    """Adds ECS fields to an event: (event so far, event data by field name, event id as a string); with a
    demand, it may leave out steps that write no demanded field (:mod:`shellwatch.normalize.demand`)."""

    def __call__(self, event: Event, data: dict[str, str], code: str, demand: FieldDemand | None = None) -> None: ...


SYSMON = "sysmon"
WINDOWS_SECURITY = "windows_security"
WINDOWS = "windows"

_BY_PROVIDER: Final[dict[str, tuple[str, ProviderMapper]]] = {
    "Microsoft-Windows-Sysmon": (SYSMON, map_sysmon),
    "Linux-Sysmon": (SYSMON, map_sysmon),
    "Microsoft-Windows-Security-Auditing": (WINDOWS_SECURITY, map_security),
}

# Per mapper: the fields it sets from the event id alone (see sysmon.class_fields).
_CLASS_FIELDS: Final[dict[ProviderMapper, Callable[[str], dict[str, Any]]]] = {
    map_sysmon: sysmon.class_fields,
    map_security: security.class_fields,
}

# The security pipeline also runs for the event log service's own events (1100, 1102, 1104...), which it
# writes to the Security channel.
_EVENTLOG_PROVIDER = "Microsoft-Windows-Eventlog"


def mapping_for(provider: str | None, channel: str | None) -> tuple[str, ProviderMapper | None]:
    """The source family of a Windows event and the mapper that adds its ECS fields (``None``: basic fields
    only)."""
    if provider is not None:
        known = _BY_PROVIDER.get(provider)
        if known is not None:
            return known
        if provider == _EVENTLOG_PROVIDER and channel == "Security":
            return WINDOWS_SECURITY, map_security
    return WINDOWS, None


def mapping_depends_on_channel(provider: str) -> bool:
    """Whether :func:`mapping_for` can give this provider's events different mappings on different channels."""
    return provider == _EVENTLOG_PROVIDER


def os_type_for(provider: str | None) -> str:
    """``host.os.type`` of an event from this provider: Sysmon for Linux writes the same schema."""
    return "linux" if provider == "Linux-Sysmon" else "windows"


def mapper_class_fields(mapper: ProviderMapper, code: str) -> dict[str, Any]:
    """The fields ``mapper`` sets from the event id alone, the same in every event it maps with that id (``None``:
    never set for that id); fields it does not name here depend on the event's data."""
    class_fields = _CLASS_FIELDS.get(mapper)
    return class_fields(code) if class_fields is not None else {}
