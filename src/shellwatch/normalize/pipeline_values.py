"""Value handling shared by the Windows provider mappers, as Elastic's winlog pipelines do it.

Both the security and the sysmon ingest pipelines drop the same placeholder values before mapping and append to the
``related.*`` lists without repeating a value; the mappers share these two rules from here.
"""

from __future__ import annotations

from typing import Final

from shellwatch.ecs import Event

EMPTY_VALUES: Final = frozenset(("", "-", "{00000000-0000-0000-0000-000000000000}"))
"""EventData values the pipelines treat as absent (blank, a dash, the all-zero GUID)."""


def append_unique(event: Event, field: str, value: str) -> None:
    """Append ``value`` to the list field ``field`` unless it is already there (the pipelines' ``related.*``)."""
    values = event.get(field)
    if values is None:
        event[field] = [value]
    elif value not in values:
        values.append(value)
