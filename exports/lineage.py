"""Lineage of every export: the manifest beside the file and the row in the `exports` table."""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db.clock import now
from db.runs import finish_run
from db.tx import write_tx
from exports.tally import ExportPlan


def manifest_path(path: Path) -> Path:
    """Where the manifest of an export at path goes: FILE.manifest.json (or FOLDER.manifest.json)."""
    return path.with_name(path.name + ".manifest.json")


@dataclass(frozen=True)
class Manifest:
    """What an export holds and where it came from: enough to trace a trained adapter to review decisions."""

    export_id: int
    run_id: int
    kind: str  # sft | dpo
    rule: str
    rule_text: str
    format: str  # inst | messages | dpo
    storage: str  # jsonl | hf
    path: str
    manifest: str
    rows: int
    sha256: str  # of the file (jsonl), or over the folder's files (hf; exports.sink.dir_sha256)
    content_sha256: str  # of the JSON Lines text, whichever the storage: equal exports have equal values
    review_log_position: int
    database: str
    created_at: str
    options: dict[str, Any]
    counts: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the manifest file holds)."""
        return asdict(self)


@dataclass(frozen=True)
class ExportRecord:
    """One row of the `exports` table, JSON fields decoded."""

    id: int
    kind: str
    path: str
    format: str
    rule: str
    options: dict[str, Any]
    counts: dict[str, Any]
    sha256: str
    review_log_position: int
    created_at: str

    @property
    def manifest(self) -> Path:
        """The manifest file beside the export."""
        return manifest_path(Path(self.path))

    @property
    def present(self) -> bool:
        """Whether the exported file (or folder) is still there."""
        return Path(self.path).exists()


def database_path(db: Database) -> str:
    """The file behind the connection ('' for an in-memory database)."""
    row = db.execute("PRAGMA database_list").fetchone()
    return row[2] if row else ""


def record_export(db: Database, *, sink: Any, plan: ExportPlan, kind: str, fmt: str, rule_text: str,
                  options: dict[str, Any], run_id: int) -> Manifest:
    """Insert the exports row, write the manifest and move the finished sink into place, together."""
    target = manifest_path(sink.path)
    stamp = now()
    counts = plan.as_dict()
    with write_tx(db):
        cursor = db.execute(
            "INSERT INTO exports (kind, path, format, rule, options, counts, sha256, review_log_position, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [kind, str(sink.path), fmt, plan.rule, json.dumps({**options, "storage": sink.storage}, ensure_ascii=False),
             json.dumps(counts, ensure_ascii=False), sink.sha256, plan.review_log_position, stamp],
        )
        manifest = Manifest(
            export_id=int(cursor.lastrowid or 0), run_id=run_id, kind=kind, rule=plan.rule, rule_text=rule_text,
            format=fmt, storage=sink.storage, path=str(sink.path), manifest=str(target), rows=plan.rows,
            sha256=sink.sha256, content_sha256=sink.content_sha256,
            review_log_position=plan.review_log_position, database=database_path(db), created_at=stamp,
            options=options, counts=counts,
        )
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        temporary.write_text(json.dumps(manifest.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        try:
            sink.commit()
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        finish_run(db, run_id, "completed", metrics={"rows": plan.rows, "left_out": plan.left_out},
                   artifacts={"path": str(sink.path), "manifest": str(target), "export_id": manifest.export_id})
    return manifest


def list_exports(db: Database, kind: str | None = None) -> list[ExportRecord]:
    """The recorded exports, newest first (optionally of one kind)."""
    sql, args = "SELECT * FROM exports", []
    if kind:
        sql, args = sql + " WHERE kind = ?", [kind]
    return [
        ExportRecord(**{**row, "options": json.loads(row["options"]), "counts": json.loads(row["counts"])})
        for row in db.query(sql + " ORDER BY id DESC", args)
    ]
