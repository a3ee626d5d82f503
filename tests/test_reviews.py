"""The append-only review log: derived state, unlimited undo/redo across restarts, bulk steps."""
from __future__ import annotations

import sqlite3

import pytest

from db import NothingToRedoError, NothingToUndoError, open_db, reviews


def _status(db, ids):
    return [reviews.state(db, i).status for i in ids]


def test_decisions_derive_the_state(demo_db_path):
    db = open_db(demo_db_path)
    reviews.record(db, "accept", [1], reviewer="ana", seconds_spent=4.0)
    reviews.record(db, "edit", [2], reviewer="ana", payload={"thought": "Step 1: the new text", "label": 1,
                                                              "base": "Step 1: the old text"}, seconds_spent=9.5)
    reviews.record(db, "flag_bias", [3], reviewer="ben", payload={"category": "gold_wrong", "note": "looks off"})
    reviews.record(db, "relabel", [3], reviewer="ben", payload={"label": 0})
    reviews.record(db, "skip", [4], reviewer="ben")
    s2 = reviews.state(db, 2)
    assert (s2.status, s2.edited_label, s2.edited_thought) == ("edited", 1, "Step 1: the new text")
    assert s2.edit_diff == "Step 1: the [-old-]{+new+} text"
    assert s2.seconds_spent == 9.5 and s2.reviewer == "ana"
    s3 = reviews.state(db, 3)
    assert (s3.status, s3.bias_category, s3.bias_note, s3.suggested_label) == ("pending", "gold_wrong", "looks off", 0)
    assert db.execute("SELECT gold_label FROM examples WHERE id = 3").fetchone()[0] in (0, 1)  # gold untouched
    assert reviews.state(db, 4).skipped
    reviews.record(db, "unflag_bias", [3], reviewer="ben")
    assert reviews.state(db, 3).bias_category is None


def test_undo_redo_is_unlimited_and_survives_a_restart(demo_db_path):
    db = open_db(demo_db_path)
    for i in range(1, 8):
        reviews.record(db, "accept" if i % 2 else "reject", [i], reviewer="ana")
    db.conn.close()
    db = open_db(demo_db_path)  # a restart: everything comes from the log
    for _ in range(7):
        reviews.undo(db, reviewer="ana")
    assert _status(db, range(1, 8)) == ["pending"] * 7
    with pytest.raises(NothingToUndoError):
        reviews.undo(db, reviewer="ana")
    db.conn.close()
    db = open_db(demo_db_path)
    for _ in range(7):
        reviews.redo(db, reviewer="ana")
    assert _status(db, range(1, 8)) == ["accepted", "rejected"] * 3 + ["accepted"]
    with pytest.raises(NothingToRedoError):
        reviews.redo(db, reviewer="ana")


def test_redo_order_and_a_new_decision_clears_redo(demo_db_path):
    db = open_db(demo_db_path)
    a = reviews.record(db, "accept", [1], reviewer="r")
    b = reviews.record(db, "reject", [1], reviewer="r")
    assert reviews.undo(db, reviewer="r").group == b
    assert reviews.state(db, 1).status == "accepted"
    assert reviews.undo(db, reviewer="r").group == a
    assert reviews.redo(db, reviewer="r").group == a  # the most recently undone comes back first
    reviews.record(db, "edit", [1], reviewer="r", payload={"thought": "x", "label": 0})
    with pytest.raises(NothingToRedoError):
        reviews.redo(db, reviewer="r")


