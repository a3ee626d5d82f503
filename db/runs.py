"""Runs: one row per import, generate, reflect, judge, train, evaluate or export run.

A run is `running` while its process works on it, then `completed`, `failed` or `cancelled`; a run
whose process ended without saying so (kill -9, a crash, a power cut) is found the next time the
store is opened and stored as `interrupted` (see mark_interrupted).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db.clock import now
from db.owner import Owner, liveness, this_process
from db.tx import write_tx

RUN_KINDS = ("import", "generate", "reflect", "judge", "train", "evaluate", "export", "attribute")
RUN_STATUSES = ("running", "completed", "failed", "cancelled", "interrupted")
FINISHED = RUN_STATUSES[1:]
# What to do about an interrupted run, by kind.
NEXT_STEP = {
    "import": "nothing of it was stored (an import is one transaction): import the file again",
    "generate": "re-run the same command to send the missing requests",
    "reflect": "re-run the same command to send the missing requests",
    "judge": "re-run the same command to send the missing requests",
    "train": "continue it with `nlistral train ... --resume` (from its last checkpoint)",
    "evaluate": "continue it with `nlistral evaluate ... --resume`",
    "export": "run the export again",
    "attribute": "run the same `nlistral attribute` command again: stored batches are kept, the rest is computed",
}


def start_run(db: Database, kind: str, config: dict[str, Any]) -> int:
    """Record a run as running (committed at once unless inside write_tx); returns its id."""
    if kind not in RUN_KINDS:
        raise ValueError(f"run kind must be one of {RUN_KINDS}, not {kind!r}")
    with write_tx(db):
        cur = db.execute(
            "INSERT INTO runs (kind, status, config, started_at, owner) VALUES (?, 'running', ?, ?, ?)",
            [kind, json.dumps(config, ensure_ascii=False, sort_keys=True, default=str), now(),
             this_process().to_json()],
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
    """Mark a run completed, failed, cancelled or interrupted, with its metrics and artifact paths."""
    if status not in FINISHED:
        raise ValueError(f"a run finishes {', '.join(FINISHED)}, not {status!r}")
    with write_tx(db):
        db.execute(
            "UPDATE runs SET status = ?, metrics = ?, artifacts = ?, error = ?, finished_at = ? WHERE id = ?",
            [status, json.dumps(metrics or {}, default=str), json.dumps(artifacts or {}, default=str), error,
             now(), run_id],
        )


@dataclass(frozen=True)
class Run:
    """One row of the runs table, its JSON columns (config, metrics, artifacts) decoded."""

    id: int
    kind: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: dict[str, Any]
    error: str | None
    started_at: str
    finished_at: str | None
    owner: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        """Build from a row of the runs table."""
        decoded = {k: json.loads(row[k] or "{}") for k in ("config", "metrics", "artifacts")}
        return cls(**{**{k: row[k] for k in _RUN_COLUMNS if k in row}, **decoded})


_RUN_COLUMNS = frozenset(f.name for f in fields(Run))


def get_run(db: Database, run_id: int) -> Run:
    """The run with this id (KeyError when absent)."""
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise KeyError(f"No run with id {run_id}.")
    return Run.from_row(rows[0])


def list_runs(db: Database, kind: str | None = None) -> list[Run]:
    """Runs, newest first, optionally of one kind."""
    sql, args = "SELECT * FROM runs", []
    if kind:
        sql, args = sql + " WHERE kind = ?", [kind]
    return [Run.from_row(r) for r in db.query(sql + " ORDER BY id DESC", args)]


def reopen_run(db: Database, run_id: int) -> None:
    """Mark an unfinished (failed, cancelled or interrupted) run as running again, owned by this process."""
    with write_tx(db):
        db.execute("UPDATE runs SET status = 'running', error = NULL, finished_at = NULL, owner = ? WHERE id = ?",
                   [this_process().to_json(), run_id])


def mark_interrupted(db: Database, notify: Callable[[str], None] | None = None) -> list[int]:
    """Store as interrupted every running run whose process on this host is gone, removing the
    temporaries it recorded; returns their ids, and tells notify (if given) about each.

    Cheap (it reads only running runs) and never waits: a store locked by another writer, or
    read-only, is left as it is until the next open. Runs of another host are left alone. A run
    recorded before owners were (owner NULL, schema before m006) was started by an older version
    that could not say who runs it: it is taken as interrupted, since such a version running on
    after a newer one opened the store is the rare case, and its own end (completed / failed)
    still overwrites the mark.
    """
    running = db.execute("SELECT id, owner FROM runs WHERE status = 'running'").fetchall()
    gone = [(run_id, owner) for run_id, owner in running if _gone(owner)]
    if not gone:
        return []
    timeout = db.execute("PRAGMA busy_timeout").fetchone()[0]
    db.execute("PRAGMA busy_timeout = 0")
    try:
        with write_tx(db):
            marked = [(run_id, said) for run_id, owner in gone if (said := _interrupt(db, run_id, owner))]
    except sqlite3.OperationalError as exc:
        if (exc.sqlite_errorcode or 0) & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
                                                       sqlite3.SQLITE_READONLY):
            raise
        return []
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
    for run_id, said in marked:
        if notify is not None:
            notify(f"Run {run_id} {said}")
    return [run_id for run_id, _ in marked]


def _gone(owner_json: str | None) -> bool:
    owner = Owner.from_json(owner_json)
    return owner is None or liveness(owner) == "gone"


def _interrupt(db: Database, run_id: int, owner_json: str | None) -> str | None:
    """Mark one run interrupted unless another process took it over (reopen_run) since it was read;
    returns what happened to it, as the rest of a sentence."""
    row = db.execute("SELECT kind, config FROM runs WHERE id = ? AND status = 'running' AND owner IS ?",
                     [run_id, owner_json]).fetchone()
    if row is None:
        return None
    kind, config = row
    owner = Owner.from_json(owner_json)
    who = (f"its process (pid {owner.pid} on {owner.host}) ended without finishing it (killed, crashed, or "
           "the machine restarted)") if owner else ("it was started by a version that did not record its "
                                                    "process, and that process is taken as gone")
    try:
        recorded = json.loads(config or "{}")
    except ValueError:  # never let a damaged row stop the store from opening
        recorded = {}
    problems = _remove_temporaries(recorded.get("temporaries") if isinstance(recorded, dict) else None)
    error = f"interrupted: {who}; {NEXT_STEP.get(kind, 'start it again')}." + "".join(f" {p}" for p in problems)
    db.execute("UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? WHERE id = ?",
               [error, now(), run_id])
    return f"({kind}) was {error}"


def _remove_temporaries(paths: Any) -> list[str]:
    """Delete a dead run's temporary files and folders; what could not be removed, as sentences.

    Only absolute paths whose name is `.NAME.tmp` are touched (what the writers create), so a damaged
    or hand-edited config can never make this delete anything else.
    """
    problems: list[str] = []
    for raw in paths if isinstance(paths, list) else []:
        path = Path(raw) if isinstance(raw, str) else None
        if path is None or not path.is_absolute() or not (path.name.startswith(".") and path.name.endswith(".tmp")):
            problems.append(f"Left {raw!r} in place: not an absolute path to a .NAME.tmp temporary.")
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"Could not remove its temporary {path}: {exc.strerror or exc}; delete it by hand.")
    return problems
