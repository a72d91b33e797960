"""Shared test fixtures: where ../shared (the corpus and reference data beside the project) is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
"""../shared as seen from the project root; absent on a fresh clone."""


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the calling test with a clear reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is absent beside this clone); test needs it")
    return path


def evtx_corpus_records(*corpora: str) -> Iterator[tuple[Path, int, str]]:
    """(file, record id, JSON text) of every record the evtx parser renders in the named corpora of ../shared,
    files in sorted order; a file whose header the parser refuses is passed over, and after a damaged chunk the
    parser's iterator goes on with the next. Skips the calling test without ../shared."""
    from evtx import PyEvtxParser

    for name in corpora:
        for path in sorted(shared_path("corpus", name).rglob("*.evtx")):
            try:
                records: Any = PyEvtxParser(str(path), number_of_threads=1).records_json()
            except Exception:  # a file whose header the parser refuses
                continue
            while True:
                try:
                    for item in records:
                        yield path, item["event_record_id"], item["data"]
                    break
                except RuntimeError:  # a damaged chunk: the iterator goes on with the next
                    continue


@pytest.fixture(scope="session", autouse=True)
def rule_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The compiled-rule cache of the whole run lives in a temporary folder, never in the user's ~/.cache;
    commands the tests start inherit the setting."""
    folder = tmp_path_factory.mktemp("rule-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHELLWATCH_CACHE_DIR", str(folder))
        yield folder