def test_each_reviewer_undoes_and_redoes_only_their_own_steps(demo_db_path):
    db = open_db(demo_db_path)
    mine = reviews.record(db, "accept", [1], reviewer="ana")
    reviews.record(db, "reject", [2], reviewer="ben")  # another reviewer, later, on the same store
    assert reviews.undo(db, reviewer="ana").group == mine
    assert _status(db, [1, 2]) == ["pending", "rejected"]
    with pytest.raises(NothingToUndoError, match="made by other reviewers"):
        reviews.undo(db, reviewer="ana")
    with pytest.raises(NothingToRedoError):
        reviews.redo(db, reviewer="ben")  # ana's undone step is hers to bring back
    reviews.record(db, "accept", [3], reviewer="ben")  # a decision of someone else does not clear her redo
    assert reviews.redo(db, reviewer="ana").group == mine
    assert _status(db, [1, 2, 3]) == ["accepted", "rejected", "accepted"]
    with pytest.raises(NothingToUndoError, match="Nothing of cy's to undo"):
        reviews.undo(db, reviewer="cy")


def test_bulk_is_one_step(demo_db_path):
    db = open_db(demo_db_path)
    ids = [r[0] for r in db.execute("SELECT id FROM examples WHERE thought_label != gold_label")]
    assert len(ids) == 15
    reviews.record(db, "reject", [ids[0]], reviewer="r")
    reviews.record(db, "accept", ids, reviewer="r")
    assert set(_status(db, ids)) == {"accepted"}
    reviews.undo(db, reviewer="r")
    assert _status(db, ids) == ["rejected"] + ["pending"] * 14


def test_choosing_a_reflection_version_moves_the_pointer(demo_db_path):
    from db.generations import add_generation, get_generation

    db = open_db(demo_db_path)
    example_id, first, thought = db.execute(
        "SELECT id, reflection_id, thought_id FROM examples WHERE reflection_id IS NOT NULL LIMIT 1").fetchone()
    old = get_generation(db, first)
    newer = add_generation(db, example_id=example_id, kind="reflection", parent_id=thought, model="m2",
                           backend="test", thought_process="another take", error_analysis="e",
                           predicted_label=old.predicted_label, parse_status="ok")
    assert db.execute("SELECT reflection_id FROM examples WHERE id = ?", [example_id]).fetchone()[0] == newer.id
    reviews.record(db, "choose_reflection", [example_id], reviewer="r", payload={"generation_id": first})
    assert db.execute("SELECT reflection_id FROM examples WHERE id = ?", [example_id]).fetchone()[0] == first
    reviews.undo(db, reviewer="r")
    assert db.execute("SELECT reflection_id FROM examples WHERE id = ?", [example_id]).fetchone()[0] == newer.id
    with pytest.raises(Exception, match="not a reflection of this example"):
        reviews.record(db, "choose_reflection", [example_id], reviewer="r", payload={"generation_id": thought})


def test_the_log_is_append_only_and_state_rebuilds_identically(demo_db_path):
    db = open_db(demo_db_path)
    reviews.record(db, "accept", [1, 2], reviewer="r")
    reviews.record(db, "relabel", [2], reviewer="r", payload={"label": 1})
    reviews.undo(db, reviewer="r")
    reviews.record(db, "note", [5], reviewer="r", payload={"text": "odd pair"})
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE review_events SET action = 'reject'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM review_events")
    db.conn.rollback()
    before = list(db.query("SELECT * FROM review_state ORDER BY example_id"))
    reviews.rebuild_state(db)
    assert list(db.query("SELECT * FROM review_state ORDER BY example_id")) == before
    assert reviews.log_position(db) == db.execute("SELECT max(id) FROM review_events").fetchone()[0]


@pytest.mark.parametrize("action, payload, message", [
    ("approve", {}, "unknown review action"),
    ("edit", {"thought": " ", "label": 1}, "improved thought"),
    ("edit", {"thought": "x", "label": 3}, "a label, 0 or 1"),
    ("flag_bias", {"category": "vibes"}, "bias category"),
    ("relabel", {"label": "yes"}, "relabel takes"),
])
def test_invalid_actions_are_refused(db, action, payload, message):
    with pytest.raises(ValueError, match=message):
        reviews.record(db, action, [1], reviewer="r", payload=payload)
