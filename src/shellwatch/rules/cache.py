"""The compiled-rule cache: what loading a rule file gave, stored under a hash of the file's bytes.

Parsing a rule is the slow part of loading it (pySigma builds and walks each Sigma rule, eql parses each
query: a few milliseconds a rule), and the outcome depends only on the file's bytes, its format and the code
that read it. An entry is therefore keyed by a BLAKE2b hash of

* the file's bytes and its format (``sigma-yaml``, ``elastic-toml``...), and
* the code fingerprint (:func:`code_fingerprint`): :data:`ENTRY_FORMAT`, shellwatch's version, the source of
  every module of ``shellwatch.rules``, ``shellwatch.query`` and ``shellwatch.engine`` (the loaders, the front
  ends, the IR and the pattern helpers the front ends call), and the installed versions of the libraries they
  call (pySigma, eql, PyYAML and their parsers).

Any change to any of these gives another key, so a stale entry is never read; it is only left behind until
pruning removes it. The file's path is not part of the key: the outcomes are stored with their path left out
(and put back when read), so a folder read from another place, or a copy of a rule, shares the entry. When the
path shows up elsewhere in an outcome (a message quoting it), that entry is keyed by the path too.

Where: ``$SHELLWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/shellwatch``, else ``~/.cache/shellwatch``; entries
live in its ``rules/`` folder. ``SHELLWATCH_CACHE_DIR=""`` turns the cache off.

Safety. Entries are pickles, and unpickling runs code named by the data: an entry written by someone else could
make shellwatch run anything. So an entry is read only from a ``rules/`` folder that belongs to the current user
and that no one else may write to (checked with ``fstat`` on the folder opened once, and every entry is opened
relative to that open folder, so the folder cannot be swapped between the check and the read); entries must be
regular files owned by the user, opened without following symbolic links. On top of that, the unpickler accepts
only the classes a load outcome is made of (:data:`ALLOWED_CLASSES`) and refuses any other global, so even a
corrupted entry cannot call anything. Where ownership cannot be checked (no POSIX ``dir_fd`` support), the cache
is off.

Robustness. A missing, truncated, corrupt or foreign entry is ignored (the file is loaded as if there were no
cache): each entry starts with a magic string, its own key and a CRC-32 of the rest. Writers write a temporary
file in the folder and ``os.replace`` it into place, so readers and concurrent writers never see half an entry.
A folder that cannot be created or opened turns the cache off, one that cannot be written to turns writing off;
neither is reported (the rules load all the same).

Size. One entry per distinct content: re-reading a folder adds nothing. After a load that wrote entries, the
folder is pruned, oldest entries first, to :data:`MAX_ENTRIES` entries and :data:`MAX_TOTAL_BYTES` bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import hashlib
import io
import os
import pickle
import stat
import time
import zlib
from collections.abc import Iterator
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Final

from shellwatch import __version__
from shellwatch.query import ir
from shellwatch.rules import model
from shellwatch.rules.outcome import LoadOutcome

ENTRY_FORMAT: Final = 1
"""Version of the entry layout and of what is pickled in it; raise it when either changes shape. (Changes to the
IR's or the loaders' code need no bump: their source is part of every key.)"""

CACHE_DIR_ENV: Final = "SHELLWATCH_CACHE_DIR"
ENTRIES_FOLDER: Final = "rules"
ENTRY_SUFFIX: Final = ".rules"
TEMP_PREFIX: Final = ".tmp-"

MAX_ENTRIES: Final = 20_000
"""Entries kept after pruning, at most (SigmaHQ and Elastic's rule packs together are about 5,300 files)."""
MAX_TOTAL_BYTES: Final = 256 * 1024 * 1024
"""Bytes of entries kept after pruning, at most (SigmaHQ's 3,780 files take about 9 MB)."""
MAX_ENTRY_BYTES: Final = 256 * 1024 * 1024
"""A larger entry is neither written nor read."""
PRUNE_TO: Final = 0.8
"""Pruning goes down to this fraction of the limits, so that it does not run again after every load."""
STALE_TEMP_SECONDS: Final = 3600
"""A temporary file this old was left by a writer that died; pruning removes it."""

_MAGIC: Final = b"shellwatch-rules\x00"
_KEY_BYTES: Final = 20
_CHECKSUM_BYTES: Final = 4
_HEADER_BYTES: Final = len(_MAGIC) + _KEY_BYTES + _CHECKSUM_BYTES
_PATH_ID: Final = "path"

_FINGERPRINTED_PACKAGES: Final = ("shellwatch.rules", "shellwatch.query", "shellwatch.engine")
"""Packages whose source decides what loading a rule file gives (the front ends call the engine's pattern and
value helpers while building the IR)."""
_DEPENDENCY_MODULES: Final = ("sigma", "eql", "yaml", "lark", "pyparsing")
"""Top-level modules of the libraries the loaders call; their distributions' versions are part of every key."""
_DEPENDENCY_DISTRIBUTIONS: Final = frozenset({"pysigma", "eql", "pyyaml", "lark", "lark-parser", "pyparsing"})


def _allowed_classes() -> frozenset[type]:
    from_modules = (
        value
        for module in (ir, model)
        for value in vars(module).values()
        if isinstance(value, type)
        and value.__module__ == module.__name__
        and (dataclasses.is_dataclass(value) or value is ir.Case)
    )
    time_values = (datetime.date, datetime.datetime, datetime.time, datetime.timedelta, datetime.timezone)
    return frozenset((LoadOutcome, *from_modules, *time_values))


ALLOWED_CLASSES: Final = _allowed_classes()
"""The only classes an entry may hold: load outcomes, rules and their parts, the IR, and the date and time values
a TOML rule's free-form fields may carry. The unpickler refuses every other global."""

_FIELD_NAMES: Final = {
    cls: tuple(field.name for field in dataclasses.fields(cls))
    for cls in ALLOWED_CLASSES
    if dataclasses.is_dataclass(cls)
}
_KEYWORD_ONLY_CLASSES: Final = frozenset(
    cls for cls in _FIELD_NAMES if any(field.kw_only for field in dataclasses.fields(cls))
)


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """A keyword-only dataclass from its field values in order: the slotted dataclass's own ``__setstate__``
    does the same but looks its fields up again for every object, which doubles the time of a cached load.
    (``__post_init__`` is not run again: the rule was validated when it was loaded and stored.)"""
    names = _FIELD_NAMES[cls]
    if len(names) != len(values):
        raise pickle.UnpicklingError(f"{cls.__qualname__} takes {len(names)} values")
    rebuilt: Any = object.__new__(cls)
    for name, value in zip(names, values, strict=True):
        object.__setattr__(rebuilt, name, value)
    return rebuilt


_ALLOWED_GLOBALS: Final = {(cls.__module__, cls.__qualname__): cls for cls in ALLOWED_CLASSES} | {
    (__name__, _rebuild.__qualname__): _rebuild
}
"""What an entry may name: IR nodes are stored as ``cls(*fields)`` (their ``__init__`` rebuilds them about a
third faster than the default ``__setstate__``), keyword-only dataclasses as ``_rebuild(cls, fields)``."""


class _Uncacheable(Exception):
    """An outcome holds a value of a class the unpickler would refuse: such a file is not cached."""


def cache_directory() -> Path | None:
    """Where the cache lives (see the module docstring), or None when ``SHELLWATCH_CACHE_DIR`` is set empty."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        return Path(configured).expanduser() if configured else None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG base directory specification says a relative path there is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "shellwatch"
    return Path.home() / ".cache" / "shellwatch"


@lru_cache(maxsize=1)
def code_fingerprint() -> bytes:
    """A digest of everything besides a file's bytes and format that decides what loading it gives."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(f"entry format {ENTRY_FORMAT}\0shellwatch {__version__}\0".encode())
    for package in _FINGERPRINTED_PACKAGES:
        spec = find_spec(package)
        for folder in (spec.submodule_search_locations or ()) if spec is not None else ():
            for source in sorted(Path(folder).glob("*.py")):
                digest.update(source.name.encode() + b"\0")
                digest.update(source.read_bytes())
    for distribution in _dependency_distributions():
        digest.update(distribution.encode() + b"\0")
    return digest.digest()


def _dependency_distributions() -> list[str]:
    # The dist-info folder names carry the installed versions; reading them avoids importing importlib.metadata
    # (a fifth of a second) on the start-up path of every command.
    folders: set[str] = set()
    for name in _DEPENDENCY_MODULES:
        spec = find_spec(name)
        for location in (spec.submodule_search_locations or ()) if spec is not None else ():
            folders.add(os.path.dirname(location))
    found: list[str] = []
    for folder in sorted(folders):
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.endswith(".dist-info"):
                    continue
                project = entry.name.split("-", 1)[0].lower().replace("_", "-").replace(".", "-")
                if project in _DEPENDENCY_DISTRIBUTIONS:
                    found.append(entry.name)
    return sorted(found)


class _EntryPickler(pickle.Pickler):
    """Pickles a file's outcomes with its path left out and only allowed classes in."""

    def __init__(self, file: io.BytesIO, path: str) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.path = path

    def persistent_id(self, obj: Any) -> Any:
        # Identity, not equality: only the path string the loader was handed is taken out, never a description
        # that happens to spell it.
        if obj is self.path:
            return _PATH_ID
        if type(obj) is model.Threat:
            return _threat_id(obj)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if obj is _rebuild:
            return NotImplemented
        cls = obj if isinstance(obj, type) else type(obj)
        if cls not in ALLOWED_CLASSES:
            raise _Uncacheable(f"{cls.__module__}.{cls.__qualname__}")
        if obj is cls or cls not in _FIELD_NAMES:
            return NotImplemented
        values = tuple(getattr(obj, name) for name in _FIELD_NAMES[cls])
        if cls in _KEYWORD_ONLY_CLASSES:
            return _rebuild, (cls, values)
        return cls, values


class _EntryUnpickler(pickle.Unpickler):
    """Rebuilds outcomes from an entry, refusing every class but :data:`ALLOWED_CLASSES`."""

    def __init__(self, file: io.BytesIO, path: str) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a rule cache entry") from None

    def persistent_load(self, pid: Any) -> Any:
        if pid == _PATH_ID:
            return self.path
        if type(pid) is tuple and pid and pid[0] == _THREAT_ID:
            return _threat_from_id(pid)
        raise pickle.UnpicklingError("unknown persistent id in a rule cache entry")


# ATT&CK mappings (two thirds of the objects of a cached Sigma rule) repeat from rule to rule: an entry names each
# by its content, and reading builds each distinct one once per process.
_THREAT_ID: Final = "threat"
MAX_SHARED_THREATS: Final = 4096
"""Distinct ATT&CK mappings remembered while reading entries (ATT&CK has about 14 tactics x 600 techniques)."""
_threats: dict[tuple[Any, ...], model.Threat] = {}


def _entry_id(entry: model.AttackEntry | model.Technique) -> tuple[str, str, str]:
    return (entry.id, entry.name, entry.reference)


def _threat_id(threat: model.Threat) -> tuple[Any, ...]:
    techniques = tuple(
        (*_entry_id(technique), tuple(_entry_id(sub) for sub in technique.subtechniques))
        for technique in threat.techniques
    )
    return (_THREAT_ID, threat.framework, _entry_id(threat.tactic), techniques)


def _threat_from_id(pid: tuple[Any, ...]) -> model.Threat:
    threat = _threats.get(pid)
    if threat is not None:
        return threat
    try:
        _, framework, tactic, techniques = pid
        threat = model.Threat(
            framework=framework,
            tactic=_attack_entry(tactic),
            techniques=tuple(
                model.Technique(
                    id=technique_id,
                    name=name,
                    reference=reference,
                    subtechniques=tuple(_attack_entry(sub) for sub in subtechniques),
                )
                for technique_id, name, reference, subtechniques in techniques
            ),
        )
    except (TypeError, ValueError) as exc:
        raise pickle.UnpicklingError("malformed ATT&CK mapping in a rule cache entry") from exc
    if len(_threats) >= MAX_SHARED_THREATS:
        _threats.clear()
    _threats[pid] = threat
    return threat


def _attack_entry(fields: Any) -> model.AttackEntry:
    entry_id, name, reference = fields
    return model.AttackEntry(id=entry_id, name=name, reference=reference)


def encode_outcomes(outcomes: list[LoadOutcome], path: str) -> tuple[bytes, bool] | None:
    """The pickled ``outcomes`` with ``path`` left out, and whether they still mention the path elsewhere
    (then the entry must be keyed by the path too); None when they cannot be cached.

    Runs in loader worker processes too, so that outcomes cross back to the parent pickled only once.
    """
    buffer = io.BytesIO()
    try:
        _EntryPickler(buffer, path).dump(outcomes)
    except (_Uncacheable, pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return None
    payload = buffer.getvalue()
    return payload, path.encode("utf-8", "surrogatepass") in payload


def decode_outcomes(payload: bytes, path: str, start: int = 0) -> list[LoadOutcome] | None:
    """Outcomes from :func:`encode_outcomes`'s payload (from offset ``start`` on), their path put back; None when
    the payload is not one."""
    buffer = io.BytesIO(payload)
    buffer.seek(start)
    try:
        outcomes = _EntryUnpickler(buffer, path).load()
    # A damaged pickle fails in many ways (a bad opcode, a truncated frame, a class called with the wrong
    # arguments, an exhausted stack); whatever the way, the entry is ignored and the file loaded afresh.
    except Exception:
        return None
    if not isinstance(outcomes, list) or not all(type(item) is LoadOutcome for item in outcomes):
        return None
    return outcomes


class RuleCache:
    """An open cache folder: look entries up by key, write them, prune. Use :meth:`open` to get one."""

    def __init__(self, folder: Path, folder_fd: int) -> None:
        self.folder = folder
        self._fd = folder_fd
        self._writable = True
        self.written = 0
        """Entries this object wrote."""

    @classmethod
    def open(cls, directory: Path | None = None) -> RuleCache | None:
        """The cache in ``directory`` (default :func:`cache_directory`), created if need be; None when the
        cache is off or the folder is unusable or unsafe (see the module docstring)."""
        if directory is None:
            directory = cache_directory()
        if directory is None or not _dir_fd_supported():
            return None
        folder = directory / ENTRIES_FOLDER
        with contextlib.suppress(OSError):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if not _safe_folder(info):
            os.close(fd)
            return None
        return cls(folder, fd)

    def is_safe(self) -> bool:
        """Whether the open folder is still the user's alone (its mode may have changed since :meth:`open`)."""
        try:
            return self._fd >= 0 and _safe_folder(os.fstat(self._fd))
        except OSError:
            return False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RuleCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.close()

    @staticmethod
    def entry_key(content: bytes, file_format: str, path: str | None = None) -> str:
        """The key of a file's entry: its bytes and format (and ``path``, for outcomes that quote it)."""
        digest = _salted_hash().copy()
        digest.update(file_format.encode() + b"\0")
        if path is not None:
            digest.update(b"path\0" + path.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(content)
        return digest.hexdigest()

    def get(self, key: str, path: str) -> list[LoadOutcome] | None:
        """The outcomes stored under ``key`` with ``path`` put back, or None (no entry, or an unusable one)."""
        data = self._read(key + ENTRY_SUFFIX)
        if data is None or len(data) < _HEADER_BYTES or not data.startswith(_MAGIC):
            return None
        stored_key = data[len(_MAGIC) : len(_MAGIC) + _KEY_BYTES]
        checksum = data[len(_MAGIC) + _KEY_BYTES : _HEADER_BYTES]
        if stored_key != bytes.fromhex(key) or checksum != _checksum(memoryview(data)[_HEADER_BYTES:]):
            return None
        return decode_outcomes(data, path, _HEADER_BYTES)

    def lookup(self, content: bytes, file_format: str, path: str) -> list[LoadOutcome] | None:
        """The cached outcomes of a file with these bytes, format and path, if any."""
        found = self.get(self.entry_key(content, file_format), path)
        if found is None:
            found = self.get(self.entry_key(content, file_format, path), path)
        return found

    def store(self, content: bytes, file_format: str, path: str, encoded: tuple[bytes, bool]) -> None:
        """Write the entry of a file from :func:`encode_outcomes`'s result (best effort, never raises)."""
        payload, mentions_path = encoded
        self.put(self.entry_key(content, file_format, path if mentions_path else None), payload)

    def put(self, key: str, payload: bytes) -> None:
        """Write ``payload`` under ``key``, atomically (best effort, never raises)."""
        if not self._writable or self._fd < 0 or len(payload) + _HEADER_BYTES > MAX_ENTRY_BYTES:
            return
        header = _MAGIC + bytes.fromhex(key) + _checksum(payload)
        temp = f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(temp, flags, 0o600, dir_fd=self._fd)
            try:
                try:
                    _write_all(fd, header + payload)
                finally:
                    os.close(fd)
                os.replace(temp, key + ENTRY_SUFFIX, src_dir_fd=self._fd, dst_dir_fd=self._fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=self._fd)
                raise
        except OSError:
            # A read-only or full file system: keep reading, stop trying to write.
            self._writable = False
            return
        self.written += 1

    def prune(self) -> None:
        """Remove the oldest entries beyond the limits, and temporary files left by dead writers."""
        if self._fd < 0:
            return
        entries: list[tuple[float, int, str]] = []
        now = time.time()
        try:
            with os.scandir(self._fd) as listing:
                for entry in listing:
                    with contextlib.suppress(OSError):
                        info = entry.stat(follow_symlinks=False)
                        if entry.name.startswith(TEMP_PREFIX):
                            if now - info.st_mtime > STALE_TEMP_SECONDS:
                                os.unlink(entry.name, dir_fd=self._fd)
                        elif entry.name.endswith(ENTRY_SUFFIX):
                            entries.append((info.st_mtime, info.st_size, entry.name))
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        if len(entries) <= MAX_ENTRIES and total <= MAX_TOTAL_BYTES:
            return
        entries.sort()
        keep_entries, keep_bytes = int(MAX_ENTRIES * PRUNE_TO), int(MAX_TOTAL_BYTES * PRUNE_TO)
        count = len(entries)
        for _, size, name in entries:
            if count <= keep_entries and total <= keep_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._fd)
            count -= 1
            total -= size

    def _read(self, name: str) -> bytes | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=self._fd)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_size > MAX_ENTRY_BYTES:
                return None
            data = os.read(fd, info.st_size)
            # A short read (a writer replacing the entry cannot cause one: it replaces the name, not the file)
            # is taken for a miss rather than retried.
            return data if len(data) == info.st_size else None
        except OSError:
            return None
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@lru_cache(maxsize=1)
def _salted_hash() -> hashlib.blake2b:
    return hashlib.blake2b(code_fingerprint(), digest_size=_KEY_BYTES)


def _safe_folder(info: os.stat_result) -> bool:
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _checksum(payload: bytes | memoryview) -> bytes:
    # CRC-32 catches truncation and flipped bits at a fifth of a cryptographic hash's cost; it is not a defence
    # against forgery (the folder's ownership is), only against damage.
    return zlib.crc32(payload).to_bytes(_CHECKSUM_BYTES, "big")


def _dir_fd_supported() -> bool:
    # os.replace shares os.rename's implementation, but only os.rename is listed in supports_dir_fd.
    return (
        hasattr(os, "geteuid")
        and {os.open, os.rename, os.unlink} <= os.supports_dir_fd
        and os.scandir in os.supports_fd
    )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector while many entries are read: they hold no cycles, and the collections that
    their tens of thousands of small objects would trigger cost a quarter of the reading time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = [
    "ALLOWED_CLASSES",
    "CACHE_DIR_ENV",
    "ENTRY_FORMAT",
    "RuleCache",
    "cache_directory",
    "code_fingerprint",
    "collector_paused",
    "decode_outcomes",
    "encode_outcomes",
]
