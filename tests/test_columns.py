"""The example's columns are declared once (db.records.Example); every other list of them agrees with it."""
from __future__ import annotations

import sqlite3

from db.connection import open_db
from db.examples import NewExample, example_row
from db.records import EXAMPLE_COLUMNS, PAIR_COLUMNS
from db.staging import stage_rows


def test_the_store_the_import_and_the_stage_agree_with_the_one_declaration(tmp_path):
    db = open_db(tmp_path / "s.db")
    assert tuple(row[1] for row in db.execute("PRAGMA table_info(examples)")) == EXAMPLE_COLUMNS
    assert (*NewExample._fields[1:], "content_hash") == PAIR_COLUMNS
    staged = stage_rows([example_row(NewExample(2, "d", "train", "7", "p", "h", 1))])
    stage = sqlite3.connect(":memory:")
    stage.deserialize(staged.image)
    assert tuple(row[1] for row in stage.execute("PRAGMA table_info(rows)")) == ("line", *PAIR_COLUMNS)
    assert stage.execute("SELECT * FROM rows").fetchall() == [(2, "d", "train", "7", "p", "h", 1, example_row(
        NewExample(2, "d", "train", "7", "p", "h", 1))[-1])]
