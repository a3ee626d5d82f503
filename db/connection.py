"""Opening the one database file: SQLite check, pragmas for concurrent use, migrations."""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from db.errors import NotADatabaseError
from db.schema import migrations
from db.staging import attach_stage

DEFAULT_DB = "nlistral.db"
BUSY_TIMEOUT_MS = 15_000


def default_db_path() -> Path:
    """The database path from NLISTRAL_DB, else ./nlistral.db."""
    return Path(os.environ.get("NLISTRAL_DB") or DEFAULT_DB)


def _refuse_directory(path: Path) -> None:
    """Raise NotADatabaseError if path is a directory.

    Only stat, never open: POSIX locks belong to the process and go away when ANY descriptor of the
    file is closed, so reading the file here (say, to check its header) while another connection of
    this process has it open would drop that connection's locks. Another process closing its
    connection would then take itself for the last user, checkpoint and delete the WAL, and this
    process's later commits would go into a deleted file (sqlite.org/howtocorrupt.html, 2.2).
    Whether the file is an SQLite database, SQLite itself tells (SQLITE_NOTADB).
    """
    if path.is_dir():
        raise NotADatabaseError(f"{path} is a directory; give --db the path of a database file.")


def open_elsewhere(path: Path) -> bool:
    """Whether a connection other than the caller's has the store at path open (any process).

    Every connection to a WAL store holds a shared lock on the file while it is open, so an
    exclusive lock, tried without waiting, is had only when no one else has it open. Call it
    with no connection of this process open on path (see _refuse_directory on POSIX locks).
    """
    conn = sqlite3.connect(str(path), timeout=0)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            return True
        raise
    finally:
        conn.close()


def open_db(path: str | Path | None = None, notify: Callable[[str], None] | None = None) -> Database:
    """Open (creating and migrating if needed) the database at path, in WAL mode with a busy timeout.

    notify, if given, is told before an existing store is upgraded (which can take a while on a
    large one); each upgrade step is one transaction, so an interrupted upgrade changes nothing.
    """
    path = Path(path) if path is not None else default_db_path()
    _refuse_directory(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
    db = Database(conn)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA cache_size = -65536")
        pending = migrations.pending(db)
        if pending:
            if notify is not None and db["examples"].exists():
                n = db.execute("SELECT count(*) FROM examples").fetchone()[0]
                notify(f"Upgrading {path} ({n:,} example{'' if n == 1 else 's'}) to the current schema: "
                       f"{', '.join(m.name for m in pending)}. On a large store this can take a minute; "
                       "interrupting it changes nothing.")
            migrations.apply(db)
        attach_stage(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise NotADatabaseError(
                f"{path} is not an SQLite database. Point --db (or NLISTRAL_DB) at an nlistral "
                "database, or at a path that does not exist yet to create a new one."
            ) from None
        raise NotADatabaseError(f"{path} could not be opened as an SQLite database: {exc}.") from exc
    return db
