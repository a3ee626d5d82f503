"""Write transactions that take the write lock up front (BEGIN IMMEDIATE), nesting as savepoints."""
from __future__ import annotations

import contextlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlite_utils import Database

T = TypeVar("T")
# How long a write keeps waiting, in turns of the busy timeout, while another process holds the
# write lock (a large import is one transaction) before it gives up.
LOCKED_WAIT_S = 600


@contextlib.contextmanager
def write_tx(db: Database) -> Iterator[Database]:
    """All writes inside commit together or not at all; other processes wait on the busy timeout.

    Taking the lock at BEGIN means reads inside see no other writer's rows appear midway, so
    "rows with id above the max I read" are exactly the rows this transaction added.
    """
    conn = db.conn
    if conn.in_transaction:
        name = f"sp_{secrets.token_hex(8)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield db
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def when_unlocked(write: Callable[[], T], *, on_wait: Callable[[], None] | None = None) -> T:
    """Run write (one write transaction) again each time it finds the store locked by another process
    past the busy timeout (nothing was written then), for up to LOCKED_WAIT_S; on_wait is told each time."""
    deadline = time.monotonic() + LOCKED_WAIT_S
    while True:
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            if on_wait is not None:
                on_wait()
