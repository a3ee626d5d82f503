"""Large exports select their blocks in worker processes that all read the snapshot the caller reads.

One snapshot for all: the parent starts the workers (they import while they wait for their job),
takes the write lock (db.export_reads.hold_writers) before its own connection's first read, sends
the jobs, and releases the lock only once each worker has begun its read transaction and read. No
commit can fall in between, so every reader sees the same state; each worker's first read
(db.export_reads.fingerprint) is checked against the parent's. Other writers wait on the busy
timeout meanwhile: for the parent's counts and the workers' first reads, tens of milliseconds.
While another process holds the lock, the parent waits for it when it can say so (on_wait), else
fails with a message after the busy timeout (the review app's counts).

The id span of the export is cut into ranges of about BLOCK_EXAMPLES examples, dealt to the workers
in turn (range k to worker k mod n). A worker (`python -m exports.fast.worker`) gets a Job and
sends, through db.pipe: ("ready", fingerprint), then per range its ("block", Block) messages (the
lines as the message's raw data) and ("end", None); or ("failed", message). The parent reads the
ranges in order, so merging the blocks (exports.tally) sees the examples in id order, exactly as
the one-process path does.
"""
from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from sqlite_utils import Database

from db.connection import BUSY_TIMEOUT_MS
from db.export_reads import (
    count_in_scope,
    fingerprint,
    hold_writers,
    id_bounds,
    open_reader,
    release_writers,
)
from db.paths import store_path
from db.pipe import GONE, Child, python_module
from db.pipe import receive as _receive
from exports.errors import ExportError
from exports.fast import block
from exports.fast.block import Block

if TYPE_CHECKING:
    from exports.selection import Options, Selector

__all__ = ["Job", "Pool", "id_ranges", "open_reader", "receive", "usable_cpus", "workers_for"]

# Below this many examples in scope an export runs in one process: starting workers costs more than
# they save (benchmarks/results/export_speed.md: one process is faster at 50,000, two workers at
# 100,000), and the review app's exports of tens of rows start at once.
PARALLEL_MIN_EXAMPLES = 75_000
MAX_WORKERS = 4
WORKER = "exports.fast.worker"
_EXIT_WAIT_S = 10


@dataclass(frozen=True)
class Job:
    """What one worker process selects: its id ranges, [first, end), in order."""

    path: str
    kind: str
    options: Any  # SftOptions | DpoOptions
    ranges: list[tuple[int, int]]
    block_examples: int


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers_for(db: Database, options: Options) -> int:
    """How many worker processes an export with these options uses (0: it selects in this process)."""
    cpus = usable_cpus()
    if cpus < 2 or db.conn.in_transaction or store_path(db) is None:
        return 0  # an in-memory database or an open transaction cannot be shared with other processes
    if count_in_scope(db, options.scope, at_most=PARALLEL_MIN_EXAMPLES) < PARALLEL_MIN_EXAMPLES:
        return 0
    return min(cpus, MAX_WORKERS)


def id_ranges(db: Database, options: Options, examples: int, workers: int) -> list[tuple[int, int]]:
    """The id span of the export's scope cut into ranges [first, end) of about BLOCK_EXAMPLES examples."""
    bounds = id_bounds(db, options.scope)
    if bounds is None:
        return []
    first, last = bounds
    width = math.ceil((last - first + 1) / max(workers, math.ceil(examples / block.BLOCK_EXAMPLES)))
    return [(start, min(start + width, last + 1)) for start in range(first, last + 1, width)]


def receive(stream: IO[bytes]) -> tuple[str, Any]:
    """The next message from a worker (exports.fast.worker.Sender), a block with its lines; ("gone", None)
    when it stopped without a word."""
    kind, payload, data = _receive(stream)
    if data:
        payload.lines = [data]
    return kind, payload


class Pool:
    """The write lock and the worker processes of one export (module docstring)."""

    def __init__(self, db: Database, workers: int, on_wait: Callable[[], None] | None = None):
        self.db, self.workers, self.on_wait = db, workers, on_wait
        self.path = str(store_path(db) or "")  # on disk: workers_for gives an in-memory store no pool
        self._lock: sqlite3.Connection | None = None
        self._children: list[Child] = []
        self._finished = False  # every worker has sent its last range

    def __enter__(self) -> Self:
        for _ in range(self.workers):
            self._start()  # they import while waiting for a job
        try:
            self._lock = hold_writers(self.path, BUSY_TIMEOUT_MS / 1000, self.on_wait)
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            if isinstance(exc, sqlite3.OperationalError):
                raise ExportError(f"{self.path} stayed locked by another writer for {BUSY_TIMEOUT_MS // 1000} s "
                                  f"({exc}); export again when that import or run is done.") from None
            raise
        return self

    def release(self) -> None:
        """Let other writers commit again."""
        if self._lock is not None:
            release_writers(self._lock)
            self._lock = None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
        done = kind is None and self._finished  # then the workers are exiting on their own
        for child in self._children:
            child.stop(_EXIT_WAIT_S if done else 0)  # the export failed or stopped: its workers stop too

    def _start(self) -> Child:
        """Start one worker (it joins self._children)."""
        child = Child.start(python_module(WORKER), keep_stderr=True)
        self._children.append(child)
        return child

    @staticmethod
    def _send(child: Child, job: Job) -> None:
        child.send_job(job)

    def _next(self, child: Child) -> tuple[str, Any]:
        """The next message of a worker; a failed or vanished worker raises ExportError."""
        assert child.process.stdout is not None
        kind, payload = receive(child.process.stdout)
        if kind == "failed":
            raise ExportError(f"An export worker failed: {payload}")
        if kind == GONE:
            raise ExportError(f"An export worker stopped unexpectedly (exit code {child.process.wait()}): "
                              f"{child.stderr_tail() or 'no message'}. Nothing was written; export again.")
        return kind, payload

    def blocks(self, selector: Selector, options: Options, examples: int) -> Iterator[Block]:
        """The blocks of the export in id order (call inside the caller's snapshot, after its first read)."""
        ranges = id_ranges(self.db, options, examples, self.workers)
        mine = fingerprint(self.db)
        children, n = self._children, len(self._children)
        for w, child in enumerate(children):
            self._send(child, Job(self.path, selector.kind, options, ranges[w::n], block.BLOCK_EXAMPLES))
        for child in children:
            _, theirs = self._next(child)
            if tuple(theirs) != mine:
                raise ExportError(f"An export worker read another state of the database ({theirs} != {mine}); "
                                  "export again.")
        self.release()
        for k in range(len(ranges)):
            child = children[k % n]
            while (message := self._next(child))[0] == "block":
                yield message[1]
        self._finished = True
