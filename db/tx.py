"""Write transactions that take the write lock up front (BEGIN IMMEDIATE), nesting as savepoints."""
from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from sqlite_utils import Database


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
