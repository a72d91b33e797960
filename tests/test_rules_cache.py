"""The compiled-rule cache (shellwatch.rules.cache) behind load_rule_file / load_rules.

What a cached load gives must be exactly what a fresh load gives (every field of every outcome, the IR
included); anything unusable in the cache folder -- a corrupt, truncated, foreign or unsafe entry, an unsafe or
unwritable folder -- must leave the rules loading as if there were no cache.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import shared_path
from shellwatch.rules import cache, loader
from shellwatch.rules.cache import (
    ENTRIES_FOLDER,
    ENTRY_SUFFIX,
    TEMP_PREFIX,
    RuleCache,
    decode_outcomes,
    encode_outcomes,
)
from shellwatch.rules.loader import iter_rule_files, load_bundled_rules, load_rule_file, load_rules
from shellwatch.rules.outcome import LoadOutcome, LoadResult

SIGMA = """title: Shell from w3wp
id: 5b0f6a8a-2f5e-4c1e-9d53-0c7e8c9d1a11
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        ParentImage|endswith: '\\w3wp.exe'
        Image|endswith: '\\cmd.exe'
    condition: selection
tags:
    - attack.persistence
    - attack.t1505.003
level: high
"""

needs_dir_fd = pytest.mark.skipif(not cache._dir_fd_supported(), reason="the cache needs POSIX dir_fd support")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache folder (never the user's ~/.cache)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(folder))
    return folder


def entries(cache_dir: Path) -> list[Path]:
    folder = cache_dir / ENTRIES_FOLDER
    return sorted(folder.glob("*" + ENTRY_SUFFIX)) if folder.is_dir() else []


def opened_cache(folder: Path) -> RuleCache:
    opened = RuleCache.open(folder)
    assert opened is not None
    return opened


def strict(result: LoadResult | list[LoadOutcome]) -> str:
    """Equality that also tells ``True`` from ``1`` and ``1.0`` (dataclass ``==`` does not): the reprs."""
    return repr(list(result))


@pytest.fixture
def parsing_forbidden(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make any parse fail the test: what loads afterwards came from the cache."""

    def forbid() -> None:
        def no_parse(file_format: str) -> loader.Loader:
            raise AssertionError(f"a {file_format} file was parsed instead of read from the cache")

        monkeypatch.setattr(loader, "_loader_for", no_parse)

    return forbid


# ------------------------------------------------------------------------------------------------------------
# Cached outcomes are the fresh outcomes.


@needs_dir_fd
def test_bundled_pack_from_the_cache_equals_a_fresh_load(
    cache_dir: Path, parsing_forbidden: Callable[[], None]
) -> None:
    fresh = load_bundled_rules(cache=False)
    assert entries(cache_dir) == []
    first = load_bundled_rules()
    assert len(entries(cache_dir)) == len(list(iter_rule_files([loader.bundled_pack_path()])))
    parsing_forbidden()
    cached = load_bundled_rules()
    assert cached == fresh == first
    assert strict(cached) == strict(fresh)
    assert [r.rule_id for r in cached.rules] == [r.rule_id for r in fresh.rules]
    assert all(rule.ir == fresh_rule.ir for rule, fresh_rule in zip(cached.rules, fresh.rules, strict=True))


def _sample(folder: Path, step: int) -> list[Path]:
    return list(iter_rule_files([folder]))[::step]


@needs_dir_fd
@pytest.mark.parametrize(
    ("corpus", "step"),
    [(("sigmahq-rules",), 25), (("elastic-detection-rules", "rules"), 40)],
    ids=["sigmahq", "elastic"],
)
def test_corpus_sample_from_the_cache_equals_a_fresh_load(
    corpus: tuple[str, ...], step: int, cache_dir: Path, parsing_forbidden: Callable[[], None]
) -> None:
    """Every outcome (ok, unsupported and error alike) of ~150 SigmaHQ and ~50 Elastic rule files, field by field."""
    files = _sample(shared_path("corpus", *corpus), step)
    fresh = load_rules(files, cache=False, jobs=1)
    stored = load_rules(files, jobs=1)
    assert len(entries(cache_dir)) == len(set(entries(cache_dir))) > 0
    parsing_forbidden()
    cached = load_rules(files)
    assert len(fresh) >= len(files)
    assert cached == fresh == stored
    assert strict(cached) == strict(fresh)


