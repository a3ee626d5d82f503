"""The app's door to the database: one connection per thread, one writer thread so writes keep key order,
one reader thread for what a key press waits on (its connection's page cache stays warm), and the
decision journal that keeps every step the reviewer made until the writer has stored it."""
from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from db.connection import open_db
from db.journal import Applied, Journal, Step, apply_step, replay_orphans
from db.tx import when_unlocked

T = TypeVar("T")
_STOP = object()


class Store:
    """Opens the database lazily in each thread that uses it (sqlite3 refuses cross-thread use)."""

    def __init__(self, path: Path, on_wait: Callable[[], None] | None = None) -> None:
        """on_wait is called (on the writer thread) each time a write finds the store locked by
        another process and waits again."""
        self.path = Path(path)
        self.on_wait = on_wait
        self.journal: Journal | None = None
        self._local = threading.local()
        self._opening = threading.Lock()  # one thread at a time creates / migrates a new file
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queued = 0  # writes asked for and not finished (guarded by _idle)
        self._idle = threading.Condition()
        # A daemon thread, so that quitting while another process holds the store's write lock does
        # not wait for it: the journal keeps what is not stored yet.
        self._writer = threading.Thread(target=self._write_loop, name="nlistral-writer", daemon=True)
        self._writer.start()
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlistral-reader")

    def db(self) -> Database:
        """This thread's connection (opened, and migrated if needed, on first use)."""
        db = getattr(self._local, "db", None)
        if db is None:
            with self._opening:
                db = self._local.db = open_db(self.path)
        return db

    def open_journal(self, reviewer: str) -> None:
        """Start this session's decision journal beside the store (OSError when the folder is not writable)."""
        if self.journal is None:
            self.journal = Journal(self.path, reviewer)

    def submit(self, step: Step, then: Callable[[Database, Applied], T] | None = None) -> Future[Any]:
        """Journal the step now (so a kill or a quit cannot lose it), then store it on the writer thread;
        the future gives then(db, applied) (or the Applied). OSError if the journal cannot take it."""
        journal = self.journal
        if journal is not None:
            journal.append(step)

        def store(db: Database) -> Any:
            applied = apply_step(db, step)
            if journal is not None:
                journal.applied(step.key)
            return applied if then is None else then(db, applied)

        return self._enqueue(store)

    async def write(self, fn: Callable[[Database], T]) -> T:
        """Run fn on the writer thread: writes run one at a time, in the order they were asked for.

        fn must write in one transaction (write_tx): when the store stays locked by another process
        past the busy timeout, nothing was written and fn runs again, later writes queued behind it.
        """
        return await asyncio.wrap_future(self._enqueue(fn))

    async def stored(self, future: Future[T]) -> T:
        """Await a future of submit."""
        return await asyncio.wrap_future(future)

    def replay_orphans(self) -> Future[int]:
        """Store the steps that ended sessions left in their journals (waiting out another writer)."""
        return self._enqueue(lambda db: replay_orphans(db, self.path))

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run fn on the reader thread (short reads a key press waits on: rows, details)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, lambda: fn(self.db()))

    def _enqueue(self, fn: Callable[[Database], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._idle:
            self._queued += 1
        self._jobs.put((fn, future))
        return future

    def _write_loop(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            fn, future = job
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(when_unlocked(functools.partial(self._run, fn), on_wait=self.on_wait))
                    except BaseException as exc:  # noqa: BLE001 - the awaiting worker reports whatever it was
                        future.set_exception(exc)
            finally:
                with self._idle:
                    self._queued -= 1
                    self._idle.notify_all()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()

    def _run(self, fn: Callable[[Database], T]) -> T:
        return fn(self.db())

    def close(self, wait_s: float = 3.0) -> list[Step]:
        """Store what is queued (waiting up to wait_s for another process's write lock), stop the
        threads, and return the journaled steps not stored yet (kept in the journal file, which the
        next process to open the store applies). An empty list: everything is in the review log."""
        deadline = time.monotonic() + wait_s
        with self._idle:
            while self._queued and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
        self._jobs.put(_STOP)
        self._reader.shutdown(wait=True, cancel_futures=True)
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None
        if self.journal is None:
            return []
        pending = self.journal.pending()
        self.journal.close()
        return pending
