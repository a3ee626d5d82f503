"""The decision journal (db/journal.py): idempotent replay, torn lines, live sessions left alone, no waiting."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from app_process import LockHolder

from db import open_db
from db.journal import Journal, Step, apply_step, journal_folder, replay_orphans
from db.positions import load, save
from db.reviews import state


def _events(db) -> int:
    return db.execute("SELECT count(*) FROM review_events").fetchone()[0]


def test_a_step_applied_twice_is_stored_once(db):
    db.execute("INSERT INTO examples (dataset, split, source_id, premise, hypothesis, gold_label, content_hash) "
               "VALUES ('d', 'train', '0', 'p', 'h', 1, 'x')")
    step = Step("record", "ann", "accept", (1,), seconds=1.5)
    first, again = apply_step(db, step), apply_step(db, step)
    assert first.group == again.group and again.message == "already stored"
    assert _events(db) == 1 and state(db, 1).status == "accepted"


def test_a_step_that_cannot_take_effect_is_settled_not_retried(db):
    nothing = apply_step(db, Step("undo", "ann"))
    assert nothing.group is None and nothing.message.startswith("Nothing to undo")
    gone = apply_step(db, Step("record", "ann", "accept", (999,)))  # no such example
    assert gone.group is None and gone.message
    assert db.execute("SELECT count(*) FROM journal_applied").fetchone()[0] == 2 and _events(db) == 0


def test_steps_are_checked_before_they_are_journaled():
    with pytest.raises(ValueError):
        Step("record", "ann", "approve", (1,))
    with pytest.raises(ValueError):
        Step("record", "ann", "edit", (1,), {"thought": "", "label": 1})
    with pytest.raises(ValueError):
        Step("record", "ann", "accept", ())


def test_an_ended_sessions_journal_is_stored_on_the_next_open_and_a_torn_line_skipped(demo_db_path):
    journal = Journal(demo_db_path, "ann")
    for example_id in (2, 6):
        journal.append(Step("record", "ann", "accept", (example_id,)))
    with journal.path.open("ab") as fh:  # a power cut in the middle of the third line
        fh.write(Step("record", "ann", "reject", (7,)).line()[:30])
    journal.close()  # steps pending: the file is kept (and unlocked)
    assert journal.path.exists()
    told: list[str] = []
    db = open_db(demo_db_path, notify=told.append)
    assert [state(db, i).status for i in (2, 6, 7)] == ["accepted", "accepted", "pending"]
    assert told and "Stored 2 review steps" in told[0]
    assert not journal_folder(demo_db_path).exists()
    assert replay_orphans(db, demo_db_path) == 0


def test_a_running_sessions_journal_is_left_to_it(demo_db_path):
    code = (f"import sys; from db.journal import Journal, Step\n"
            f"j = Journal({str(demo_db_path)!r}, 'bob')\n"
            "j.append(Step('record', 'bob', 'reject', (2,)))\n"
            "print(j.path, flush=True)\n"
            "sys.stdin.readline()\n")  # ends without closing: like a kill, the file stays
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        path = other.stdout.readline().strip()
        db = open_db(demo_db_path)
        assert state(db, 2).status == "pending" and replay_orphans(db, demo_db_path) == 0
        db.conn.close()
    finally:
        other.communicate("\n", timeout=10)
    db = open_db(demo_db_path)
    assert state(db, 2).status == "rejected" and not journal_folder(demo_db_path).exists(), path


def test_opening_a_locked_store_does_not_wait_for_the_journal(demo_db_path):
    journal = Journal(demo_db_path, "ann")
    journal.append(Step("record", "ann", "accept", (2,)))
    journal.close()
    holder = LockHolder(demo_db_path)
    try:
        started = time.monotonic()
        db = open_db(demo_db_path)
        assert time.monotonic() - started < 2 and state(db, 2).status == "pending"
        db.conn.close()
        assert journal.path.exists()
    finally:
        holder.release()
    assert state(open_db(demo_db_path), 2).status == "accepted"


def test_a_reviewers_place_keeps_the_latest(db):
    save(db, "ann", {"queue": "pending"}, 5, decided=True, at="2026-01-02T00:00:00")
    save(db, "ann", {"queue": "all"}, 9, decided=False, at="2026-01-01T00:00:00")  # older: a late replay
    place = load(db, "ann")
    assert place is not None and place.filter == {"queue": "pending"} and place.example_id == 5 and place.decided
    assert load(db, "bob") is None
