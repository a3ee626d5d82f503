"""The import stage: a batch of example rows as a small in-memory SQLite database.

Every store connection has an empty in-memory database attached as `import_stage` (ATTACH cannot
run inside a transaction, so db.connection attaches it when it opens the store). A batch of rows is
staged by building that little database elsewhere and serializing it: in the parser process for a
large import, so the parsing core also does the binding of every value. The writer swaps the bytes
in (sqlite3_deserialize, allowed inside its transaction) and moves the rows into the store with one
INSERT ... SELECT, in C. Binding eight values per row from Python in the writer, after unpickling
them, used to be about a fifth of a large import's writing time.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from db.records import PAIR_COLUMNS

if TYPE_CHECKING:
    from sqlite_utils import Database

    from db.examples import ExampleRow

STAGE = "import_stage"
# Columns in ExampleRow order (line, then the pair's columns); the table's rowids run 1..count in row order.
# No declared types: the values come typed from Python, and the examples table applies its own.
_TABLE = f"CREATE TABLE rows (line, {', '.join(PAIR_COLUMNS)})"
_INSERT = f"INSERT INTO rows VALUES ({', '.join('?' * (1 + len(PAIR_COLUMNS)))})"


@dataclass(frozen=True)
class StagedRows:
    """A batch of example rows: image is a serialized SQLite database with their table `rows`."""

    image: bytes
    count: int
    last_line: int  # the input line of the batch's last row (0 when empty), for progress


def stage_rows(rows: Sequence[ExampleRow]) -> StagedRows:
    """Stage a batch of rows (any process can do this; the bytes travel by pipe or pickle)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(_TABLE)
        conn.executemany(_INSERT, rows)
        conn.commit()
        return StagedRows(conn.serialize(), len(rows), rows[-1][0] if rows else 0)
    finally:
        conn.close()


def attach_stage(conn: sqlite3.Connection) -> None:
    """Attach the (empty) stage to a new connection; outside any transaction."""
    conn.execute(f"ATTACH DATABASE ':memory:' AS {STAGE}")


def load_stage(db: Database, staged: StagedRows) -> None:
    """Make staged the content of import_stage.rows (replacing what was there)."""
    db.conn.deserialize(staged.image, name=STAGE)


def clear_stage(db: Database) -> None:
    """Empty the stage, so a large last batch does not stay in memory."""
    load_stage(db, _EMPTY)


_EMPTY = stage_rows([])
