"""Several reviewers on one store: standing decisions, conflicts and adjudication, derived from the log."""
from __future__ import annotations

from pathlib import Path

import pytest

from db import open_db
from db.reviews import rebuild_state, record, redo, state, undo
from pipeline.demo import build_demo


@pytest.fixture
def store(tmp_path: Path):
    db = open_db(build_demo(tmp_path / "demo.db"))
    yield db
    db.conn.close()


def _standing(db, example_id: int) -> dict[str, tuple]:
    return {r[0]: tuple(r[1:]) for r in db.execute(
        "SELECT reviewer, decision, reason, comment, adjudication FROM review_decisions WHERE example_id = ?",
        [example_id])}


def test_each_reviewer_keeps_a_standing_decision_with_reason_and_comment(store):
    record(store, "accept", [1], reviewer="ada")
    record(store, "reject", [1], reviewer="bob", payload={"reason": "gold is wrong", "comment": "premise says never"})
    assert _standing(store, 1) == {"ada": ("accept", None, None, 0),
                                   "bob": ("reject", "gold is wrong", "premise says never", 0)}
    assert state(store, 1).conflict and state(store, 1).status == "rejected"  # the latest, as before


def test_agreeing_reviewers_are_no_conflict_and_undo_is_per_reviewer(store):
    record(store, "accept", [2], reviewer="ada")
    record(store, "accept", [2], reviewer="bob")
    assert not state(store, 2).conflict
    record(store, "reject", [2], reviewer="ada")
    assert state(store, 2).conflict
    undo(store, reviewer="ada")  # takes back ada's reject only
    assert _standing(store, 2) == {"ada": ("accept", None, None, 0), "bob": ("accept", None, None, 0)}
    assert not state(store, 2).conflict
    redo(store, reviewer="ada")
    assert state(store, 2).conflict


def test_a_flag_taken_back_does_not_stand(store):
    record(store, "accept", [3], reviewer="ada")
    record(store, "flag_bias", [3], reviewer="ada", payload={"category": "gold_wrong", "reason": "gold is wrong"})
    assert _standing(store, 3)["ada"] == ("flag", "gold is wrong", None, 0)
    record(store, "unflag_bias", [3], reviewer="ada")
    assert _standing(store, 3) == {"ada": ("accept", None, None, 0)}


def test_an_adjudication_settles_a_conflict_and_sets_the_status(store):
    record(store, "accept", [4], reviewer="ada")
    record(store, "reject", [4], reviewer="bob")
    assert state(store, 4).conflict
    record(store, "accept", [4], reviewer="cy", payload={"adjudication": True, "comment": "the reflection holds"})
    s = state(store, 4)
    assert s.adjudicated and not s.conflict and s.status == "accepted"
    record(store, "reject", [4], reviewer="bob")  # a later decision by another reviewer does not outrank it
    assert state(store, 4).status == "accepted"
    undo(store, reviewer="cy")
    assert state(store, 4).conflict and not state(store, 4).adjudicated and state(store, 4).status == "rejected"


def test_rebuild_agrees_with_the_incremental_path(store):
    record(store, "accept", [5, 6], reviewer="ada")
    record(store, "edit", [5], reviewer="bob", payload={"thought": "Step 1: mine.", "label": 1, "reason": "formatting"})
    before = list(store.execute("SELECT * FROM review_decisions ORDER BY example_id, reviewer"))
    states = [state(store, i) for i in (5, 6)]
    rebuild_state(store)
    assert list(store.execute("SELECT * FROM review_decisions ORDER BY example_id, reviewer")) == before
    assert [state(store, i) for i in (5, 6)] == states and states[0].conflict


def test_bad_reasons_and_adjudications_are_refused(store):
    with pytest.raises(ValueError, match="reason"):
        record(store, "reject", [1], reviewer="ada", payload={"reason": " "})
    with pytest.raises(ValueError, match="adjudication"):
        record(store, "skip", [1], reviewer="ada", payload={"adjudication": True})


def test_an_adjudicated_decision_clears_another_reviewers_bias_flag(store):
    record(store, "flag_bias", [7], reviewer="ada", payload={"category": "gold_wrong", "reason": "gold is wrong"})
    record(store, "accept", [7], reviewer="bob")
    assert state(store, 7).conflict and state(store, 7).bias_category == "gold_wrong"
    record(store, "accept", [7], reviewer="cy", payload={"adjudication": True})
    assert state(store, 7).bias_category is None and state(store, 7).status == "accepted"
    undo(store, reviewer="cy")
    assert state(store, 7).bias_category == "gold_wrong"


def test_reasons_and_comments_are_found_by_search(store):
    from db.search import search

    assert search(store, "rationalises") == []
    record(store, "reject", [8], reviewer="ada", payload={"reason": "reflection rationalises gold"})
    record(store, "accept", [9, 10], reviewer="bob", payload={"comment": "Checked twice: watertight"})
    record(store, "accept", [10], reviewer="cy", payload={"comment": "watertight again"})
    assert search(store, "rationalises") == [8]
    assert search(store, "watertight") == [9, 10]
    assert search(store, "again watert") == [10]
