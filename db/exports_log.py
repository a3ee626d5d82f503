"""The `exports` table as the exporter writes and lists it: one row per export written, newest superseding."""
from __future__ import annotations

import json
from collections.abc import Sequence
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
