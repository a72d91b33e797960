"""Which fields a caller of the normalizers will read, so that steps writing none of them can be left out.

A hunt matches rules that read a known set of fields (those their queries name): it normalizes an event for
matching with that demand, and in full only when a rule matched it, for the alert. A normalizer step is left out
only when none of the fields it can write is demanded (its outputs are named exactly, or by a prefix ending in
``.``), and no step left in reads what it writes; so every demanded field has the same value either way. Without a
demand (``None``) every step runs: that is the normalized event, the one alerts and outputs show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

_Plan = TypeVar("_Plan")


class FieldDemand:
    """A set of demanded field paths, and the step plans worked out for it (once per normalizer)."""

    __slots__ = ("_plans", "fields")

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = frozenset(fields)
        self._plans: dict[str, Any] = {}

    def wants(self, outputs: Iterable[str]) -> bool:
        """Whether any demanded field is one of ``outputs`` (exact paths, or prefixes ending in ``.``)."""
        for output in outputs:
            if output.endswith("."):
                if any(field.startswith(output) for field in self.fields):
                    return True
            elif output in self.fields:
                return True
        return False

    def plan(self, normalizer: str, make: Callable[[FieldDemand], _Plan]) -> _Plan:
        """The plan of ``normalizer`` for this demand, made by ``make`` the first time."""
        found = self._plans.get(normalizer)
        if found is None:
            found = self._plans[normalizer] = make(self)
        return found

    def __repr__(self) -> str:
        return f"FieldDemand({sorted(self.fields)!r})"
