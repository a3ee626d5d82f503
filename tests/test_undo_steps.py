"""Undo and redo say which step they flipped (the app shows it without reading the log itself)."""
from __future__ import annotations

from db import open_db
from db.reviews import Flip, record, redo, undo


def test_undo_and_redo_return_the_step_they_flipped(demo_db_path):
    db = open_db(demo_db_path)
    group = record(db, "accept", [3, 4], reviewer="r")
    record(db, "flag_bias", [5], reviewer="other", payload={"category": "ambiguous", "note": ""})
    assert undo(db, reviewer="r") == Flip(redo=False, group=group, action="accept", ids=(3, 4))
    assert redo(db, reviewer="r") == Flip(redo=True, group=group, action="accept", ids=(3, 4))
