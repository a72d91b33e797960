"""The "big set" of the scale benchmark: which rule files it holds, and loading them.

* Sigma: every ``.yml`` under any folder named ``process_creation`` of ``corpus/sigmahq-rules`` (Windows, Linux and
  macOS, the main, threat-hunting and placeholder rule folders: 1,434 files at the corpus' commit).
* Elastic: every rule of ``corpus/elastic-detection-rules/rules*`` (``rules/`` and ``rules_building_block/``)
  that is of type ``eql``, runs on single events, targets Windows and is not deprecated. The rule's own
  metadata decides, read from its TOML:

  - single event: the query does not begin with ``sequence`` or ``sample`` (the two EQL forms that join events),
    comments before the keyword skipped (several rules open with a ``/* ... */`` note);
  - Windows: its tags hold ``"OS: Windows"``. Elastic's rule schema requires an ``OS:`` tag on every rule of an
    endpoint data source, and the tag is what Kibana filters rules by. Index patterns are no clear test (``endgame-*``
    and ``logs-endpoint.events.*`` are shared by Windows, Linux and macOS rules), nor is ``host.os.type ==
    "windows"`` in the query (32 Windows rules never test it: their index patterns carry only Windows data);
  - not deprecated: ``metadata.maturity`` is not ``deprecated`` (the rules under ``rules/_deprecated``), as Kibana
    does not install them.

Used by ``bench_scale.py`` and ``tests/test_big_rule_set.py``.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shellwatch.rules.loader import load_rules
from shellwatch.rules.outcome import LoadResult

SIGMA_FOLDER = ("corpus", "sigmahq-rules")
ELASTIC_FOLDER = ("corpus", "elastic-detection-rules")
SIGMA_CATEGORY_FOLDER = "process_creation"
ELASTIC_RULE_FOLDERS = "rules*"
WINDOWS_TAG = "OS: Windows"

_JOINING_QUERY = re.compile(r"(?:\s|/\*.*?\*/|//[^\n]*)*(sequence|sample)\b", re.DOTALL)
"""EQL queries that join several events begin with one of these keywords, after any comments."""


@dataclass(frozen=True, slots=True)
class BigSetFiles:
    """The rule files of the big set, sorted, by format."""

    sigma: tuple[Path, ...]
    eql: tuple[Path, ...]

    @property
    def all(self) -> tuple[Path, ...]:
        return self.sigma + self.eql


def sigma_process_creation_files(sigma_root: Path) -> list[Path]:
    """Every ``.yml`` file under any ``process_creation`` folder below ``sigma_root``."""
    return sorted(
        path
        for folder in sigma_root.rglob(SIGMA_CATEGORY_FOLDER)
        if folder.is_dir()
        for path in folder.rglob("*.yml")
        if path.is_file()
    )


def elastic_selection_reason(document: Mapping[str, Any]) -> str | None:
    """Why an Elastic rule (its parsed TOML) is left out of the big set; None when it is in."""
    rule = document.get("rule", {})
    metadata = document.get("metadata", {})
    if rule.get("type") != "eql":
        return f"type {rule.get('type')!r}"
    if metadata.get("maturity") == "deprecated":
        return "deprecated"
    if _JOINING_QUERY.match(str(rule.get("query", ""))):
        return "joins events (sequence or sample)"
    if WINDOWS_TAG not in rule.get("tags", ()):
        return f"no {WINDOWS_TAG!r} tag"
    return None


def elastic_single_event_windows_eql_files(elastic_root: Path) -> tuple[list[Path], Counter[str]]:
    """The Elastic rule files of the big set, and the others counted by why they are left out."""
    chosen: list[Path] = []
    left_out: Counter[str] = Counter()
    for folder in sorted(elastic_root.glob(ELASTIC_RULE_FOLDERS)):
        for path in sorted(folder.rglob("*.toml")):
            try:
                document = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                left_out["unreadable TOML"] += 1
                continue
            reason = elastic_selection_reason(document)
            if reason is None:
                chosen.append(path)
            else:
                left_out[reason] += 1
    return chosen, left_out


def big_set_files(shared: Path) -> BigSetFiles:
    """The big set's rule files under ``shared`` (the folder holding ``corpus/``)."""
    sigma = sigma_process_creation_files(shared.joinpath(*SIGMA_FOLDER))
    eql, _ = elastic_single_event_windows_eql_files(shared.joinpath(*ELASTIC_FOLDER))
    return BigSetFiles(tuple(sigma), tuple(eql))


def load_big_set(files: BigSetFiles, *, jobs: int = 2) -> LoadResult:
    """Load the big set with shellwatch's loader (``jobs`` worker processes)."""
    return load_rules(files.all, jobs=jobs)


def refusal_reasons(result: LoadResult, *, width: int = 70) -> Counter[str]:
    """Rules that did not load, counted by status and reason (a reason cut to its first ``width`` characters,
    numbers and quoted names blanked, so that one cause counts once)."""
    reasons: Counter[str] = Counter()
    for outcome in result:
        if outcome.status == "ok":
            continue
        reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", outcome.reason)
        reason = re.sub(r"\d+", "N", reason)
        reasons[f"{outcome.status}: {reason[:width]}"] += 1
    return reasons
