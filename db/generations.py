"""Generations: every model output ever produced (append-only), and the pointers derived from them."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlite_utils import Database

from db.clock import now
from db.grounding import ground
from db.records import Generation
from db.scope import Scope
from db.search import index_generations
from db.tx import write_tx

KINDS = ("thought", "reflection", "prediction", "judge", "blind_reflection")
PARSE_STATUSES = ("ok", "repaired", "failed")

_COLUMNS = (
    "example_id", "kind", "parent_id", "model", "backend", "prompt_version", "params",
    "thought_process", "predicted_label", "error_analysis", "score", "rationale", "raw_response",
    "parse_status", "flags", "tokens_in", "tokens_out", "latency_ms", "cost_usd", "run_id",
    "dedupe_key", "created_at",
)
_INSERT = (
    f"INSERT INTO generations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (dedupe_key) DO NOTHING"
)


def dedupe_key(*parts: Any) -> str:
    """A stable key for 'the same request' or 'the same imported record' (JSON of the parts, hashed)."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _row(values: Mapping[str, Any]) -> tuple[Any, ...]:
    unknown = set(values) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"unknown generation fields: {sorted(unknown)}")
    if values.get("kind") not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {values.get('kind')!r}")
    if values.get("parse_status") not in PARSE_STATUSES:
        raise ValueError(f"parse_status must be one of {PARSE_STATUSES}, not {values.get('parse_status')!r}")
    data = dict(values)
    data["params"] = json.dumps(data.get("params") or {}, sort_keys=True)
    data["flags"] = json.dumps(sorted(data.get("flags") or []))
    data.setdefault("created_at", now())
    return tuple(data.get(c) for c in _COLUMNS)


def add_generations(db: Database, rows: Iterable[Mapping[str, Any]]) -> list[int]:
    """Store generations (rows whose dedupe_key is already stored are skipped); returns new ids.

    Keeps the search index and each touched example's derived pointers up to date. Call inside a
    write_tx when several writes must land together.
    """
    with write_tx(db):
        before = db.execute("SELECT coalesce(max(id), 0) FROM generations").fetchone()[0]
        db.conn.executemany(_INSERT, (_row(r) for r in rows))
        new_ids = [r[0] for r in db.execute("SELECT id FROM generations WHERE id > ? ORDER BY id", [before])]
        if new_ids:
            ground(db, "g.id > ?", [before])  # before the search index and derived columns read the flags
            index_generations(db, before)
            # No DISTINCT: it would make SQLite scan the whole (example_id, ...) index instead of the id range.
            refresh_derived(db, f"SELECT example_id FROM generations WHERE id > {int(before)}")
    return new_ids


def add_generation(db: Database, **values: Any) -> Generation | None:
    """Store one generation (committed at once unless inside write_tx); None when already stored."""
    ids = add_generations(db, [values])
    return get_generation(db, ids[0]) if ids else None


def get_generation(db: Database, generation_id: int) -> Generation:
    """The generation with this id (KeyError when absent)."""
    rows = list(db.query("SELECT * FROM generations WHERE id = ?", [generation_id]))
    if not rows:
        raise KeyError(f"No generation with id {generation_id}.")
    return Generation.from_row(rows[0])


def generations_for(db: Database, example_id: int, kind: str | None = None) -> list[Generation]:
    """All generations of an example (optionally of one kind), oldest first."""
    sql = "SELECT * FROM generations WHERE example_id = ?"
    args: list[Any] = [example_id]
    if kind:
        sql += " AND kind = ?"
        args.append(kind)
    return [Generation.from_row(r) for r in db.query(sql + " ORDER BY id", args)]


def is_stored(db: Database, key: str) -> bool:
    """Whether a generation with this dedupe key is stored."""
    return db.execute("SELECT 1 FROM generations WHERE dedupe_key = ?", [key]).fetchone() is not None


def latest_answers(db: Database, scope: Scope, kind: str, model: str, prompt_version: str) -> list[dict[str, Any]]:
    """The latest answer of this kind, model and prompt version for each example in scope (its limit aside),
    as generation rows with the example's gold_label."""
    where, args = scope.where("e")
    sql = f"""
        SELECT g.*, e.gold_label FROM generations g JOIN examples e ON e.id = g.example_id
        WHERE {where} AND g.id IN (SELECT max(x.id) FROM generations x WHERE x.kind = ? AND x.model = ?
            AND x.prompt_version = ? GROUP BY x.example_id)"""
    return list(db.query(sql, [*args, kind, model, prompt_version]))


def thoughts_without_label(db: Database, scope: Scope) -> int:
    """How many examples in scope (its limit aside) have a current thought without a label."""
    where, args = scope.where("e")
    sql = (f"SELECT count(*) FROM examples e JOIN generations g ON g.id = e.thought_id "
           f"WHERE {where} AND g.predicted_label IS NULL")
    count: int = db.execute(sql, args).fetchone()[0]
    return count


def refresh_derived(db: Database, example_ids_sql: str | None = None) -> None:
    """Recompute the examples' derived columns for the ids the SQL selects (all when None).

    Current thought: the latest thought. Current reflection: the version chosen in review, else
    the latest reflection of the current thought. parse_failed: either of them failed to parse.
    """
    where = f"WHERE id IN ({example_ids_sql})" if example_ids_sql else ""
    db.execute(
        f"""
        UPDATE examples SET thought_id = (
            SELECT max(g.id) FROM generations g WHERE g.example_id = examples.id AND g.kind = 'thought')
        {where}
        """
    )
    db.execute(
        f"""
        UPDATE examples SET
            thought_label = (SELECT predicted_label FROM generations WHERE id = examples.thought_id),
            thought_model = (SELECT model FROM generations WHERE id = examples.thought_id),
            reflection_id = coalesce(
                (SELECT chosen_reflection_id FROM review_state WHERE example_id = examples.id),
                (SELECT max(g.id) FROM generations g WHERE g.example_id = examples.id
                    AND g.kind = 'reflection' AND g.parent_id = examples.thought_id))
        {where}
        """
    )
    db.execute(
        f"""
        UPDATE examples SET
            reflection_label = (SELECT predicted_label FROM generations WHERE id = examples.reflection_id),
            parse_failed = EXISTS (SELECT 1 FROM generations
                WHERE id IN (examples.thought_id, examples.reflection_id) AND parse_status = 'failed')
        {where}
        """
    )
