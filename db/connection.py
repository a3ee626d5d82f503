"""Opening the one database file: SQLite check, pragmas for concurrent use, migrations."""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from db.errors import MissingDatabaseError, NotADatabaseError, ReadOnlyStoreError
from db.journal import journal_folder, replay_orphans
from db.paths import store_files
from db.runs import mark_interrupted
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


def _companions(path: Path) -> tuple[Path, Path]:
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def _folder_blocked(path: Path) -> bool:
    """Whether SQLite would have to create -wal / -shm in a folder this process may not write."""
    return not all(p.exists() for p in _companions(path)) and not os.access(path.parent, os.W_OK | os.X_OK)


def _refuse_read_only(path: Path) -> None:
    """ReadOnlyStoreError, before any work, if this process may not write the store at path.

    os.access asks the kernel the question SQLite's open() will (file modes, a read-only mount, and
    for root the capabilities it holds), so a store it calls writable is one SQLite can write.
    """
    files = [p for p in (path, *_companions(path)) if p.exists() and not os.access(p, os.W_OK)]
    what = [p.name for p in files]
    fix = [str(p) for p in files]
    if _folder_blocked(path):
        what.append(f"the folder {path.parent}, where SQLite creates {path.name}-wal and {path.name}-shm")
        fix.append(str(path.parent))
    if not what:
        return
    readers = "" if _folder_blocked(path) else (" Commands that only read (`nlistral stats`, `nlistral exports`) "
                                                "can still read it as it is.")
    raise ReadOnlyStoreError(
        f"{path} is read-only for you, and this command writes to the store. Not writable: {'; '.join(what)}. "
        f"Make {'it' if len(fix) == 1 else 'them'} writable (chmod u+w {' '.join(fix)}), or copy the store to a "
        f"writable folder and pass --db with the copy.{readers}")


def _read_only_message(path: Path, upgrade: bool) -> str:
    """What to do when SQLite refused to write a store that the caller only meant to read."""
    if _folder_blocked(path):
        return (f"{path} cannot be opened: SQLite must create {path.name}-wal and {path.name}-shm beside a WAL "
                f"database even to read it, and the folder {path.parent} is not writable for you. Make the folder "
                f"writable (chmod u+w {path.parent}), or copy the store to a writable folder and pass --db with "
                "the copy.")
    if upgrade:
        return (f"{path} is read-only for you and was written by an older version: it needs an upgrade to the "
                f"current schema, which writes to it. Make it writable (chmod u+w {path}) and run the command "
                "again, or copy it to a writable folder and pass --db with the copy.")
    return (f"{path} is read-only for you, and SQLite had to write to it. Make it writable (chmod u+w {path}), "
            "or copy it to a writable folder and pass --db with the copy.")


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


def open_db(path: str | Path | None = None, notify: Callable[[str], None] | None = None, *,
            create: bool = True, read_only: bool = False) -> Database:
    """Open (creating and migrating if needed) the database at path, in WAL mode with a busy timeout.

    notify, if given, is told before an existing store is upgraded (which can take a while on a
    large one); each upgrade step is one transaction, so an interrupted upgrade changes nothing.
    create=False: a missing file is a MissingDatabaseError, and nothing (no file, -wal, -shm or folder)
    is created. read_only=True: the caller only reads, so a store it may not write is opened if SQLite
    can read it; otherwise such a store is a ReadOnlyStoreError before any work starts.
    """
    path = Path(path) if path is not None else default_db_path()
    _refuse_directory(path)
    if not path.exists():
        if not create:
            raise MissingDatabaseError(f"no database at {path}. Create one with `nlistral import FILE --db {path}` "
                                       f"(or `nlistral demo --db {path}` for the demo data), or point --db (or "
                                       "NLISTRAL_DB) at an existing store.")
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
    elif not read_only:
        _refuse_read_only(path)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
    db = Database(conn)
    pending: list[str] = []  # the names of the migrations this open applies
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA cache_size = -65536")
        pending = [m.name for m in migrations.pending(db)]
        if pending:
            if notify is not None and db["examples"].exists():
                n = db.execute("SELECT count(*) FROM examples").fetchone()[0]
                notify(f"Upgrading {path} ({n:,} example{'' if n == 1 else 's'}) to the current schema: "
                       f"{', '.join(pending)}. On a large store this can take a minute; "
                       "interrupting it changes nothing.")
            migrations.apply(db)
        mark_interrupted(db, notify)  # runs whose process is gone: see db/runs.py
        attach_stage(conn)
        replay_journals(db, path, notify)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if (exc.sqlite_errorcode or 0) & 0xFF == sqlite3.SQLITE_READONLY:
            raise ReadOnlyStoreError(_read_only_message(path, upgrade=bool(pending))) from None
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise NotADatabaseError(
                f"{path} is not an SQLite database. Point --db (or NLISTRAL_DB) at an nlistral "
                "database, or at a path that does not exist yet to create a new one."
            ) from None
        raise NotADatabaseError(f"{path} could not be opened as an SQLite database: {exc}.") from exc
    return db


def replay_journals(db: Database, path: Path, notify: Callable[[str], None] | None) -> None:
    """Store the review decisions that ended review sessions left in their journals (db/journal.py).

    Tried once, without waiting on another process's write lock: a locked store keeps the journals
    for the next open (the review app also retries on its writer thread).
    """
    if not journal_folder(path).is_dir():
        return
    db.execute("PRAGMA busy_timeout = 100")
    try:
        stored = replay_orphans(db, path)
    except sqlite3.OperationalError as exc:
        if (exc.sqlite_errorcode or 0) & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_READONLY):
            raise
        return
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if stored and notify is not None:
        notify(f"Stored {stored} review step{'' if stored == 1 else 's'} that a review session of {path} had "
               "journaled but not yet saved (it ended while the store was locked, or was killed).")


def discard_if_new_and_empty(db: Database, path: Path) -> bool:
    """Close db and delete the store at path (and its companions) if it holds nothing: for a command
    that created the store and then failed (an import whose rows were bad), so that a failure never
    leaves a store behind. Kept when another process has it open. True if deleted."""
    held = any(db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
               for table in ("examples", "generations", "review_events", "exports"))
    db.conn.close()
    if held or open_elsewhere(path):
        return False
    for part in store_files(path):
        if not part.is_dir():
            part.unlink(missing_ok=True)
    return True
