"""Rule files and folders in, a :class:`~shellwatch.rules.outcome.LoadResult` out; and the bundled rule pack.

A file's format is chosen by its extension: ``.toml`` (Elastic detection-rules), ``.json`` (Kibana rule JSON),
``.ndjson`` (Kibana saved-objects export), ``.yml`` / ``.yaml`` (Sigma). Folders are walked recursively in
sorted order, skipping hidden entries (``.github`` and the like), symbolic links to folders and files with other
extensions (READMEs, licenses); a file named explicitly must have one of these extensions.

Loading goes through the compiled-rule cache (:mod:`shellwatch.rules.cache`): a file whose bytes were loaded
before by the same code is not parsed again, and the parsers (pySigma, eql) are not even imported. Files that
must be parsed are spread over worker processes when there are many of them.

Sigma filters (:mod:`shellwatch.rules.sigma_filters`) found among the files are applied by :func:`load_rules`
after the cache, to the rules of the same load: a filter changes a rule according to the other files of the
load, which the cache of a rule file cannot know. Their files are read again (filters are few) and the result is
a :class:`~shellwatch.rules.sigma_filters.FilteredLoadResult` that says what each filter did.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from shellwatch.rules.cache import RuleCache, cache_directory, collector_paused, decode_outcomes, encode_outcomes
from shellwatch.rules.model import Rule
from shellwatch.rules.outcome import LoadOutcome, LoadResult
from shellwatch.rules.sigma_filters import FILTER_LANGUAGE, FilterSlot, apply_sigma_filters

MAX_RULE_FILE_BYTES = 64 * 1024 * 1024
"""Larger files are refused: no real rule file or export comes near it, and a file is read whole."""

Loader = Callable[[str, str], list[LoadOutcome]]

FILE_FORMATS: dict[str, str] = {
    ".toml": "elastic-toml",
    ".json": "kibana-json",
    ".ndjson": "kibana-ndjson",
    ".yml": "sigma-yaml",
    ".yaml": "sigma-yaml",
}
"""File extension (lower case) -> format name; the name is part of the cache key."""

RULE_FILE_SUFFIXES = tuple(FILE_FORMATS)


def _loader_for(file_format: str) -> Loader:
    # Imported on demand: a TOML-only run never pays for pySigma's import, nor a Sigma-only run for eql's, and a
    # run served by the cache for neither.
    if file_format == "elastic-toml":
        from shellwatch.rules.elastic_toml import load_elastic_toml

        return load_elastic_toml
    if file_format == "kibana-json":
        from shellwatch.rules.kibana_json import load_kibana_json

        return load_kibana_json
    if file_format == "kibana-ndjson":
        from shellwatch.rules.kibana_json import load_kibana_ndjson

        return load_kibana_ndjson
    if file_format == "sigma-yaml":
        from shellwatch.rules.sigma_yaml import load_sigma_yaml

        return load_sigma_yaml
    raise ValueError(f"unknown rule file format {file_format!r}")


def iter_rule_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every rule file named by ``paths``: files as given, folders walked (sorted, hidden entries skipped).

    A path that does not exist is yielded as it is, so that loading it reports the error.
    """
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            yield path
            continue
        for parts in sorted(_walk(str(path), ()), key=_sort_key):
            yield path.joinpath(*parts)


def _rule_file_names(paths: Iterable[str | Path]) -> list[str]:
    """:func:`iter_rule_files` as strings (what ``str()`` of its paths gives), without building a Path each."""
    names: list[str] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            names.append(str(path))
            continue
        root = str(path)
        found = sorted(_walk(root, ()), key=_sort_key)
        # Path(".") / "a.yml" is "a.yml", not "./a.yml".
        names.extend(os.path.join(*parts) if root == "." else os.path.join(root, *parts) for parts in found)
    return names


def _walk(folder: str, parts: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    # os.scandir, not Path.rglob: a tenth of the time on SigmaHQ's 3,780 files, which matters for a cached load.
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, (*parts, entry.name))
            elif os.path.splitext(entry.name)[1].lower() in FILE_FORMATS and entry.is_file():
                yield (*parts, entry.name)
        except OSError:
            continue


def _sort_key(parts: tuple[str, ...]) -> tuple[str, ...]:
    # The order of sorted Path objects: part by part, case-folded where the file system ignores case.
    return tuple(os.path.normcase(part) for part in parts)


@dataclass(frozen=True, slots=True)
class _RuleFileBytes:
    """A rule file read whole, or the outcome that says why it could not be."""

    shown: str
    file_format: str | None = None
    content: bytes = b""
    failed: list[LoadOutcome] | None = None


