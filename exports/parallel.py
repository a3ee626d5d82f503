"""Large exports select their blocks in worker processes that all read the snapshot the caller reads.

One snapshot for all: the parent starts the workers (they import while they wait for their job),
takes the write lock (BEGIN IMMEDIATE on a connection of its own) before its own connection's first
read, sends the jobs, and releases the lock only once each worker has begun its read transaction
and read. No commit can fall in between, so every reader sees the same state; each worker's first
read (exports.source.fingerprint) is checked against the parent's. Other writers wait on the busy
timeout meanwhile: for the parent's counts and the workers' first reads, tens of milliseconds.
While another process holds the lock, the parent waits for it (db.tx.when_unlocked) when it can say
so (on_wait), else fails with a message after the busy timeout (the review app's counts).

The id span of the export is cut into ranges of about BLOCK_EXAMPLES examples, dealt to the workers
in turn (range k to worker k mod n). A worker (`python -m exports.block_worker`) reads a pickled
Job on stdin and writes messages on stdout, each a pickled (kind, payload, size) and then size
bytes of lines: ("ready", fingerprint), then per range its ("block", Block) messages and
("end", None); or ("failed", message). The parent reads the ranges in
order, so merging the blocks (exports.tally) sees the examples in id order, exactly as the
one-process path does.
"""
from __future__ import annotations

import math
import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from sqlite_utils import Database

from db.connection import BUSY_TIMEOUT_MS
from db.tx import when_unlocked
from exports import block
from exports.block import Block
from exports.errors import ExportError
from exports.lineage import database_path
from exports.source import count_in_scope, fingerprint, id_bounds

if TYPE_CHECKING:
    from exports.engine import Options, Selector

# Below this many examples in scope an export runs in one process: starting workers costs more than
# they save (benchmarks/results/export_speed.md: one process is faster at 50,000, two workers at
# 100,000), and the review app's exports of tens of rows start at once.
PARALLEL_MIN_EXAMPLES = 75_000
MAX_WORKERS = 4
_EXIT_WAIT_S = 10
_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder that holds the exports package


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
    if cpus < 2 or db.conn.in_transaction or not database_path(db):
        return 0  # an in-memory database or an open transaction cannot be shared with other processes
    if count_in_scope(db, options.splits, options.datasets, at_most=PARALLEL_MIN_EXAMPLES) < PARALLEL_MIN_EXAMPLES:
        return 0
    return min(cpus, MAX_WORKERS)


def id_ranges(db: Database, options: Options, examples: int, workers: int) -> list[tuple[int, int]]:
    """The id span of the export's scope cut into ranges [first, end) of about BLOCK_EXAMPLES examples."""
    bounds = id_bounds(db, options.splits, options.datasets)
    if bounds is None:
        return []
    first, last = bounds
    width = math.ceil((last - first + 1) / max(workers, math.ceil(examples / block.BLOCK_EXAMPLES)))
    return [(start, min(start + width, last + 1)) for start in range(first, last + 1, width)]


def open_reader(path: str) -> Database:
    """A connection for reading only (the parent has applied the migrations), with the store's busy timeout."""
    return Database(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000))


def receive(stream: IO[bytes]) -> tuple[str, Any]:
    """The next message from a worker (block_worker.Sender), or ("gone", None) when it stopped without a word."""
    try:
        kind, payload, size = pickle.load(stream)
    except EOFError:
        return "gone", None
    if size:
        payload.lines = [stream.read(size)]
        if len(payload.lines[0]) != size:
            return "gone", None
    return kind, payload


class Pool:
    """The write lock and the worker processes of one export (module docstring)."""

    def __init__(self, db: Database, workers: int, on_wait: Callable[[], None] | None = None):
        self.db, self.workers, self.on_wait = db, workers, on_wait
        self.path = database_path(db)
        self._lock: sqlite3.Connection | None = None
        self._children: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []  # (process, its stderr)
        self._finished = False  # every worker has sent its last range

    def __enter__(self) -> Self:
        for _ in range(self.workers):
            self._start()  # they import while waiting for a job
        self._lock = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        lock = self._lock
        try:
            if self.on_wait is None:
                lock.execute("BEGIN IMMEDIATE")
            else:
                when_unlocked(lambda: lock.execute("BEGIN IMMEDIATE"), on_wait=self.on_wait)
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
            if self._lock.in_transaction:
                self._lock.execute("ROLLBACK")  # nothing was written under it
            self._lock.close()
            self._lock = None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
        done = kind is None and self._finished  # then the workers are exiting on their own
        for child, errors in self._children:
            try:
                child.wait(timeout=_EXIT_WAIT_S if done else 0)
            except subprocess.TimeoutExpired:
                child.kill()  # the export failed or stopped: its workers stop too
                child.wait()
            assert child.stdout is not None
            child.stdout.close()
            errors.close()

    def _start(self) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        """Start one worker (it joins self._children); returns it and its stderr file."""
        errors = tempfile.TemporaryFile()  # noqa: SIM115  (a worker's stderr, read if it fails; closed in __exit__)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
        child = subprocess.Popen([sys.executable, "-m", "exports.block_worker"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=errors, env=env)
        self._children.append((child, errors))
        return child, errors

    @staticmethod
    def _send(child: subprocess.Popen[bytes], job: Job) -> None:
        assert child.stdin is not None
        try:
            child.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
            child.stdin.close()
        except BrokenPipeError:
            pass  # it stopped already: its first message (none) says how

    def _next(self, child: subprocess.Popen[bytes], errors: IO[bytes]) -> tuple[str, Any]:
        """The next message of a worker; a failed or vanished worker raises ExportError."""
        assert child.stdout is not None
        kind, payload = receive(child.stdout)
        if kind == "failed":
            raise ExportError(f"An export worker failed: {payload}")
        if kind == "gone":
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-3:]
            raise ExportError(f"An export worker stopped unexpectedly (exit code {child.wait()}): "
                              f"{' | '.join(tail) or 'no message'}. Nothing was written; export again.")
        return kind, payload

    def blocks(self, selector: Selector, options: Options, examples: int) -> Iterator[Block]:
        """The blocks of the export in id order (call inside the caller's snapshot, after its first read)."""
        ranges = id_ranges(self.db, options, examples, self.workers)
        mine = fingerprint(self.db)
        children, n = self._children, len(self._children)
        for w, (child, _) in enumerate(children):
            self._send(child, Job(self.path, selector.kind, options, ranges[w::n], block.BLOCK_EXAMPLES))
        for child, errors in children:
            _, theirs = self._next(child, errors)
            if tuple(theirs) != mine:
                raise ExportError(f"An export worker read another state of the database ({theirs} != {mine}); "
                                  "export again.")
        self.release()
        for k in range(len(ranges)):
            child, errors = children[k % n]
            while (message := self._next(child, errors))[0] == "block":
                yield message[1]
        self._finished = True
