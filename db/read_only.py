"""A connection that only reads an existing store: no migration, no WAL switch, no file created."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from db.connection import BUSY_TIMEOUT_MS


def open_read_only(path: Path) -> Database | None:
    """The store at path opened read-only (None when there is no file), for processes that must never write
    it, such as the secondary processes of a multi-GPU training launch."""
    if not path.exists():
        return None
    return Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000))
