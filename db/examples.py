"""Examples: bulk insert with conflict detection, lookups."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlite_utils import Database

from db.errors import StoreError, UnknownExampleError
from db.records import PAIR_COLUMNS, Example
from db.scope import by_ids
from db.search import index_examples
from db.staging import STAGE, StagedRows, clear_stage, load_stage


def content_hash(premise: str, hypothesis: str) -> str:
    """Hash of the exact pair text: equal pairs (in any dataset or split) share it."""
    return hashlib.sha256(f"{premise}\x1f{hypothesis}".encode()).hexdigest()


class NewExample(NamedTuple):
    """An example as read from a file; line is where it came from (for error messages).

    Its fields after line are PAIR_COLUMNS (db/records.py) but the content hash, in that order.
    """

    line: int
    dataset: str
    split: str
    source_id: str
    premise: str
    hypothesis: str
    gold_label: int | None


# A row as db.staging.stage_rows stages it for insert_examples: line, then PAIR_COLUMNS.
ExampleRow = tuple[int, str, str, str, str, str, "int | None", str]


def example_row(e: NewExample) -> ExampleRow:
    """The row insert_examples stores for a NewExample (its content hash added)."""
    return (*e, content_hash(e.premise, e.hypothesis))


@dataclass(frozen=True)
class Conflict:
    """A row that cannot be stored because the key already holds different content."""

    line: int
    source_id: str
    reason: str


@dataclass(frozen=True)
class InsertResult:
    """What insert_examples did: rows added, rows already present unchanged, rows in conflict."""

    added: int
    unchanged: int
    conflicts: list[Conflict]
    first_new_id: int | None


# One statement per batch, from the stage. OR IGNORE (not ON CONFLICT DO NOTHING) so that the
# statement cannot abort halfway and SQLite opens no savepoint for it: at every savepoint FTS5 writes
# the terms it holds in memory out as a new index segment. It skips rows whose key is stored; rows
# that would break another constraint never get here (the importer validates them), and
# _find_conflicts checks that every skipped row has its key stored.
_PAIR = ", ".join(PAIR_COLUMNS)
_MOVE = f"INSERT OR IGNORE INTO examples ({_PAIR}) SELECT {_PAIR} FROM {STAGE}.rows ORDER BY rowid"
_SKIPPED = "temp._new_examples"


def insert_examples(db: Database, batches: Iterable[StagedRows]) -> InsertResult:
    """Add rows not yet present; a row whose key is stored with the same text and label is skipped.

    Call inside write_tx (the caller rolls back when it rejects the conflicts). A key seen twice in
    the input with different content, or stored with other text or another gold label, is a
    conflict and is not written. Each batch goes straight into the table from the stage
    (db/staging.py), and its new pairs into the search index; only batches where rows were skipped
    are kept, to find out which, and why.
    """
    before = db.execute("SELECT coalesce(max(id), 0) FROM examples").fetchone()[0]
    db.execute(f"DROP TABLE IF EXISTS {_SKIPPED}")
    total, added, last = 0, 0, before
    for staged in batches:
        load_stage(db, staged)
        stored = db.conn.execute(_MOVE).rowcount
        total, added = total + staged.count, added + stored
        if stored < staged.count:
            _keep_skipped(db)
        index_examples(db, last)
        last = db.execute("SELECT coalesce(max(id), 0) FROM examples").fetchone()[0]
    clear_stage(db)
    conflicts = _find_conflicts(db, before) if added < total else []
    db.execute(f"DROP TABLE IF EXISTS {_SKIPPED}")
    return InsertResult(added, total - added - len(conflicts), conflicts, before + 1 if added else None)


def _keep_skipped(db: Database) -> None:
    """Copy the staged batch (it had skipped rows) where _find_conflicts reads it."""
    db.execute(f"CREATE TABLE IF NOT EXISTS {_SKIPPED} AS SELECT * FROM {STAGE}.rows WHERE false")
    db.execute(f"INSERT INTO {_SKIPPED} SELECT * FROM {STAGE}.rows")


def _find_conflicts(db: Database, before: int) -> list[Conflict]:
    """Why rows were skipped: stored with other content (conflict), or exact repeats (fine).

    A skipped row whose key is not stored broke another constraint (OR IGNORE skipped it too):
    StoreError, as the importer's checks should have rejected it with a reason.
    """
    unstored = db.execute(
        f"SELECT line, source_id FROM {_SKIPPED} s WHERE NOT EXISTS (SELECT 1 FROM examples e WHERE "
        "e.dataset = s.dataset AND e.split = s.split AND e.source_id = s.source_id) ORDER BY line LIMIT 1"
    ).fetchone()
    if unstored:
        raise StoreError(f"line {unstored[0]} (id {unstored[1]}) breaks a rule of the examples table (a missing "
                         "text or a gold label other than 0 and 1) that the import's checks did not catch; "
                         "nothing was stored. Please report this with the file.")
    found = db.execute(
        f"""
        SELECT s.line, s.source_id,
               CASE WHEN e.id > :before THEN
                    'id ' || s.source_id || ' appears earlier in the file with different content'
               ELSE 'id ' || s.source_id || ' is already in ' || s.dataset || '/' || s.split ||
                    CASE WHEN e.content_hash != s.content_hash THEN ' with a different premise or hypothesis'
                         ELSE ' with gold label ' || coalesce(e.gold_label, 'none') END
               END
        FROM {_SKIPPED} s JOIN examples e
          ON e.dataset = s.dataset AND e.split = s.split AND e.source_id = s.source_id
        WHERE (e.content_hash != s.content_hash OR e.gold_label IS NOT s.gold_label)
        ORDER BY s.line
        """,
        {"before": before},
    ).fetchall()
    return [Conflict(line, source_id, reason) for line, source_id, reason in found]


def get_example(db: Database, example_id: int) -> Example:
    """The example with this id, or UnknownExampleError."""
    rows = list(db.query("SELECT * FROM examples WHERE id = ?", [example_id]))
    if not rows:
        raise UnknownExampleError(f"No example with id {example_id} in this database.")
    return Example.from_row(rows[0])


def ids_by_source(db: Database, dataset: str, split: str, source_ids: Sequence[str]) -> dict[str, int]:
    """Map source ids of one dataset/split to example ids (missing ones are left out)."""
    sql = "SELECT source_id, id FROM examples WHERE dataset = ? AND split = ? AND source_id IN ({ids})"
    return {source_id: example_id for source_id, example_id in by_ids(db, sql, source_ids, [dataset, split])}


def stored_pair(db: Database, example_id: int) -> tuple[str, int | None]:
    """The content hash and gold label stored for an example id (which must exist)."""
    content, gold = db.execute("SELECT content_hash, gold_label FROM examples WHERE id = ?", [example_id]).fetchone()
    return content, gold
