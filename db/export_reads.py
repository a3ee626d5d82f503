"""What an export reads: its examples streamed in one read snapshot, their scopes, and the snapshot's checks
(the lock that holds writers off while an export's workers begin their reads, the fingerprint they compare).

Reads only. The rows come as plain tuples, the columns of exports.rules.SourceRow in order (exports.source
makes SourceRows of them); `Scope` says which examples.
"""
from __future__ import annotations

import contextlib
import itertools
import operator
import sqlite3
from collections.abc import Callable, Container, Iterable, Iterator
from itertools import repeat
from typing import Any

from sqlite_utils import Database

from db.connection import BUSY_TIMEOUT_MS
from db.scope import Scope, by_ids
from db.tx import when_unlocked

MMAP_BYTES = 1 << 30
# The current reflection: the version chosen in review, else the latest (db.generations keeps it).
_REVIEWED_REFLECTION = "e.reflection_id"
# Review-independent: the latest reflection of the current thought, whatever a reviewer chose.
_LATEST_REFLECTION = (
    "(SELECT max(g.id) FROM generations g WHERE g.example_id = e.id AND g.kind = 'reflection' "
    "AND g.parent_id = e.thought_id)"
)
_REVIEW_COLUMNS = "s.status, s.edited_thought, s.edited_label, s.suggested_label, s.bias_category"
_PROVENANCE_COLUMNS = "s.reviewer, s.last_event_id, s.chosen_reflection_id"
_TEAM_COLUMN = "s.conflict"  # last: reviewers disagree and none adjudicated (db.team)


@contextlib.contextmanager
def read_snapshot(db: Database) -> Iterator[None]:
    """Every read inside sees one state of the database (a WAL read transaction), even while others write."""
    mmap = db.conn.execute("PRAGMA mmap_size").fetchone()[0]
    db.conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")  # reading a large file through mmap saves a copy per page
    began = not db.conn.in_transaction
    if began:
        db.conn.execute("BEGIN")
    try:
        yield
    finally:
        if began and db.conn.in_transaction:
            db.conn.execute("COMMIT")
        db.conn.execute(f"PRAGMA mmap_size = {int(mmap)}")


def source_rows(db: Database, scope: Scope, *, reflections: str | None, review: bool, provenance: bool,
                id_range: tuple[int, int] | None = None) -> Iterator[tuple[Any, ...]]:
    """The examples of scope in id order (only first <= id < end of id_range, if given), streamed.

    reflections: 'reviewed', 'latest' or None (not needed); review: the review state; provenance:
    the DPO columns. Every column costs each row a round trip through Python's sqlite3 (NULL or
    not), so columns a rule does not need are left out of the query and given as None, and the
    review state, which few examples have, is read by a second query over the reviewed examples
    alone (in the same snapshot) and joined to the rows by id.
    """
    where, args = scope.where("e")
    if id_range is not None:
        where += " AND e.id >= ? AND e.id < ?"
        args.extend(id_range)
    if reflections is None:  # with the provenance columns, the query keeps its full width
        refl_cols, refl_join = (", NULL, NULL, NULL, NULL", "") if provenance else ("", "")
        tail: tuple[None, ...] = () if provenance else (None,) * 4
    else:
        expr = _REVIEWED_REFLECTION if reflections == "reviewed" else _LATEST_REFLECTION
        refl_cols, refl_join, tail = ", r.id, r.thought_process, r.predicted_label, r.model", (
            f"LEFT JOIN generations r ON r.id = {expr}"), ()
    review_cols = f", {_REVIEW_COLUMNS}, {_PROVENANCE_COLUMNS}, {_TEAM_COLUMN}" if provenance else ""
    cursor = db.conn.execute(f"""
        SELECT e.id, e.dataset, e.split, e.premise, e.hypothesis, e.gold_label, e.content_hash, e.source_id,
               e.thought_id, t.thought_process, t.predicted_label, t.model{refl_cols}{review_cols}
        FROM examples e
        LEFT JOIN generations t ON t.id = e.thought_id
        {refl_join}
        {"LEFT JOIN review_state s ON s.example_id = e.id" if provenance else ""}
        WHERE {where}
        ORDER BY e.id
    """, args)
    try:
        if provenance:
            yield from cursor
            return
        nothing = tail + (None,) * 9  # the review state, the provenance columns and the team's
        reviews = {
            example_id: (*tail, *state, None, None, None, conflict)
            for example_id, *state, conflict in db.execute(
                f"SELECT e.id, {_REVIEW_COLUMNS}, {_TEAM_COLUMN} FROM review_state s CROSS JOIN examples e "
                f"ON e.id = s.example_id WHERE {where}", args)
        } if review else {}
        rows: Iterator[tuple[Any, ...]] = cursor
        if reviews:
            rows, ids = itertools.tee(cursor)
            rest: Iterator[tuple[Any, ...]] = map(reviews.get, map(operator.itemgetter(0), ids), repeat(nothing))
        else:
            rest = repeat(nothing)
        yield from map(operator.add, rows, rest)  # C all the way: no Python frame per row
    finally:
        cursor.close()


def standing_decisions(db: Database, first: int, last: int) -> list[tuple[Any, ...]]:
    """Every reviewer's standing decision (db.team) on the examples first <= id <= last, by example, oldest first:
    (example_id, reviewer, decision, reason, comment, adjudication, event_id, edited thought, edited label), the
    last two for edits only. A range of review_decisions' primary key: one read per block of an export."""
    return db.execute(
        "SELECT d.example_id, d.reviewer, d.decision, d.reason, d.comment, d.adjudication, d.event_id, "
        "json_extract(v.payload, '$.thought'), json_extract(v.payload, '$.label') FROM review_decisions d "
        "LEFT JOIN review_events v ON d.decision = 'edit' AND v.id = d.event_id "
        "WHERE d.example_id BETWEEN ? AND ? ORDER BY d.example_id, d.event_id", [first, last]).fetchall()


