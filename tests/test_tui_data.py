"""The app's headless parts (nlistral_tui.data): the queue window, example details, review steps, stats."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from db import open_db
from db.detail import load_details
from db.generations import add_generation
from db.journal import Step, apply_step
from db.queues import QueueFilter, QueueRow, ids
from db.review_stats import accepted_balance
from nlistral_tui.data.actions import reload_after
from nlistral_tui.data.review_stats import review_stats
from nlistral_tui.data.window import MARGIN, MAX_ROWS, QueueWindow, load_window


def _rows(start: int, stop: int) -> list[QueueRow]:
    return [QueueRow(i, 1, 0, False, False, "pending", False, None, f"h{i}") for i in range(start, stop)]


@pytest.fixture
def store(demo_db_path):
    db = open_db(demo_db_path)
    yield db
    db.conn.close()


def test_the_nlistral_tui_data_package_runs_without_textual():
    code = ("import sys, nlistral_tui.data.window, nlistral_tui.data.actions, nlistral_tui.data.review_stats, "
            "nlistral_tui.data.store; assert 'textual' not in sys.modules, 'textual was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_window_cursor_moves_within_the_rows_and_asks_for_more_near_the_ends():
    w = QueueWindow()
    w.reset(_rows(10, 110), focus_id=55, at_start=False, at_end=False)
    assert w.current.id == 55 and w.cursor == 45 and w.position is None
    w.base_position = 1000
    assert w.position == 1045
    assert w.move(1) and w.current.id == 56 and not w.move(100) and w.current.id == 56
    assert w.wants_after() and w.wants_before()  # 100 rows: both ends are within MARGIN
    w.reset(_rows(10, 20), focus_id=12_000, at_start=True, at_end=True)
    assert w.current.id == 19  # past the last row: the last row
    w.reset([], None, True, True)
    assert w.current is None and not w.can_move(1) and w.position is None


def test_window_grows_and_drops_its_far_end():
    w = QueueWindow()
    w.reset(_rows(1, 101), None, at_start=True, at_end=False)
    w.base_position = 0
    while len(w.rows) < MAX_ROWS:
        last = w.rows[-1].id
        w.move_to(len(w.rows) - 1)
        w.extend(_rows(last + 1, last + 101), after=True, exhausted=False)
    w.move_to(len(w.rows) - 10)
    at = w.current.id
    dropped = w.extend(_rows(w.rows[-1].id + 1, w.rows[-1].id + 101), after=True, exhausted=True)
    assert dropped == list(range(1, 101)) and len(w.rows) == MAX_ROWS and w.at_end and not w.at_start
    assert w.current.id == at and w.position == at - 1  # ids 1.. are positions 0..
    first = w.rows[0].id
    w.move_to(5)
    dropped = w.extend(_rows(first - 100, first), after=False, exhausted=True)
    assert w.at_start and not w.at_end and len(w.rows) == MAX_ROWS and len(dropped) == 100
    assert w.rows[0].id == 1 and w.position == w.current.id - 1
    w.extend(_rows(1, 5), after=False, exhausted=True)  # rows already there are not added twice
    assert [r.id for r in w.rows[:3]] == [1, 2, 3]


def test_window_prefetches_nearest_first_and_updates_rows_in_place():
    w = QueueWindow()
    w.reset(_rows(1, 200), focus_id=50, at_start=True, at_end=True)
    wanted = w.prefetch_ids(have=[50, 51])
    assert wanted[:3] == [52, 53, 54] and 49 in wanted and 50 not in wanted
    w.mark(50, status="accepted")
    assert w.current.status == "accepted"
    w.update_rows({51: dataclasses.replace(_rows(51, 52)[0], status="rejected")})
    assert w.rows[w.index_of(51)].status == "rejected" and w.index_of(9999) is None
    assert MARGIN < MAX_ROWS


def test_load_window_opens_on_disagreements_and_centres_on_a_focus(store):
    first = load_window(store, QueueFilter(), None, pick_start=True)
    disagreements = ids(store, QueueFilter(queue="disagreements"))
    assert first.filter.queue == "disagreements" and [r.id for r in first.rows] == disagreements
    assert first.at_start and first.at_end and set(first.details) <= set(disagreements)
    around = load_window(store, QueueFilter(), 20)
    assert [r.id for r in around.rows] == list(range(1, 46)) and 20 in around.details


def test_details_bring_thought_reflection_versions_judges_prediction_and_state(store):
    eid, thought_id, gold = store.execute(
        "SELECT id, thought_id, gold_label FROM examples WHERE reflection_id IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()
    newer = add_generation(store, example_id=eid, kind="reflection", parent_id=thought_id, model="m2",
                           backend="mistral", thought_process="Step 1: newer.", error_analysis="e",
                           predicted_label=gold, parse_status="ok")
    add_generation(store, example_id=eid, kind="judge", parent_id=newer.id, model="judge", backend="mistral",
                   score=4.0, rationale="sound", parse_status="ok")
    add_generation(store, example_id=eid, kind="prediction", model="adapter", backend="local",
                   predicted_label=1 - gold, parse_status="ok")
    d = load_details(store, [eid, 99_999])[eid]
    assert list(load_details(store, [eid, 99_999])) == [eid]
    assert d.thought.id == thought_id and len(d.reflections) == 2 and d.reflection.id == newer.id
    assert d.judges[0].score == 4.0 and d.prediction.predicted_label == 1 - gold
    assert d.improved_thought == "Step 1: newer." and d.improved_label == gold
    apply_step(store, Step("record", "t", "edit", (eid,), {"thought": "Mine.", "label": gold}))
    edited = load_details(store, [eid])[eid]
    assert edited.improved_thought == "Mine." and edited.state.status == "edited"


def test_review_steps_reload_what_they_touched_and_undo_says_when_there_is_nothing(store):
    def flip(op):
        return apply_step(store, Step(op, "t"))

    assert flip("undo").message.startswith("Nothing to undo")
    step = Step("record", "t", "accept", (3, 4), seconds=2.5)
    done = reload_after([3], None)(store, apply_step(store, step))
    assert list(done.details) == [3] and done.details[3].state.status == "accepted"
    undone = flip("undo")
    assert undone.group == done.applied.group and undone.action == "accept" and undone.ids == (3, 4)
    assert flip("redo").ids == (3, 4)
    assert flip("redo").group is None


def test_review_stats_balance_and_pace(store):
    gold = dict(store.execute("SELECT id, gold_label FROM examples").fetchall())
    apply_step(store, Step("record", "ann", "accept", (1, 2), seconds=4.0))
    apply_step(store, Step("record", "bob", "edit", (3,), {"thought": "x", "label": 1 - gold[3]}, seconds=10.0))
    balance = accepted_balance(store)
    assert sum(balance["gold"].values()) == 3 and sum(balance["curated"].values()) == 3
    stats = review_stats(store)
    assert [r[:2] for r in stats.pace.by_reviewer] == [("ann", 2), ("bob", 1)] and stats.pace.median_seconds == 4.0
    assert sum(n for _day, n in stats.pace.per_day) == 3 and stats.store["examples"] == 45


def test_a_decision_waits_for_another_process_holding_the_write_lock(demo_db_path, monkeypatch):
    """A long import in another process holds the write lock past the busy timeout: the app's
    decision waits (and says so) instead of failing, and is saved once the lock is free."""
    import asyncio
    import sqlite3
    import threading
    import time

    from db import connection
    from db.reviews import state
    from nlistral_tui.data.store import Store

    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr("db.tx.LOCKED_WAIT_S", 30)  # a broken wait fails instead of hanging
    other = sqlite3.connect(demo_db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(1.0, lambda: other.execute("COMMIT")).start()
    waits: list[float] = []
    store = Store(demo_db_path, on_wait=lambda: waits.append(time.monotonic()))
    started = time.monotonic()
    group = asyncio.run(store.stored(store.submit(Step("record", "r", "accept", (1,))))).group
    assert store.close() == []
    assert group is not None and time.monotonic() - started >= 0.9 and waits
    assert state(open_db(demo_db_path), 1).status == "accepted"