@needs_dir_fd
def test_outcomes_parsed_in_worker_processes_are_cached_the_same(
    cache_dir: Path, parsing_forbidden: Callable[[], None]
) -> None:
    files = _sample(shared_path("corpus", "sigmahq-rules"), 50)
    assert len(files) >= loader.PARALLEL_FROM_FILES
    fresh = load_rules(files, cache=False, jobs=1)
    in_workers = load_rules(files, jobs=2)
    parsing_forbidden()
    assert strict(load_rules(files)) == strict(in_workers) == strict(fresh)


@needs_dir_fd
def test_error_and_unsupported_outcomes_are_cached_too(tmp_path: Path, parsing_forbidden: Callable[[], None]) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "broken.yml").write_text("title: [unclosed\n", encoding="utf-8")
    (tmp_path / "rules" / "correlation.yml").write_text(
        "title: c\ncorrelation:\n    type: event_count\n    rules: [x]\n    timespan: 1h\n", encoding="utf-8"
    )
    (tmp_path / "rules" / "bad.toml").write_text("[rule\n", encoding="utf-8")
    fresh = load_rules([tmp_path / "rules"], cache=False)
    load_rules([tmp_path / "rules"])
    parsing_forbidden()
    cached = load_rules([tmp_path / "rules"])
    assert strict(cached) == strict(fresh)
    assert sorted(o.status for o in cached) == ["error", "error", "unsupported"]


@needs_dir_fd
def test_same_content_at_two_paths_shares_one_entry_and_keeps_each_path(
    tmp_path: Path, cache_dir: Path, parsing_forbidden: Callable[[], None]
) -> None:
    first, second = tmp_path / "a" / "rule.yml", tmp_path / "b" / "renamed.yaml"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text(SIGMA, encoding="utf-8")
    [fresh_second] = load_rule_file(second, cache=False)
    load_rule_file(first)
    assert len(entries(cache_dir)) == 1
    parsing_forbidden()
    [cached_second] = load_rule_file(second)
    assert len(entries(cache_dir)) == 1
    assert cached_second == fresh_second
    assert cached_second.path == str(second)
    assert cached_second.rule is not None and cached_second.rule.source.path == str(second)


def test_outcomes_quoting_their_path_are_keyed_by_it() -> None:
    path = "/rules/odd.yml"
    quoting = [LoadOutcome(path=path, status="error", reason=f"{path} is odd")]
    plain = [LoadOutcome(path=path, status="error", reason="odd")]
    quoting_encoded, plain_encoded = encode_outcomes(quoting, path), encode_outcomes(plain, path)
    assert quoting_encoded is not None and quoting_encoded[1] is True
    assert plain_encoded is not None and plain_encoded[1] is False
    # A string equal to the path but not the path itself stays in the entry as it is.
    assert decode_outcomes(plain_encoded[0], "/elsewhere.yml") == [
        LoadOutcome(path="/elsewhere.yml", status="error", reason="odd")
    ]
    assert RuleCache.entry_key(b"x", "sigma-yaml", path) != RuleCache.entry_key(b"x", "sigma-yaml")


def test_outcomes_holding_other_classes_are_not_cached() -> None:
    class Stranger:
        pass

    outcome = LoadOutcome(path="p.yml", status="error", reason="r")
    object.__setattr__(outcome, "reason", Stranger())
    assert encode_outcomes([outcome], "p.yml") is None


# ------------------------------------------------------------------------------------------------------------
# What invalidates an entry.


