"""Runs: one row per import, generate, reflect, judge, train, evaluate or export run."""
from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from db.clock import now
from db.tx import write_tx

RUN_KINDS = ("import", "generate", "reflect", "judge", "train", "evaluate", "export")


def start_run(db: Database, kind: str, config: dict[str, Any]) -> int:
    """Record a run as running (committed at once unless inside write_tx); returns its id."""
    if kind not in RUN_KINDS:
        raise ValueError(f"run kind must be one of {RUN_KINDS}, not {kind!r}")
    with write_tx(db):
        cur = db.execute(
            "INSERT INTO runs (kind, status, config, started_at) VALUES (?, 'running', ?, ?)",
            [kind, json.dumps(config, ensure_ascii=False, sort_keys=True, default=str), now()],
        )
    assert cur.lastrowid is not None
    return cur.lastrowid


def finish_run(
    db: Database,
    run_id: int,
    status: str,
    *,
    metrics: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Mark a run completed, failed or cancelled, with its metrics and artifact paths."""
    if status not in ("completed", "failed", "cancelled"):
        raise ValueError(f"a run finishes completed, failed or cancelled, not {status!r}")
    with write_tx(db):
        db.execute(
            "UPDATE runs SET status = ?, metrics = ?, artifacts = ?, error = ?, finished_at = ? WHERE id = ?",
            [status, json.dumps(metrics or {}, default=str), json.dumps(artifacts or {}, default=str), error,
             now(), run_id],
        )


def get_run(db: Database, run_id: int) -> dict[str, Any]:
    """The run with this id, JSON fields decoded (KeyError when absent)."""
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise KeyError(f"No run with id {run_id}.")
    return _decode(rows[0])


def list_runs(db: Database, kind: str | None = None) -> list[dict[str, Any]]:
    """Runs, newest first, optionally of one kind."""
    sql, args = "SELECT * FROM runs", []
    if kind:
        sql, args = sql + " WHERE kind = ?", [kind]
    return [_decode(r) for r in db.query(sql + " ORDER BY id DESC", args)]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, **{k: json.loads(row[k] or "{}") for k in ("config", "metrics", "artifacts")}}


def reopen_run(db: Database, run_id: int) -> None:
    """Mark an unfinished (failed or cancelled) run as running again, to resume it."""
    with write_tx(db):
        db.execute("UPDATE runs SET status = 'running', error = NULL, finished_at = NULL WHERE id = ?", [run_id])
