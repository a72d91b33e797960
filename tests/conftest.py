"""Shared test fixtures: where ../shared (the corpus and reference data beside the project) is."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
"""../shared as seen from the project root; absent on a fresh clone."""


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the calling test with a clear reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is absent beside this clone); test needs it")
    return path
