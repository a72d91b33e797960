"""Spreading inputs over worker processes and merging their results deterministically, in input order.

Each worker process builds its scanner once (the rules reach it once: inherited through ``fork``, or pickled
with the scanner's factory for ``forkserver`` and ``spawn``), then scans the inputs it is handed one at a time and
streams what it finds back to the parent in batches while it reads. The parent hands inputs out in order, in
groups of consecutive small inputs (one message for many files), keeping each worker one group ahead; groups
shrink as the inputs run out (at most the inputs left over twice the workers), so that the workers finish together.
The parent passes results on strictly in input order: the results of an input go out as soon as every earlier
input is finished, so the same results come out in the same order whatever the number of workers. Results of later
inputs wait in the parent; when too many wait, the parent reads only from the worker scanning the earliest
unfinished input, and the others block on their pipes until it catches up, so memory stays bounded whatever the
inputs hold.

Many small inputs cost the parent little: a worker folds the results of consecutive inputs that the caller's
``fold`` accepts (counts, which add up) into one, and reports the whole run of inputs finished at once.

A worker that dies (the parser crashing on a crafted file, the kernel's out-of-memory killer) costs the rest of
the input it was scanning, reported through ``lost``; its other inputs go to a new worker and the run goes on.
An exception raised by a scanner is a bug, not bad input: it stops the run with :class:`WorkerError`.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

TaskT = TypeVar("TaskT")
ResultT = TypeVar("ResultT")

Scan = Callable[[TaskT], Iterable[ResultT]]
"""Scans one input (a task) in a worker, yielding its results in order."""

Fold = Callable[[ResultT | None, ResultT], ResultT | None]
"""Folds the only result of a task into the folded result of the tasks just before it (None: they yielded nothing),
returning what stands for them all, or None when the result must stay apart. Runs in the workers."""

Piece = tuple[int, int, list[ResultT]]
"""``(first, end, results)``: results of task ``first`` with more to come when ``end == first``; else the last
results of tasks ``first .. end - 1``, which are then all finished (several only when they were folded)."""

BATCH_RESULTS = 512
"""Results per message from a worker, at most."""
BATCH_SECONDS = 0.25
"""A worker sends what it has at least this often, so that progress keeps moving on slow inputs."""
GROUP_WEIGHT = 4 << 20
"""Tasks handed to a worker at once weigh this much at most together (a heavier task goes alone)..."""
GROUP_TASKS = 64
"""... and are at most this many: small inputs travel in groups, so that each costs the parent little."""
MAX_WAITING_RESULTS = 20_000
"""Results of later inputs held by the parent before it stops reading the workers scanning them."""
FORK_MIN_BYTES = 4 << 20
"""Below this much input, ``workers=None`` scans in-process: starting forked workers (a few ms) does not pay."""
SPAWN_MIN_BYTES = 64 << 20
"""The same for ``spawn``/``forkserver`` workers, which start a new interpreter and import shellwatch (~0.3 s)."""

_PIECES = "pieces"
_FAILED = "failed"


class WorkerError(RuntimeError):
    """A scanner raised in a worker process (the message carries the worker's traceback), or the run lost track of
    an input."""


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(requested: int | None, inputs: int, total_bytes: int) -> int:
    """How many worker processes to scan ``inputs`` inputs with; 1 means in-process.

    ``requested`` None: all cores, but in-process when the inputs are too small to repay starting workers.
    An explicit count is honoured (up to one worker per input).
    """
    if requested is not None and requested < 1:
        raise ValueError(f"workers must be at least 1, not {requested}")
    count = min(requested if requested is not None else available_cores(), inputs)
    if count <= 1:
        return 1
    if requested is None:
        minimum = FORK_MIN_BYTES if _start_method() == "fork" else SPAWN_MIN_BYTES
        if total_bytes < minimum:
            return 1
    return count


def _start_method() -> str:
    """``fork`` where it is safe and cheapest (Linux, a process with one thread: a lock held by another thread
    would stay locked forever in the child); else ``forkserver`` or ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and sys.platform == "linux" and threading.active_count() == 1:
        try:
            single_threaded = len(os.listdir("/proc/self/task")) == 1  # native threads too
        except OSError:
            single_threaded = False
        if single_threaded:
            return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _context() -> Any:  # a multiprocessing context (its classes are not in the typeshed stubs)
    method = _start_method()
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # Workers fork from a server that has already imported the scanner's modules.
        context.set_forkserver_preload(["shellwatch.pipeline"])
    return context


def _worker_main(
    connection: Connection, make_scan: Callable[[], Scan[Any, Any]], fold: Fold[Any] | None, scanning: Any
) -> None:
    """A worker process: build the scanner, then scan groups of inputs until told to stop (``None``).

    ``scanning`` (shared memory) holds the index of the input being scanned, for the parent to know which input a
    dead worker was on without a message per input.
    """
    # Ctrl-C reaches the whole process group: the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    scan = make_scan()
    # Objects made so far live as long as the worker: the collector need not walk them again and again.
    gc.freeze()
    outbox = _Outbox(connection, fold)
    while True:
        try:
            group = connection.recv()
        except EOFError:
            return
        if group is None:
            return
        first, tasks = group
        for index, task in enumerate(tasks, first):
            scanning.value = index
            batch: list[Any] = []
            streamed = False
            try:
                for result in scan(task):
                    batch.append(result)
                    if outbox.due(len(batch)):
                        outbox.add_part(index, batch)
                        outbox.flush()
                        batch = []
                        streamed = True
            except Exception:
                outbox.flush()
                connection.send((_FAILED, (index, traceback.format_exc())))
                return
            outbox.add_finished(index, batch)
            # An input sent in part is finished at once: then no input but the one being scanned is ever half
            # sent, and inputs scanned since the last message can be scanned again if the worker dies.
            if streamed or outbox.due(0):
                outbox.flush()
        # The parent hands out the next group when it hears this one is done.
        outbox.flush()


class _Outbox:
    """A worker's results not sent yet: sent together, so that many small inputs cost few messages, and folded
    together where ``fold`` allows, so that they cost the parent few results."""

    def __init__(self, connection: Connection, fold: Fold[Any] | None) -> None:
        self.connection = connection
        self.fold = fold
        self.entries: list[Piece[Any]] = []
        self.count = 0
        self.run_open = False
        """Whether the last entry is a run of finished inputs whose results were folded (more may join it)."""
        self.sent_at = time.monotonic()

    def due(self, more: int) -> bool:
        return self.count + more >= BATCH_RESULTS or time.monotonic() - self.sent_at >= BATCH_SECONDS

    def add_part(self, index: int, results: list[Any]) -> None:
        self.entries.append((index, index, results))
        self.count += len(results)
        self.run_open = False

    def add_finished(self, index: int, results: list[Any]) -> None:
        fold = self.fold
        if fold is not None and len(results) <= 1:
            if self.run_open and self.entries[-1][1] == index:
                first, _, held = self.entries[-1]
                joined = self._folded(held[0] if held else None, results)
                if joined is not None:
                    self.entries[-1] = (first, index + 1, joined)
                    self.count += len(joined) - len(held)
                    return
            started = self._folded(None, results)
            if started is not None:
                self.entries.append((index, index + 1, started))
                self.count += len(started)
                self.run_open = True
                return
        self.entries.append((index, index + 1, results))
        self.count += len(results)
        self.run_open = False

    def _folded(self, held: Any, results: list[Any]) -> list[Any] | None:
        """The results of a run after an input with ``results`` (none, or one) joins it; None if it cannot."""
        if not results:
            return [] if held is None else [held]
        assert self.fold is not None
        folded = self.fold(held, results[0])
        return None if folded is None else [folded]

    def flush(self) -> None:
        if self.entries:
            self.connection.send((_PIECES, self.entries))
        self.entries = []
        self.count = 0
        self.run_open = False
        self.sent_at = time.monotonic()


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    connection: Connection
    scanning: Any
    """Shared memory: the index of the task the worker is scanning (-1 before the first)."""
    groups: deque[list[int]] = field(default_factory=deque)
    """Groups of consecutive tasks handed to the worker, ``[first not finished, end]``, in order; the first task
    of the first group is the one it is scanning."""

    @property
    def current(self) -> int | None:
        return self.groups[0][0] if self.groups else None


class _OrderedRun(Generic[TaskT, ResultT]):
    """The parent's side of one run (see :func:`scan_in_order`)."""

    def __init__(
        self,
        tasks: Sequence[TaskT],
        make_scan: Callable[[], Scan[TaskT, ResultT]],
        processes: int,
        lost: Callable[[TaskT, str], ResultT],
        weights: Sequence[int | None] | None,
        fold: Fold[ResultT] | None,
    ) -> None:
        self.tasks = tasks
        self.make_scan = make_scan
        self.processes = processes
        self.lost = lost
        self.fold = fold
        # Weight of the tasks before each task: a group's end is found by bisection, not task by task.
        self.weight_before: list[int] | None = (
            None
            if weights is None
            else list(accumulate((GROUP_WEIGHT if weight is None else weight for weight in weights), initial=0))
        )
        self.context = _context()
        self.workers: list[_Worker] = []
        self.unassigned: deque[list[int]] = deque([[0, len(tasks)]] if tasks else [])
        """Stretches of consecutive tasks no worker holds, ``[first, end]``, in order."""
        self.remaining = len(tasks)
        """Tasks no worker holds."""
        self.waiting: dict[int, list[list[ResultT]]] = {}
        self.waiting_count = 0
        self.finished: dict[int, int] = {}
        """First task of a finished run -> the task after the run."""
        self.head = 0
        """The first task whose results have not all been passed on."""

    def run(self) -> Generator[Piece[ResultT], None, None]:
        completed = False
        try:
            for _ in range(self.processes):
                self._start_worker()
            while self.head < len(self.tasks):
                watched = self._watched()
                if not watched:  # every unfinished task is with some worker: never true while tasks remain
                    raise WorkerError(f"no worker holds input {self.head}")
                for connection in wait(watched):
                    self._receive(self._worker_of(connection))
                yield from self._drain()
            completed = True
        finally:
            self._stop(gracefully=completed)

    def _start_worker(self) -> None:
        parent_end, child_end = self.context.Pipe(duplex=True)
        scanning = self.context.RawValue("q", -1)
        process = self.context.Process(
            target=_worker_main,
            args=(child_end, self.make_scan, self.fold, scanning),
            name="shellwatch-worker",
            daemon=True,
        )
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end, scanning)
        self.workers.append(worker)
        # Two groups each: one to scan, one to start on at once when it is done.
        self._assign(worker)
        self._assign(worker)

    def _assign(self, worker: _Worker) -> None:
        """Hand the worker the next group: consecutive tasks up to :data:`GROUP_WEIGHT` (a heavier task alone),
        :data:`GROUP_TASKS`, and the tasks left over twice the workers (each worker holds two groups: so that the
        last groups are small and the workers run out of work together)."""
        if not self.unassigned:
            return
        stretch = self.unassigned[0]
        first, stop = stretch
        end = min(stop, first + max(1, min(GROUP_TASKS, self.remaining // (2 * self.processes))))
        weight_before = self.weight_before
        if weight_before is not None:
            fits = bisect_right(weight_before, weight_before[first] + GROUP_WEIGHT, first, end + 1) - 1
            end = max(first + 1, fits)
        stretch[0] = end
        if end == stop:
            self.unassigned.popleft()
        self.remaining -= end - first
        worker.groups.append([first, end])
        # A worker that died is found by the parent's next read, which hands its tasks on.
        with contextlib.suppress(OSError):
            worker.connection.send((first, self.tasks[first:end]))

    def _watched(self) -> list[Connection]:
        busy = [worker for worker in self.workers if worker.groups]
        if self.waiting_count >= MAX_WAITING_RESULTS:
            # Backpressure: only the worker scanning the earliest unfinished task is read; the others block.
            busy = [worker for worker in busy if worker.current == self.head] or busy
        return [worker.connection for worker in busy]

    def _worker_of(self, connection: Any) -> _Worker:
        return next(worker for worker in self.workers if worker.connection is connection)

    def _receive(self, worker: _Worker) -> None:
        try:
            kind, entries = worker.connection.recv()
        except (EOFError, OSError):
            self._replace_dead(worker)
            return
        if kind == _FAILED:
            index, text = entries
            raise WorkerError(f"a worker failed on input {index} ({self.tasks[index]!r}):\n{text}")
        for first, end, results in entries:
            if results:
                self.waiting.setdefault(first, []).append(results)
                self.waiting_count += len(results)
            if end > first:
                self.finished[first] = end
                self._done(worker, end)

    def _done(self, worker: _Worker, end: int) -> None:
        """The worker finished its tasks before ``end``: its next group, and more work if a group is done."""
        groups = worker.groups
        while groups and groups[0][0] < end:
            group = groups[0]
            group[0] = min(end, group[1])
            if group[0] == group[1]:
                groups.popleft()
                self._assign(worker)

    def _replace_dead(self, worker: _Worker) -> None:
        worker.process.join(timeout=5)
        worker.connection.close()
        self.workers.remove(worker)
        crashed = worker.scanning.value
        not_done: list[list[int]] = []
        for first, end in worker.groups:
            if first <= crashed < end:
                code = worker.process.exitcode
                reason = f"worker process ended (exit code {code}) while reading this input; the rest of it is skipped"
                self.waiting.setdefault(crashed, []).append([self.lost(self.tasks[crashed], reason)])
                self.waiting_count += 1
                self.finished[crashed] = crashed + 1
                not_done += [[first, crashed], [crashed + 1, end]]
            else:
                not_done.append([first, end])
        # Nothing of the others reached the parent (see _worker_main): they are scanned again, first in line.
        not_done = [stretch for stretch in not_done if stretch[0] < stretch[1]]
        self.unassigned.extendleft(reversed(not_done))
        self.remaining += sum(end - first for first, end in not_done)
        if self.unassigned:
            self._start_worker()

    def _drain(self) -> list[Piece[ResultT]]:
        """The pieces that can be passed on now, in order."""
        ready: list[Piece[ResultT]] = []
        waiting, finished = self.waiting, self.finished
        while self.head < len(self.tasks):
            index = self.head
            batches = waiting.pop(index, None)
            end = finished.pop(index, index)
            if batches:
                self.waiting_count -= sum(len(batch) for batch in batches)
                ready += [(index, index, batch) for batch in batches[:-1]]
                ready.append((index, end, batches[-1]))
            elif end > index:
                ready.append((index, end, []))
            if end == index:
                break
            self.head = end
        return ready

    def _stop(self, gracefully: bool) -> None:
        for worker in self.workers:
            if gracefully:
                with contextlib.suppress(OSError):
                    worker.connection.send(None)
            else:
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join(timeout=10 if gracefully else 5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self.workers.clear()


def scan_in_order(
    tasks: Sequence[TaskT],
    make_scan: Callable[[], Scan[TaskT, ResultT]],
    processes: int,
    lost: Callable[[TaskT, str], ResultT],
    weights: Sequence[int | None] | None = None,
    fold: Fold[ResultT] | None = None,
) -> Generator[Piece[ResultT], None, None]:
    """Scan ``tasks`` in ``processes`` worker processes; yield their results in task order as
    :data:`Piece` ``(first, end, results)``.

    ``make_scan`` runs once in each worker and returns the function that scans one task; for ``forkserver`` and
    ``spawn`` it must pickle (a module-level function, or a :func:`functools.partial` of one), and so must
    ``fold``. Each task's results come in one or more batches, in the order its scan yielded them, the last one
    saying the task is finished (``end > first``); task ``end`` starts only after that. With ``fold``, the tasks of a
    run of consecutive tasks that yielded at most one result each, all accepted by ``fold``, finish together in one
    piece holding their folded result (or none). ``lost(task, reason)`` makes the result that reports a task cut
    short by the death of its worker. ``weights`` (e.g. input sizes; None: heavy) lets small tasks travel to the
    workers in groups. Closing the iterator early stops the workers.
    """
    return _OrderedRun(tasks, make_scan, processes, lost, weights, fold).run()
