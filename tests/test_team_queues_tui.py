"""The review app's team queues (mine, conflicts, audit sample), the new filters and named views, driven by Pilot."""
from __future__ import annotations

import pytest

from db import open_db
from db.queues import QueueFilter
from db.reviews import record
from nlistral_tui.pilot import press, running, screen_text, settle
from pipeline.settings import Settings

pytestmark = pytest.mark.asyncio
ADA = Settings(reviewer="ada")


@pytest.fixture(autouse=True)
def _no_api(monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)


def _team(path) -> None:
    """ada is assigned 1-10 and bob 5-15; they disagree on 6 and 9; a sample named audit."""
    db = open_db(path)
    db.conn.executemany("INSERT INTO assignments (reviewer, example_id, assigned_at) VALUES (?, ?, 'now')",
                        [("ada", i) for i in range(1, 11)] + [("bob", i) for i in range(5, 16)])
    db.conn.executemany("INSERT INTO samples (name, example_id, created_at) VALUES ('audit', ?, 'now')",
                        [(3,), (30,)])
    db.conn.commit()
    record(db, "accept", [1, 2, 6, 7], reviewer="ada")
    record(db, "reject", [9], reviewer="ada", payload={"reason": "gold is wrong"})
    record(db, "reject", [5, 6], reviewer="bob", payload={"reason": "ambiguous pair"})
    record(db, "accept", [7, 9], reviewer="bob")
    db.conn.close()


def _rows(app) -> list[int]:
    return [r.id for r in app.screen.window.rows]


async def test_mine_and_conflicts_queues_show_their_rows(demo_db_path):
    _team(demo_db_path)
    async with running(demo_db_path, settings=ADA, start_filter=QueueFilter()) as (app, pilot):
        text = screen_text(app)
        assert "m mine" in text and "x conflicts" in text and "o audit sample" in text
        await press(app, pilot, "m")
        assert app.screen.filter == QueueFilter(queue="mine", me="ada")
        assert _rows(app) == [3, 4, 5, 8, 10] and app.screen.current.id == 3  # bob's reject of 5 is his
        assert app.screen.counts["mine"] == 5
        await press(app, pilot, "a")  # ada decides 3: it leaves her queue
        await press(app, pilot, "x")
        assert app.screen.filter == QueueFilter(queue="conflicts") and _rows(app) == [6, 9]
        await press(app, pilot, "o")
        assert _rows(app) == [3, 30]
        await press(app, pilot, "m")
        assert _rows(app) == [4, 5, 8, 10]
        await press(app, pilot, "1")
        assert app.screen.filter == QueueFilter()  # the reviewer rides only on the mine queue
    async with running(demo_db_path, settings=Settings(reviewer="bob")) as (app, pilot):
        assert app.screen.filter == QueueFilter(queue="mine", me="bob")  # new here: he starts on his work
        assert _rows(app) == [8, 10, 11, 12, 13, 14, 15]
    async with running(demo_db_path, settings=Settings(reviewer="cy")) as (app, pilot):
        assert app.screen.filter == QueueFilter(queue="disagreements")  # nothing assigned: as before


async def test_an_unassigned_store_shows_no_team_queues(demo_db_path):
    async with running(demo_db_path, settings=ADA, start_filter=QueueFilter()) as (app, pilot):
        assert "mine" not in screen_text(app) and "conflicts" not in screen_text(app)
        await press(app, pilot, "m")
        assert app.screen.filter.queue == "mine" and _rows(app) == []
        assert any("nothing is assigned" in n.message for n in app._notifications)
        assert "m mine" in screen_text(app)  # the queue shown is listed while it is shown


async def test_a_named_view_round_trips(demo_db_path):
    _team(demo_db_path)
    view = QueueFilter(queue="conflicts", reviewer="bob", reason="ambiguous pair")
    async with running(demo_db_path, settings=ADA, start_filter=QueueFilter()) as (app, pilot):
        app.screen.set_filter(view, "filter")
        await settle(app, pilot)
        await press(app, pilot, "w")
        await pilot.press(*"bob's calls")
        await press(app, pilot, "enter")
        assert any("Saved this view as \"bob's calls\"" in n.message for n in app._notifications)
        await press(app, pilot, "1", "c")
        assert app.screen.filter == QueueFilter()
        await press(app, pilot, "w", "tab", "enter")  # the list: the one view, highlighted
        assert app.screen.filter == view and _rows(app) == [6]
    async with running(demo_db_path, settings=Settings(reviewer="bob"), start_filter=QueueFilter()) as (app, pilot):
        await press(app, pilot, "w")
        assert "No saved views yet" in screen_text(app)  # views are per reviewer


async def test_filter_dialog_sets_the_team_filters(demo_db_path):
    _team(demo_db_path)
    async with running(demo_db_path, settings=ADA, start_filter=QueueFilter()) as (app, pilot):
        await press(app, pilot, "f")
        app.screen.query_one("#filter-reviewer").value = "bob"
        await press(app, pilot, "tab")
        app.screen.query_one("#filter-words_max").value = "x"
        await press(app, pilot, "ctrl+s")
        assert any("is not a whole number" in n.message for n in app._notifications)
        app.screen.query_one("#filter-words_max").value = "1000"
        await press(app, pilot, "ctrl+s")
        assert app.screen.filter == QueueFilter(reviewer="bob", words_max=1000)
        assert _rows(app) == [5, 6, 7, 9]
        assert "by bob" in screen_text(app) and "words –1000" in screen_text(app)
