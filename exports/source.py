"""Reading what an export considers: rows streamed in one read snapshot, and the split index."""
from __future__ import annotations

import contextlib
import functools
import itertools
import operator
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from sqlite_utils import Database

from exports.rules import SourceRow, Target

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


def scope_filter(splits: Sequence[str], datasets: Sequence[str]) -> tuple[str, list[Any]]:
    """The WHERE clause (over alias e) that picks the examples of these splits and datasets."""
    clause = f"e.split IN ({', '.join('?' * len(splits))})"
    args: list[Any] = list(splits)
    if datasets:
        clause += f" AND e.dataset IN ({', '.join('?' * len(datasets))})"
        args.extend(datasets)
    return clause, args


@dataclass(frozen=True)
class Source:
    """What an export reads: one SourceRow per example of the splits and datasets, in id order, streamed.

    reflections: 'reviewed', 'latest' or None (not needed); review: the review state; provenance:
    the DPO columns. Every column costs each row a round trip through Python's sqlite3 (NULL or
    not), so columns a rule does not need are left out of the query and filled with None, and the
    review state, which few examples have, is read by a second query over the reviewed examples
    alone (in the same snapshot) and joined to the rows by id.
    """

    splits: tuple[str, ...]
    datasets: tuple[str, ...]
    reflections: str | None
    review: bool
    provenance: bool = False

    def rows(self, db: Database, id_range: tuple[int, int] | None = None) -> Iterator[SourceRow]:
        """The rows, optionally only those with first <= id < end of id_range=(first, end)."""
        where, args = scope_filter(self.splits, self.datasets)
        if id_range is not None:
            where += " AND e.id >= ? AND e.id < ?"
            args.extend(id_range)
        if self.reflections is None:  # with the provenance columns, the query keeps its full width
            refl_cols, refl_join = (", NULL, NULL, NULL, NULL", "") if self.provenance else ("", "")
            tail = () if self.provenance else (None,) * 4
        else:
            expr = _REVIEWED_REFLECTION if self.reflections == "reviewed" else _LATEST_REFLECTION
            refl_cols, refl_join, tail = ", r.id, r.thought_process, r.predicted_label, r.model", (
                f"LEFT JOIN generations r ON r.id = {expr}"), ()
        review_cols = f", {_REVIEW_COLUMNS}, {_PROVENANCE_COLUMNS}" if self.provenance else ""
        cursor = db.conn.execute(f"""
            SELECT e.id, e.dataset, e.split, e.premise, e.hypothesis, e.gold_label, e.content_hash, e.source_id,
                   e.thought_id, t.thought_process, t.predicted_label, t.model{refl_cols}{review_cols}
            FROM examples e
            LEFT JOIN generations t ON t.id = e.thought_id
            {refl_join}
            {"LEFT JOIN review_state s ON s.example_id = e.id" if self.provenance else ""}
            WHERE {where}
            ORDER BY e.id
        """, args)
        try:
            if self.provenance:
                yield from map(_as_source_row, cursor)
                return
            nothing = tail + (None,) * 8  # the review state and the provenance columns
            reviews = {
                example_id: (*tail, *state, None, None, None)
                for example_id, *state in db.execute(
                    f"SELECT e.id, {_REVIEW_COLUMNS} FROM review_state s CROSS JOIN examples e "
                    f"ON e.id = s.example_id WHERE {where}", args)
            } if self.review else {}
            rows: Iterator[tuple[Any, ...]] = cursor
            if reviews:
                rows, ids = itertools.tee(cursor)
                rest: Iterator[tuple[Any, ...]] = map(reviews.get, map(operator.itemgetter(0), ids), repeat(nothing))
            else:
                rest = repeat(nothing)
            yield from map(_as_source_row, map(operator.add, rows, rest))  # C all the way: no Python frame per row
        finally:
            cursor.close()


_as_source_row = functools.partial(tuple.__new__, SourceRow)  # SourceRow._make without a Python frame per row


def id_bounds(db: Database, splits: Sequence[str], datasets: Sequence[str]) -> tuple[int, int] | None:
    """The first and last example id in the splits and datasets (None when there is none)."""
    where, args = scope_filter(splits, datasets)
    ends = [db.execute(f"SELECT e.id FROM examples e WHERE {where} ORDER BY e.id {order} LIMIT 1", args).fetchone()
            for order in ("ASC", "DESC")]
    return None if ends[0] is None else (ends[0][0], ends[1][0])


def fingerprint(db: Database) -> tuple[int, int, int, int]:
    """The last ids of the append-only tables: two connections in one snapshot read the same values."""
    return tuple(db.execute(  # type: ignore[return-value]
        "SELECT (SELECT coalesce(max(id), 0) FROM examples), (SELECT coalesce(max(id), 0) FROM generations), "
        "(SELECT coalesce(max(id), 0) FROM review_events), (SELECT coalesce(max(id), 0) FROM runs)").fetchone())


def count_in_scope(db: Database, splits: Sequence[str], datasets: Sequence[str], at_most: int | None = None) -> int:
    """How many examples the splits and datasets hold (the total for a progress bar), counting up to at_most."""
    where, args = scope_filter(splits, datasets)
    if at_most is None:
        return db.execute(f"SELECT count(*) FROM examples e WHERE {where}", args).fetchone()[0]
    return db.execute(f"SELECT count(*) FROM (SELECT 1 FROM examples e WHERE {where} LIMIT ?)",
                      [*args, at_most]).fetchone()[0]


def outside_scope(db: Database, splits: Sequence[str], datasets: Sequence[str],
                  hashes: Container[str]) -> list[tuple[int, str, str, str]]:
    """(id, dataset, split, content_hash) of the examples outside the scope whose pair is among hashes."""
    where, args = scope_filter(splits, datasets)
    # Ids first: an index on (dataset, split) answers that without reading the rows' text.
    ids = [r[0] for r in db.execute(f"SELECT id FROM examples e WHERE NOT ({where})", args)]
    return [r for r in _by_id(db, "id, dataset, split, content_hash", ids) if r[3] in hashes]


def scopes_of(db: Database, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """example id -> (dataset, split)."""
    return {example_id: (dataset, split) for example_id, dataset, split in _by_id(db, "id, dataset, split", ids)}


def _by_id(db: Database, columns: str, ids: Iterable[int]) -> Iterator[tuple[Any, ...]]:
    """Columns of the examples with these ids, in id order (500 ids per query)."""
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        yield from map(tuple, db.execute(
            f"SELECT {columns} FROM examples WHERE id IN ({', '.join('?' * len(chunk))}) ORDER BY id", chunk))


def available_scopes(db: Database) -> list[tuple[str, str, int]]:
    """(dataset, split, examples) of the database: what an export screen offers to pick from."""
    return [tuple(r) for r in db.execute(
        "SELECT dataset, split, count(*) FROM examples GROUP BY dataset, split ORDER BY dataset, split")]


def passed_over_versions(db: Database, row: SourceRow) -> list[Target]:
    """Reflections of the current thought other than the one chosen in review (empty when none was chosen)."""
    if row.chosen_reflection_id is None or row.thought_id is None:
        return []
    return [
        Target(text, label, "reflection_not_chosen", gen_id, model)
        for gen_id, text, label, model in db.execute(
            "SELECT id, thought_process, predicted_label, model FROM generations WHERE example_id = ? "
            "AND kind = 'reflection' AND parent_id = ? AND id != ? AND predicted_label IS NOT NULL "
            "AND thought_process IS NOT NULL ORDER BY id",
            [row.id, row.thought_id, row.chosen_reflection_id],
        )
    ]
