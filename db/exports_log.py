"""The `exports` table: one row per export written, newest superseding. The exporter writes and lists it;
training and the leakage check read an export by id, or the newest by content."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database


def insert_export(db: Database, *, kind: str, path: str, fmt: str, rule: str, options: dict[str, Any],
                  counts: dict[str, Any], sha256: str, review_log_position: int, created_at: str) -> int:
    """Add an export's row (inside the caller's write transaction); its id."""
    cursor = db.execute(
        "INSERT INTO exports (kind, path, format, rule, options, counts, sha256, review_log_position, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [kind, path, fmt, rule, json.dumps(options, ensure_ascii=False), json.dumps(counts, ensure_ascii=False),
         sha256, review_log_position, created_at],
    )
    return int(cursor.lastrowid or 0)


def supersede(db: Database, export_id: int, replaced: Sequence[int]) -> None:
    """Mark the replaced exports as superseded by export_id (inside the caller's write transaction)."""
    if replaced:
        db.execute(f"UPDATE exports SET superseded_by = ? WHERE id IN ({', '.join('?' * len(replaced))})",
                   [export_id, *replaced])


def export_rows(db: Database, kind: str | None = None) -> list[dict[str, Any]]:
    """The rows of the exports table, newest first (optionally of one kind), JSON fields decoded."""
    sql, args = "SELECT * FROM exports", []
    if kind:
        sql, args = sql + " WHERE kind = ?", [kind]
    return [{**row, "options": json.loads(row["options"]), "counts": json.loads(row["counts"])}
            for row in db.query(sql + " ORDER BY id DESC", args)]


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