def passed_over_versions(db: Database, example_id: int, thought_id: int,
                         chosen_id: int) -> list[tuple[int, str, int, str]]:
    """(id, text, label, model) of the parsed reflections of the thought other than the chosen one, in id order."""
    return [(r[0], r[1], r[2], r[3]) for r in db.execute(
        "SELECT id, thought_process, predicted_label, model FROM generations WHERE example_id = ? "
        "AND kind = 'reflection' AND parent_id = ? AND id != ? AND predicted_label IS NOT NULL "
        "AND thought_process IS NOT NULL ORDER BY id", [example_id, thought_id, chosen_id])]


def id_bounds(db: Database, scope: Scope) -> tuple[int, int] | None:
    """The first and last example id in scope (None when there is none)."""
    where, args = scope.where("e")
    ends = [db.execute(f"SELECT e.id FROM examples e WHERE {where} ORDER BY e.id {order} LIMIT 1", args).fetchone()
            for order in ("ASC", "DESC")]
    return None if ends[0] is None else (int(ends[0][0]), int(ends[1][0]))


def fingerprint(db: Database) -> tuple[int, int, int, int]:
    """The last ids of the append-only tables: two connections in one snapshot read the same values."""
    a, b, c, d = db.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM examples), (SELECT coalesce(max(id), 0) FROM generations), "
        "(SELECT coalesce(max(id), 0) FROM review_events), (SELECT coalesce(max(id), 0) FROM runs)").fetchone()
    return int(a), int(b), int(c), int(d)


def count_in_scope(db: Database, scope: Scope, at_most: int | None = None) -> int:
    """How many examples scope holds (the total for a progress bar), counting up to at_most."""
    where, args = scope.where("e")
    if at_most is None:
        return int(db.execute(f"SELECT count(*) FROM examples e WHERE {where}", args).fetchone()[0])
    return int(db.execute(f"SELECT count(*) FROM (SELECT 1 FROM examples e WHERE {where} LIMIT ?)",
                          [*args, at_most]).fetchone()[0])


def outside_scope(db: Database, scope: Scope, hashes: Container[str]) -> list[tuple[int, str, str, str]]:
    """(id, dataset, split, content_hash) of the examples outside scope whose pair is among hashes."""
    where, args = scope.where("e")
    # Ids first: an index on (dataset, split) answers that without reading the rows' text.
    ids = [r[0] for r in db.execute(f"SELECT id FROM examples e WHERE NOT ({where})", args)]
    sql = "SELECT id, dataset, split, content_hash FROM examples WHERE id IN ({ids}) ORDER BY id"
    return [(r[0], r[1], r[2], r[3]) for r in by_ids(db, sql, ids) if r[3] in hashes]


def scopes_of(db: Database, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """example id -> (dataset, split)."""
    sql = "SELECT id, dataset, split FROM examples WHERE id IN ({ids}) ORDER BY id"
    return {example_id: (dataset, split) for example_id, dataset, split in by_ids(db, sql, ids)}


def available_scopes(db: Database) -> list[tuple[str, str, int]]:
    """(dataset, split, examples) of the database: what an export screen offers to pick from."""
    return [(r[0], r[1], r[2]) for r in db.execute(
        "SELECT dataset, split, count(*) FROM examples GROUP BY dataset, split ORDER BY dataset, split")]


def open_reader(path: str) -> Database:
    """A connection for reading only (the writer has applied the migrations), with the store's busy timeout."""
    return Database(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000))


def hold_writers(path: str, timeout_s: float, on_wait: Callable[[], None] | None = None) -> sqlite3.Connection:
    """A connection of its own holding the write lock (BEGIN IMMEDIATE): no commit falls in until release_writers.

    Waits for another writer (db.tx.when_unlocked) while on_wait can say so, else fails after timeout_s
    (sqlite3.OperationalError); the connection is closed when it fails.
    """
    lock = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    try:
        if on_wait is None:
            lock.execute("BEGIN IMMEDIATE")
        else:
            when_unlocked(lambda: lock.execute("BEGIN IMMEDIATE"), on_wait=on_wait)
    except BaseException:
        lock.close()
        raise
    return lock


def release_writers(lock: sqlite3.Connection) -> None:
    """Let other writers commit again (nothing was written under the lock)."""
    if lock.in_transaction:
        lock.execute("ROLLBACK")
    lock.close()


def edit_events(db: Database, example_ids: Iterable[int]) -> dict[int, list[tuple[str | None, str | None, Any]]]:
    """example id -> (thought, base, recorded edit_ratio) of its active edits, the one review_state shows first
    (an adjudication, then the latest), for the examples given (an export's edited rows of one block)."""
    ids = list(example_ids)
    if not ids:
        return {}
    sql = ("SELECT e.example_id, json_extract(e.payload, '$.thought'), json_extract(e.payload, '$.base'), "
           "json_extract(e.payload, '$.edit_ratio') FROM review_events e "
           "JOIN review_groups g ON g.group_id = e.group_id "
           "WHERE e.example_id IN ({ids}) AND e.action = 'edit' AND g.active = 1 "
           "ORDER BY coalesce(json_extract(e.payload, '$.adjudication'), 0) DESC, e.id DESC")
    found: dict[int, list[tuple[str | None, str | None, Any]]] = {}
    for example_id, thought, base, ratio in by_ids(db, sql, ids):
        found.setdefault(example_id, []).append((thought, base, ratio))
    return found