@needs_dir_fd
def test_a_changed_file_is_parsed_again(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "rule.yml"
    path.write_text(SIGMA, encoding="utf-8")
    [before] = load_rule_file(path)
    path.write_text(SIGMA.replace("Shell from w3wp", "Renamed rule"), encoding="utf-8")
    [after] = load_rule_file(path)
    assert (before.name, after.name) == ("Shell from w3wp", "Renamed rule")
    assert len(entries(cache_dir)) == 2


@pytest.fixture
def fresh_fingerprint() -> Iterator[None]:
    """Recompute the code fingerprint in the test, and again after it (monkeypatch undone by then)."""
    cache.code_fingerprint.cache_clear()
    cache._salted_hash.cache_clear()
    yield
    cache.code_fingerprint.cache_clear()
    cache._salted_hash.cache_clear()


def _refingerprint() -> bytes:
    cache.code_fingerprint.cache_clear()
    cache._salted_hash.cache_clear()
    return cache.code_fingerprint()


def test_the_key_covers_content_format_and_entry_format(
    monkeypatch: pytest.MonkeyPatch, fresh_fingerprint: None
) -> None:
    key = RuleCache.entry_key(b"title: x\n", "sigma-yaml")
    assert key == RuleCache.entry_key(b"title: x\n", "sigma-yaml")
    assert key != RuleCache.entry_key(b"title: y\n", "sigma-yaml")
    assert key != RuleCache.entry_key(b"title: x\n", "kibana-json")
    before = _refingerprint()
    monkeypatch.setattr(cache, "ENTRY_FORMAT", cache.ENTRY_FORMAT + 1)
    assert _refingerprint() != before


def test_a_change_to_the_loaders_code_changes_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_fingerprint: None
) -> None:
    package = tmp_path / "fingerprinted_front_end"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "front_end.py").write_text("CASE = 'insensitive'\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cache, "_FINGERPRINTED_PACKAGES", ("fingerprinted_front_end",))
    before = _refingerprint()
    key = RuleCache.entry_key(b"title: x\n", "sigma-yaml")
    assert _refingerprint() == before
    (package / "front_end.py").write_text("CASE = 'sensitive'\n", encoding="utf-8")
    assert _refingerprint() != before
    assert RuleCache.entry_key(b"title: x\n", "sigma-yaml") != key


def test_the_fingerprint_reads_the_ir_and_the_parsers_versions() -> None:
    sources = {
        path.name for package in ("query", "rules") for path in (Path(cache.__file__).parents[1] / package).glob("*.py")
    }
    assert {"ir.py", "sigma.py", "eql.py", "sigma_yaml.py", "kibana_schema.py", "model.py"} <= sources
    distributions = cache._dependency_distributions()
    projects = {name.split("-", 1)[0].lower().replace("_", "-") for name in distributions}
    assert {"pysigma", "eql", "pyyaml"} <= projects


# ------------------------------------------------------------------------------------------------------------
# Unusable entries are ignored.


def _corruptions(entry: bytes, foreign: bytes) -> dict[str, bytes]:
    header = len(cache._MAGIC) + 20 + 16
    flipped = bytearray(entry)
    flipped[-5] ^= 0xFF
    return {
        "empty": b"",
        "truncated header": entry[:10],
        "truncated payload": entry[: header + (len(entry) - header) // 2],
        "flipped byte": bytes(flipped),
        "garbage": os.urandom(len(entry)),
        "wrong magic": b"X" + entry[1:],
        "another file's entry": foreign,
    }


@needs_dir_fd
@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "truncated header",
        "truncated payload",
        "flipped byte",
        "garbage",
        "wrong magic",
        "another file's entry",
    ],
)
def test_corrupt_or_foreign_entries_are_ignored(kind: str, tmp_path: Path, cache_dir: Path) -> None:
    rule, other = tmp_path / "rule.yml", tmp_path / "other.yml"
    rule.write_text(SIGMA, encoding="utf-8")
    other.write_text(SIGMA.replace("Shell from w3wp", "Other rule"), encoding="utf-8")
    load_rule_file(other)
    [other_entry] = entries(cache_dir)
    load_rule_file(rule)
    [rule_entry] = [e for e in entries(cache_dir) if e != other_entry]
    rule_entry.write_bytes(_corruptions(rule_entry.read_bytes(), other_entry.read_bytes())[kind])
    [outcome] = load_rule_file(rule)
    assert strict([outcome]) == strict(load_rule_file(rule, cache=False))
    assert outcome.name == "Shell from w3wp"


