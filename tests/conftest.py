"""Shared test fixtures: where ../shared (the corpus and reference data beside the project) is."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def rule_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The compiled-rule cache of the whole run lives in a temporary folder, never in the user's ~/.cache;
    commands the tests start inherit the setting."""
    folder = tmp_path_factory.mktemp("rule-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHELLWATCH_CACHE_DIR", str(folder))
        yield folder
