"""What the normalizers of one input may remember between its records.

Some sources only make sense with what came before: a CrowdStrike FDR process event may name its parent only by
Falcon id, resolved from the earlier event that created that parent; a Microsoft 365 Defender process event carries
no operating system, which a DeviceInfo record of the same device can tell. A :class:`SourceContext` holds that
memory for one input (file, archive member or stdin): a hunt makes a new one per input, so the alerts are the same
whichever worker reads which input, and a normalizer's memory is bounded by :attr:`SourceContext.process_memory`
entries however long the input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

DEFAULT_PROCESS_MEMORY = 50_000
"""Entries a normalizer may remember per input by default (processes, devices). A remembered CrowdStrike process
holds its name, path and command line, about 1 KB with typical paths: some 50 MB per input at this default."""

_State = TypeVar("_State")


class SourceContext:
    """Per-input memory of the normalizers: one state object per normalizer, made on first use."""

    __slots__ = ("_states", "process_memory")

    def __init__(self, *, process_memory: int = DEFAULT_PROCESS_MEMORY) -> None:
        if process_memory < 0:
            raise ValueError("process_memory must be >= 0")
        self.process_memory = process_memory
        """The most entries any one normalizer keeps (oldest forgotten first); 0 remembers nothing."""
        self._states: dict[str, Any] = {}

    def state(self, owner: str, make: Callable[[], _State]) -> _State:
        """The state of normalizer ``owner`` (its family name) for this input, made by ``make`` the first time."""
        found = self._states.get(owner)
        if found is None:
            found = self._states[owner] = make()
        return found