def _read(shown: str) -> _RuleFileBytes:
    file_format = FILE_FORMATS.get(os.path.splitext(shown)[1].lower())
    if file_format is None:
        reason = f"not a rule file (extension is not one of {', '.join(RULE_FILE_SUFFIXES)})"
        return _RuleFileBytes(shown, failed=[LoadOutcome(path=shown, status="error", reason=reason)])
    try:
        fd = os.open(shown, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            size = os.fstat(fd).st_size
            if size > MAX_RULE_FILE_BYTES:
                failed = [LoadOutcome(path=shown, status="error", reason=f"file too large ({size} bytes)")]
                return _RuleFileBytes(shown, failed=failed)
            content = _read_up_to(fd, size)
        finally:
            os.close(fd)
    except OSError as exc:
        failed = [LoadOutcome(path=shown, status="error", reason=f"cannot read: {exc.strerror or exc}")]
        return _RuleFileBytes(shown, failed=failed)
    if len(content) > MAX_RULE_FILE_BYTES:
        failed = [LoadOutcome(path=shown, status="error", reason=f"file too large ({len(content)} bytes)")]
        return _RuleFileBytes(shown, failed=failed)
    return _RuleFileBytes(shown, file_format, content)


def _read_up_to(fd: int, size: int) -> bytes:
    """The file's bytes: ``size`` (what fstat said) and whatever follows, up to one byte past the limit.

    Raw reads rather than a file object: a cached load of a few thousand small files spends a good part of its
    time here.
    """
    # One byte more than the size notices a file that grew, or a device posing as a file.
    content = os.read(fd, size + 1)
    if len(content) <= size:
        return content
    chunks = [content]
    total = len(content)
    while content and total <= MAX_RULE_FILE_BYTES:
        content = os.read(fd, min(1 << 20, MAX_RULE_FILE_BYTES + 1 - total))
        chunks.append(content)
        total += len(content)
    return b"".join(chunks)


def _parse(read: _RuleFileBytes) -> list[LoadOutcome]:
    if read.failed is not None or read.file_format is None:
        return read.failed or []
    try:
        text = read.content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [LoadOutcome(path=read.shown, status="error", reason=f"not UTF-8 text (byte {exc.start})")]
    return _loader_for(read.file_format)(text, read.shown)


def _parse_and_store(read: _RuleFileBytes, rule_cache: RuleCache | None) -> list[LoadOutcome]:
    outcomes = _parse(read)
    if rule_cache is not None and read.failed is None and read.file_format is not None:
        encoded = encode_outcomes(outcomes, read.shown)
        if encoded is not None:
            rule_cache.store(read.content, read.file_format, read.shown, encoded)
    return outcomes


def _cached(read: _RuleFileBytes, rule_cache: RuleCache | None) -> list[LoadOutcome] | None:
    if read.failed is not None:
        return read.failed
    if rule_cache is None or read.file_format is None:
        return None
    return rule_cache.lookup(read.content, read.file_format, read.shown)


_open_cache: tuple[Path, RuleCache | None] | None = None


def _shared_cache() -> RuleCache | None:
    """The cache of the configured folder, opened once per process (and again when the configuration changes)."""
    global _open_cache
    directory = cache_directory()
    if directory is None:
        return None
    if (
        _open_cache is None
        or _open_cache[0] != directory
        or (_open_cache[1] is not None and not _open_cache[1].is_safe())
    ):
        if _open_cache is not None and _open_cache[1] is not None:
            _open_cache[1].close()
        _open_cache = (directory, RuleCache.open(directory))
    return _open_cache[1]


def load_rule_file(path: str | Path, *, cache: bool = True) -> list[LoadOutcome]:
    """The outcomes of one rule file (never raises for bad content or an unreadable file).

    With ``cache`` (the default) the outcomes come from the compiled-rule cache when the file's bytes were
    loaded before, and are stored there otherwise. Sigma filters in the file are checked, not applied: that is
    :func:`load_rules`'s work, which sees every rule of the load.
    """
    read = _read(str(Path(path)))
    rule_cache = _shared_cache() if cache else None
    found = _cached(read, rule_cache)
    return found if found is not None else _parse_and_store(read, rule_cache)


PARALLEL_FROM_FILES = 64
"""With fewer files to parse than this, worker processes cost more to start than they save."""

_WorkerResult = tuple[list[LoadOutcome] | None, str | None, bytes | None]
"""What a worker hands back for a file: its outcomes, or (when they can be cached) their cache key and entry
payload, which the parent writes to the cache and decodes, so that outcomes cross the pipe pickled once."""


def _parse_in_worker(path: str, with_cache: bool) -> _WorkerResult:
    read = _read(path)
    outcomes = _parse(read)
    if not with_cache or read.failed is not None or read.file_format is None:
        return outcomes, None, None
    encoded = encode_outcomes(outcomes, read.shown)
    if encoded is None:
        return outcomes, None, None
    payload, mentions_path = encoded
    return None, RuleCache.entry_key(read.content, read.file_format, read.shown if mentions_path else None), payload


def _parse_with_cache_in_worker(path: str) -> _WorkerResult:
    return _parse_in_worker(path, True)


def _parse_without_cache_in_worker(path: str) -> _WorkerResult:
    return _parse_in_worker(path, False)


def load_rules(paths: Iterable[str | Path], *, jobs: int | None = None, cache: bool = True) -> LoadResult:
    """Load every rule under ``paths`` (files and folders); each rule or broken file gets an outcome.

    Files found in the compiled-rule cache (unless ``cache`` is False) are not parsed. When at least
    :data:`PARALLEL_FROM_FILES` files are left to parse, they are parsed in ``jobs`` worker processes (default:
    every core this process may use; parsing is CPU-bound, ~9 ms per EQL query, ~4 ms per Sigma rule). Outcomes
    keep file order either way. Sigma filters among the files are then applied (:func:`with_sigma_filters`).
    """
    files = _rule_file_names(paths)
    rule_cache = _shared_cache() if cache else None
    batches: list[list[LoadOutcome] | None] = [None] * len(files)
    with collector_paused():
        for index, path in enumerate(files):
            batches[index] = _cached(_read(path), rule_cache)
    to_parse = [index for index, batch in enumerate(batches) if batch is None]
    if jobs is None:
        from shellwatch.parallel import available_cores

        jobs = available_cores()
    if jobs > 1 and len(to_parse) >= PARALLEL_FROM_FILES:
        _parse_in_pool([files[index] for index in to_parse], jobs, rule_cache, to_parse, batches)
    else:
        for index in to_parse:
            batches[index] = _parse_and_store(_read(files[index]), rule_cache)
    if rule_cache is not None and rule_cache.written:
        rule_cache.prune()
        rule_cache.written = 0
    return with_sigma_filters([outcome for batch in batches if batch is not None for outcome in batch])


def with_sigma_filters(outcomes: list[LoadOutcome]) -> LoadResult:
    """The outcomes of a load, with the Sigma filters among them applied to the rules they name.

    Each file holding a filter is read again and its filters parsed (never from the cache); a filter document
    that cannot be read again as it was becomes an error.
    """
    positions = [
        (outcome.path, outcome.index or 0)
        for outcome in outcomes
        if outcome.language == FILTER_LANGUAGE and outcome.status == "ok"
    ]
    if not positions:
        return LoadResult.of(outcomes)
    # Imported here: reading filter files needs pySigma, which a load without filters never imports.
    from shellwatch.rules.sigma_yaml import sigma_filters_in

    slots: dict[tuple[str, int], FilterSlot] = {}
    for path in dict.fromkeys(path for path, _ in positions):
        text = _text_of(path)
        if text is not None:
            slots.update(((path, index), slot) for index, slot in sigma_filters_in(text, path).items())
    for path, index in positions:
        if (path, index) not in slots:
            slots[path, index] = LoadOutcome(
                path=path,
                status="error",
                reason="Sigma filter: the file changed or became unreadable while it was loaded",
                index=index,
                language=FILTER_LANGUAGE,
            )
    return apply_sigma_filters(outcomes, slots, _SigmaNames())


def _text_of(path: str) -> str | None:
    read = _read(path)
    if read.failed is not None:
        return None
    try:
        return read.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


class _SigmaNames:
    """The Sigma ``name`` attribute of loaded rules, read from their files on demand (the rule model does not
    keep it); each file is read once."""

    def __init__(self) -> None:
        self._by_file: dict[str, dict[int, str]] = {}

    def __call__(self, rule: Rule) -> str | None:
        path = rule.source.path
        names = self._by_file.get(path)
        if names is None:
            from shellwatch.rules.sigma_yaml import sigma_rule_names

            text = _text_of(path)
            names = sigma_rule_names(text) if text is not None else {}
            self._by_file[path] = names
        return names.get(rule.source.index)


def _parse_in_pool(
    files: list[str],
    jobs: int,
    rule_cache: RuleCache | None,
    indexes: list[int],
    batches: list[list[LoadOutcome] | None],
) -> None:
    # Imported here: a load served by the cache never starts a process.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context()
    if context.get_start_method() == "fork":
        # Forked workers inherit the parsers imported here instead of each importing them (about a second).
        formats = {found for path in files if (found := FILE_FORMATS.get(os.path.splitext(path)[1].lower()))}
        for file_format in sorted(formats):
            _loader_for(file_format)
    work = _parse_with_cache_in_worker if rule_cache is not None else _parse_without_cache_in_worker
    with ProcessPoolExecutor(max_workers=min(jobs, len(files)), mp_context=context) as pool:
        results = pool.map(work, files, chunksize=8)
        for index, path, (outcomes, key, payload) in zip(indexes, files, results, strict=True):
            if outcomes is None and key is not None and payload is not None:
                with collector_paused():
                    outcomes = decode_outcomes(payload, path)
                if outcomes is None:  # never expected: the payload was just made by the same code
                    outcomes = _parse(_read(path))
                elif rule_cache is not None:
                    rule_cache.put(key, payload)
            batches[index] = outcomes


PACK_PACKAGE = "shellwatch.rules"
PACK_FOLDER = "pack"


def bundled_pack_path() -> Path:
    """The folder of the rule pack shipped inside the package."""
    return Path(str(resources.files(PACK_PACKAGE).joinpath(PACK_FOLDER)))


def load_bundled_rules(*, cache: bool = True) -> LoadResult:
    """The bundled rule pack: the seed EQL rule and the seed Sigma rule (see ``pack/README.md``)."""
    return load_rules([bundled_pack_path()], cache=cache)
