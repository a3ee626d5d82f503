"""The app's door to the database: one connection per thread, one writer thread so writes keep key order,
and one reader thread for what a key press waits on (its connection's page cache stays warm)."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlite_utils import Database

from db.connection import open_db
from db.tx import when_unlocked

T = TypeVar("T")


class Store:
    """Opens the database lazily in each thread that uses it (sqlite3 refuses cross-thread use)."""

    def __init__(self, path: Path, on_wait: Callable[[], None] | None = None) -> None:
        """on_wait is called (on the writer thread) each time a write finds the store locked by
        another process and waits again."""
        self.path = Path(path)
        self.on_wait = on_wait
        self._local = threading.local()
        self._opening = threading.Lock()  # one thread at a time creates / migrates a new file
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlistral-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlistral-reader")

    def db(self) -> Database:
        """This thread's connection (opened, and migrated if needed, on first use)."""
        db = getattr(self._local, "db", None)
        if db is None:
            with self._opening:
                db = self._local.db = open_db(self.path)
        return db

    async def write(self, fn: Callable[[Database], T]) -> T:
        """Run fn on the writer thread: writes run one at a time, in the order they were asked for.

        fn must write in one transaction (write_tx): when the store stays locked by another process
        past the busy timeout, nothing was written and fn runs again, later writes queued behind it.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: when_unlocked(lambda: fn(self.db()),
                                                                               on_wait=self.on_wait))

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run fn on the reader thread (short reads a key press waits on: rows, details)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, lambda: fn(self.db()))

    def close(self) -> None:
        """Finish pending writes and stop the writer; other threads' connections close with their threads."""
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True, cancel_futures=True)
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None
