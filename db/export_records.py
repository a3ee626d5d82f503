"""The exports table as training and the leakage check read it: an export by id, the newest by content."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database


@dataclass(frozen=True)
class ExportRecord:
    """Where an export was written (as recorded: a relative path is relative to where it ran) and its sha256."""

    id: int
    path: str
    sha256: str


def export_record(db: Database, export_id: int) -> ExportRecord | None:
    """The export with this id, or None."""
    row = db.execute("SELECT path, sha256 FROM exports WHERE id = ?", [export_id]).fetchone()
    return ExportRecord(export_id, str(row[0]), str(row[1])) if row else None


def newest_export_with(db: Database, sha256: str) -> int | None:
    """The id of the newest export whose file had this sha256 (None when none did, or the store has no exports)."""
    if "exports" not in db.table_names():
        return None
    row = db.execute("SELECT id FROM exports WHERE sha256 = ? ORDER BY id DESC LIMIT 1", [sha256]).fetchone()
    return int(row[0]) if row else None


def store_folder(db: Database) -> Path:
    """The folder of the store's database file (the current folder for an in-memory store)."""
    return Path(db.execute("PRAGMA database_list").fetchone()[2]).parent