class _Planted:
    """Unpickling this would create a file: the test that it never happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (shutil.copyfile, (__file__, str(self.marker)))


@needs_dir_fd
def test_an_entry_naming_other_classes_is_refused_and_never_run(tmp_path: Path, cache_dir: Path) -> None:
    """A well-formed entry (right magic, key and checksum) whose pickle calls a function: refused before any call."""
    rule = tmp_path / "rule.yml"
    rule.write_text(SIGMA, encoding="utf-8")
    load_rule_file(rule)
    [entry] = entries(cache_dir)
    key = entry.name.removesuffix(ENTRY_SUFFIX)
    marker = tmp_path / "marker"
    payload = pickle.dumps([_Planted(marker)])
    entry.write_bytes(cache._MAGIC + bytes.fromhex(key) + cache._checksum(payload) + payload)
    [outcome] = load_rule_file(rule)
    assert not marker.exists()
    assert outcome.status == "ok" and outcome.name == "Shell from w3wp"
    # The same payload through a plain unpickler would have run the call: the test is not vacuous.
    pickle.loads(payload)
    assert marker.exists()


@needs_dir_fd
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_entry_owned_by_another_user_is_ignored(tmp_path: Path, cache_dir: Path) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(SIGMA, encoding="utf-8")
    load_rule_file(rule)
    [entry] = entries(cache_dir)
    os.chown(entry, 65534, 65534)
    with opened_cache(cache_dir) as opened:
        assert opened.get(entry.name.removesuffix(ENTRY_SUFFIX), str(rule)) is None
        os.chown(entry, os.geteuid(), os.getegid())
        assert opened.get(entry.name.removesuffix(ENTRY_SUFFIX), str(rule)) is not None


@needs_dir_fd
def test_a_symbolic_link_entry_is_ignored(tmp_path: Path, cache_dir: Path) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(SIGMA, encoding="utf-8")
    load_rule_file(rule)
    [entry] = entries(cache_dir)
    target = tmp_path / "target"
    entry.rename(target)
    entry.symlink_to(target)
    with opened_cache(cache_dir) as opened:
        assert opened.get(entry.name.removesuffix(ENTRY_SUFFIX), str(rule)) is None


# ------------------------------------------------------------------------------------------------------------
# Unsafe, unusable or disabled cache folders.


@needs_dir_fd
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_folder_others_may_write_to_is_not_used(
    mode: int, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(SIGMA, encoding="utf-8")
    load_rule_file(rule)
    [entry] = entries(cache_dir)
    (cache_dir / ENTRIES_FOLDER).chmod(mode)
    assert RuleCache.open(cache_dir) is None
    parses: list[str] = []
    real_loader_for = loader._loader_for

    def counting_loader_for(file_format: str) -> loader.Loader:
        parses.append(file_format)
        return real_loader_for(file_format)

    monkeypatch.setattr(loader, "_loader_for", counting_loader_for)
    rule.write_text(SIGMA.replace("Shell from w3wp", "Changed"), encoding="utf-8")
    [outcome] = load_rule_file(rule)
    rule.write_text(SIGMA, encoding="utf-8")
    [again] = load_rule_file(rule)
    assert (outcome.name, again.name) == ("Changed", "Shell from w3wp")
    assert parses == ["sigma-yaml", "sigma-yaml"]
    assert entries(cache_dir) == [entry]


@needs_dir_fd
def test_a_cache_folder_that_cannot_be_created_disables_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(blocker / "cache"))
    assert strict(load_bundled_rules()) == strict(load_bundled_rules(cache=False))
    assert blocker.read_text(encoding="utf-8") == "not a folder"


@needs_dir_fd
def test_a_folder_that_cannot_be_written_is_still_read(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(SIGMA, encoding="utf-8")
    load_rule_file(rule)

    def read_only_file_system(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    with opened_cache(cache_dir) as opened:
        monkeypatch.setattr(os, "replace", read_only_file_system)
        opened.put(RuleCache.entry_key(b"other", "sigma-yaml"), b"payload")
        assert opened.written == 0
        assert [p.name for p in (cache_dir / ENTRIES_FOLDER).iterdir() if p.name.startswith(TEMP_PREFIX)] == []
        found = opened.lookup(rule.read_bytes(), "sigma-yaml", str(rule))
        assert found is not None and found[0].name == "Shell from w3wp"


def test_an_empty_setting_turns_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    xdg.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv(cache.CACHE_DIR_ENV, "")
    assert cache.cache_directory() is None
    assert RuleCache.open() is None
    assert strict(load_bundled_rules()) == strict(load_bundled_rules(cache=False))
    assert list(home.iterdir()) == [] and list(xdg.iterdir()) == []


@needs_dir_fd
def test_cache_false_reads_and_writes_nothing(tmp_path: Path, cache_dir: Path) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(SIGMA, encoding="utf-8")
    load_rule_file(rule, cache=False)
    load_rules([rule], cache=False)
    assert entries(cache_dir) == []
    load_rule_file(rule)
    [entry] = entries(cache_dir)
    entry.write_bytes(b"this would be ignored anyway")
    before = entry.read_bytes()
    load_rule_file(rule, cache=False)
    assert entry.read_bytes() == before


def test_the_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cache.CACHE_DIR_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_directory() == tmp_path / "xdg" / "shellwatch"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG specification says: ignore it
    assert cache.cache_directory() == tmp_path / "home" / ".cache" / "shellwatch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_directory() == tmp_path / "home" / ".cache" / "shellwatch"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert cache.cache_directory() == tmp_path / "mine"


# ------------------------------------------------------------------------------------------------------------
# Concurrency and size.


def _write_repeatedly(folder: str, key: str, payload: bytes, times: int) -> None:
    with opened_cache(Path(folder)) as opened:
        for _ in range(times):
            opened.put(key, payload)


@needs_dir_fd
@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_concurrent_writers_never_show_half_an_entry(cache_dir: Path) -> None:
    outcomes = load_bundled_rules(cache=False).outcomes
    path = outcomes[0].path
    encoded = encode_outcomes(list(outcomes[:1]), path)
    assert encoded is not None
    payload = encoded[0]
    key = RuleCache.entry_key(b"some rule", "elastic-toml")
    context = multiprocessing.get_context("fork")
    with opened_cache(cache_dir) as reader:
        writers = [
            context.Process(target=_write_repeatedly, args=(str(cache_dir), key, payload, 300)) for _ in range(3)
        ]
        for writer in writers:
            writer.start()
        seen = 0
        while any(writer.is_alive() for writer in writers):
            found = reader.get(key, path)
            assert found is None or found == list(outcomes[:1])
            seen += found is not None
        for writer in writers:
            writer.join()
            assert writer.exitcode == 0
        assert reader.get(key, path) == list(outcomes[:1])
    assert seen > 0
    assert [p.name for p in (cache_dir / ENTRIES_FOLDER).iterdir()] == [key + ENTRY_SUFFIX]


@needs_dir_fd
def test_rereading_a_folder_adds_no_entries(tmp_path: Path, cache_dir: Path) -> None:
    for index in range(5):
        (tmp_path / f"r{index}.yml").write_text(SIGMA.replace("w3wp", f"w3wp{index}"), encoding="utf-8")
    load_rules([tmp_path])
    first = entries(cache_dir)
    for _ in range(3):
        load_rules([tmp_path])
    assert entries(cache_dir) == first and len(first) == 5


@needs_dir_fd
def test_pruning_removes_the_oldest_entries_and_stale_temporary_files(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 5)
    with opened_cache(cache_dir) as opened:
        keys = [RuleCache.entry_key(str(n).encode(), "sigma-yaml") for n in range(8)]
        for age, key in enumerate(keys):
            opened.put(key, b"payload")
            when = 1_000_000 + age
            os.utime(cache_dir / ENTRIES_FOLDER / (key + ENTRY_SUFFIX), (when, when))
        stale, fresh = (
            cache_dir / ENTRIES_FOLDER / (TEMP_PREFIX + "dead"),
            cache_dir / ENTRIES_FOLDER / (TEMP_PREFIX + "live"),
        )
        stale.write_bytes(b"half")
        fresh.write_bytes(b"half")
        os.utime(stale, (1, 1))
        opened.prune()
    left = {p.name for p in (cache_dir / ENTRIES_FOLDER).iterdir()}
    assert left == {key + ENTRY_SUFFIX for key in keys[-4:]} | {fresh.name}


@needs_dir_fd
def test_a_load_that_writes_prunes(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    for index in range(6):
        (tmp_path / f"r{index}.yml").write_text(SIGMA.replace("w3wp", f"w3wp{index}"), encoding="utf-8")
    result = load_rules([tmp_path])
    assert len(result.rules) == 6
    assert len(entries(cache_dir)) <= 3


# ------------------------------------------------------------------------------------------------------------
# A cached run never imports the parsers; the folder walk keeps its order.


@needs_dir_fd
def test_a_cached_load_imports_neither_pysigma_nor_eql(cache_dir: Path) -> None:
    script = (
        "import sys; from shellwatch.rules.loader import load_bundled_rules; "
        "result = load_bundled_rules(); assert len(result.rules) == 3; "
        "print(sorted(m for m in ('sigma', 'eql', 'yaml') if m in sys.modules))"
    )
    env = {**os.environ, cache.CACHE_DIR_ENV: str(cache_dir)}

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert run() == "['eql', 'sigma', 'yaml']"
    assert run() == "[]"


def test_the_walk_keeps_the_order_of_sorted_rglob(tmp_path: Path) -> None:
    """The scandir walk replaced ``sorted(path.rglob('*'))``; both must list the same files in the same order."""
    for name in ["b/Z.yml", "b/a.yml", "B/c.toml", "a-b/x.json", "a/b/c/deep.ndjson", "a.b/y.yaml", "_/u.YML"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.yml").write_text("x", encoding="utf-8")
    (tmp_path / "b" / ".h.yml").write_text("x", encoding="utf-8")
    (tmp_path / "notes.md").write_text("x", encoding="utf-8")
    (tmp_path / "linked").symlink_to(tmp_path / "b", target_is_directory=True)
    (tmp_path / "file-link.yml").symlink_to(tmp_path / "b" / "a.yml")

    def old_walk(path: Path) -> Iterator[Path]:
        for found in sorted(path.rglob("*")):
            if any(part.startswith(".") for part in found.relative_to(path).parts):
                continue
            if found.suffix.lower() in loader.RULE_FILE_SUFFIXES and found.is_file():
                yield found

    expected = list(old_walk(tmp_path))
    assert list(iter_rule_files([tmp_path])) == expected
    assert loader._rule_file_names([tmp_path]) == [str(p) for p in expected]
    assert len(expected) == 8


def test_the_walk_from_the_current_folder_names_files_as_pathlib_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "r.yml").write_text("x", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert loader._rule_file_names(["."]) == [str(p) for p in iter_rule_files(["."])] == ["r.yml"]
