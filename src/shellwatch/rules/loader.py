"""Rule files and folders in, a :class:`~shellwatch.rules.outcome.LoadResult` out; and the bundled rule pack.

A file's format is chosen by its extension: ``.toml`` (Elastic detection-rules), ``.json`` (Kibana rule JSON),
``.ndjson`` (Kibana saved-objects export), ``.yml`` / ``.yaml`` (Sigma). Folders are walked recursively in
sorted order, skipping hidden entries (``.github`` and the like) and files with other extensions (READMEs,
licenses); a file named explicitly must have one of these extensions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path

from shellwatch.rules.outcome import LoadOutcome, LoadResult

MAX_RULE_FILE_BYTES = 64 * 1024 * 1024
"""Larger files are refused: no real rule file or export comes near it, and a file is read whole."""

Loader = Callable[[str, str], list[LoadOutcome]]


def _loader_for(path: Path) -> Loader | None:
    # Imported on demand: a TOML-only run never pays for pySigma's import, nor a Sigma-only run for eql's.
    suffix = path.suffix.lower()
    if suffix == ".toml":
        from shellwatch.rules.elastic_toml import load_elastic_toml

        return load_elastic_toml
    if suffix == ".json":
        from shellwatch.rules.kibana_json import load_kibana_json

        return load_kibana_json
    if suffix == ".ndjson":
        from shellwatch.rules.kibana_json import load_kibana_ndjson

        return load_kibana_ndjson
    if suffix in (".yml", ".yaml"):
        from shellwatch.rules.sigma_yaml import load_sigma_yaml

        return load_sigma_yaml
    return None


RULE_FILE_SUFFIXES = (".toml", ".json", ".ndjson", ".yml", ".yaml")


def iter_rule_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every rule file named by ``paths``: files as given, folders walked (sorted, hidden entries skipped).

    A path that does not exist is yielded as it is, so that loading it reports the error.
    """
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            yield path
            continue
        for found in sorted(path.rglob("*")):
            relative = found.relative_to(path).parts
            if any(part.startswith(".") for part in relative):
                continue
            if found.suffix.lower() in RULE_FILE_SUFFIXES and found.is_file():
                yield found


def load_rule_file(path: str | Path) -> list[LoadOutcome]:
    """The outcomes of one rule file (never raises for bad content or an unreadable file)."""
    path = Path(path)
    shown = str(path)
    loader = _loader_for(path)
    if loader is None:
        return [
            LoadOutcome(
                path=shown,
                status="error",
                reason=f"not a rule file (extension is not one of {', '.join(RULE_FILE_SUFFIXES)})",
            )
        ]
    try:
        size = path.stat().st_size
        if size > MAX_RULE_FILE_BYTES:
            return [LoadOutcome(path=shown, status="error", reason=f"file too large ({size} bytes)")]
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [LoadOutcome(path=shown, status="error", reason=f"not UTF-8 text (byte {exc.start})")]
    except OSError as exc:
        return [LoadOutcome(path=shown, status="error", reason=f"cannot read: {exc.strerror or exc}")]
    return loader(text, shown)


PARALLEL_FROM_FILES = 64
"""With fewer files than this, worker processes cost more to start than they save."""


def load_rules(paths: Iterable[str | Path], *, jobs: int = 1) -> LoadResult:
    """Load every rule under ``paths`` (files and folders); each rule or broken file gets an outcome.

    With ``jobs`` > 1 and many files, files are parsed in that many worker processes (parsing is CPU-bound:
    ~9 ms per EQL query, ~3 ms per Sigma rule); outcomes keep file order either way.
    """
    files = list(iter_rule_files(paths))
    if jobs > 1 and len(files) >= PARALLEL_FROM_FILES:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            batches = list(pool.map(load_rule_file, files, chunksize=16))
    else:
        batches = [load_rule_file(path) for path in files]
    return LoadResult.of(outcome for batch in batches for outcome in batch)


PACK_PACKAGE = "shellwatch.rules"
PACK_FOLDER = "pack"


def bundled_pack_path() -> Path:
    """The folder of the rule pack shipped inside the package."""
    return Path(str(resources.files(PACK_PACKAGE).joinpath(PACK_FOLDER)))


def load_bundled_rules() -> LoadResult:
    """The bundled rule pack: the seed EQL rule and the seed Sigma rule (see ``pack/README.md``)."""
    return load_rules([bundled_pack_path()])
