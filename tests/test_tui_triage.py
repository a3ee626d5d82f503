"""The review app's triage list (key t), driven through Pilot: counts, recomputing the ranking, opening the
suspect-gold queue in rank order and a named cell as a queue."""
from __future__ import annotations

from dataclasses import asdict

import pytest

from db import open_db
from db.outcomes import outcomes
from db.suspicion import suspects
from nlistral_tui.pilot import press, running, screen_text
from pipeline.settings import Suspicion

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def _reviewer(monkeypatch):
    monkeypatch.setenv("NLISTRAL_REVIEWER", "ada")


def _expected(path):
    db = open_db(path)
    try:
        return [s.example_id for s in suspects(db, asdict(Suspicion()))], outcomes(db).cells
    finally:
        db.conn.close()


async def _until(app, pilot, test, tries: int = 50):
    for _ in range(tries):
        if test():
            return
        await pilot.pause(0.1)
    raise AssertionError(screen_text(app))


async def test_triage_recomputes_and_opens_the_suspect_queue_in_rank_order(demo_db_path):
    ranked, cells = _expected(demo_db_path)
    assert len(ranked) > 3
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "t")
        await _until(app, pilot, lambda: "Triage" in screen_text(app))
        text = screen_text(app)
        assert "ranking never computed" in text and "suspect gold" in text and "fixed by reflection" in text
        await press(app, pilot, "r")
        await _until(app, pilot, lambda: app.screen.filter.queue == "suspect_gold" and app.screen.window.rows)
        await _until(app, pilot, lambda: app.screen.current is not None)
        assert [r.id for r in app.screen.window.rows] == ranked
        assert app.screen.current.id == ranked[0]
        await _until(app, pilot, lambda: "GOLD SUSPICION" in screen_text(app))
        assert "#1  score" in screen_text(app) and "the thought says" in screen_text(app)
        await press(app, pilot, "j")
        assert app.screen.current.id == ranked[1]
        await press(app, pilot, "t")
        await _until(app, pilot, lambda: "Triage" in screen_text(app))
        assert f"fixed by reflection  {cells['fixed_by_reflection']}" in screen_text(app)
        await press(app, pilot, "2")
        await _until(app, pilot, lambda: app.screen.filter.queue == "fixed_by_reflection")
        await _until(app, pilot, lambda: len(app.screen.window.rows) == cells["fixed_by_reflection"])


async def test_triage_at_80x24_shows_every_choice(demo_db_path):
    async with running(demo_db_path, size=(80, 24)) as (app, pilot):
        await press(app, pilot, "t")
        await _until(app, pilot, lambda: "Triage" in screen_text(app))
        text = screen_text(app)
        for title in ("suspect gold", "reflection rationalises", "hard-to-learn", "easy", "r recomputes the suspect ranking"):
            assert title in text, text
