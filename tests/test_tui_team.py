"""The review app as a team tool, driven through Pilot: reasons, comments, adjudication, the reviewer shown,
the guidelines pane."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from db import open_db
from db.queues import QueueFilter, ids
from db.reviews import record
from nlistral_tui.pilot import press, running, screen_text, stored_state
from pipeline.demo import open_demo
from pipeline.settings import Settings

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def _reviewer(monkeypatch):
    monkeypatch.setenv("NLISTRAL_REVIEWER", "ada")


def _events(path: Path, example_id: int) -> list[tuple[str, str, dict]]:
    db = open_db(path)
    try:
        return [(a, r, json.loads(p)) for a, r, p in db.execute(
            "SELECT action, reviewer, payload FROM review_events WHERE example_id = ? ORDER BY id", [example_id])]
    finally:
        db.conn.close()


def _queue(path: Path) -> list[int]:
    db = open_db(path)
    try:
        return ids(db, QueueFilter(queue="disagreements"))
    finally:
        db.conn.close()


async def test_a_reject_with_a_reason_and_a_comment(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        target = app.screen.current.id
        await press(app, pilot, "r")
        assert "Why reject" in screen_text(app) and "2  wrong reading of the premise" in screen_text(app)
        app.screen.query_one("#choice-note").value = "reads [bold]None[/] as some"
        await press(app, pilot, "2")
        assert app.screen.current.id != target  # a reject moves on, as before
        await press(app, pilot, "k")
        text = screen_text(app)
        assert "ada  reject  reason: wrong reading of the premise" in text
        assert "  comment: reads [bold]None[/] as some" in text
    assert _events(demo_db_path, target) == [("reject", "ada", {"reason": "wrong reading of the premise",
                                                                 "comment": "reads [bold]None[/] as some"})]
    assert stored_state(demo_db_path, target).status == "rejected"


async def test_a_reject_without_a_reason_and_esc_cancels(demo_db_path):
    first, second, third = _queue(demo_db_path)[:3]
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "r", "escape")
        assert app.screen.current.id == first and stored_state(demo_db_path, first).status == "pending"
        await press(app, pilot, "r", "enter")  # enter takes the highlighted choice: no reason
        await press(app, pilot, "r", "0")
        await press(app, pilot, "r", "down", "enter")  # arrows pick a reason too
    assert _events(demo_db_path, first) == _events(demo_db_path, second) == [("reject", "ada", {})]
    assert _events(demo_db_path, third) == [("reject", "ada", {"reason": "reflection rationalises gold"})]


async def test_configured_reasons_and_a_flag_with_a_reason(demo_db_path):
    settings = Settings(reasons=("label flipped", "thought truncated"))
    async with running(demo_db_path, settings=settings) as (app, pilot):
        target = app.screen.current.id
        await press(app, pilot, "b", "1")  # the bias category, then why
        assert "1  label flipped" in screen_text(app) and "gold is wrong" not in screen_text(app)
        await press(app, pilot, "2")
        assert app.screen.current.id == target
        assert "ada  flag  reason: thought truncated" in screen_text(app)
    assert _events(demo_db_path, target) == [
        ("flag_bias", "ada", {"category": "gold_wrong", "note": "", "reason": "thought truncated"})]


async def test_a_comment_records_the_standing_decision_again(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        target = app.screen.current.id
        await press(app, pilot, "C")
        assert any("decide #" in n.message for n in app._notifications)  # nothing decided: nothing to comment on
        await press(app, pilot, "r", "4", "k", "C")
        await pilot.press(*"gold says 0, premise says 1", "enter")
        await press(app, pilot)
        assert "ada  reject  reason: gold is wrong" in screen_text(app)
        assert "comment: gold says 0, premise says 1" in screen_text(app)
        await press(app, pilot, "u")  # one undo step takes the comment back
        assert "comment:" not in screen_text(app)
    assert [e[2] for e in _events(demo_db_path, target)] == [
        {"reason": "gold is wrong"}, {"reason": "gold is wrong", "comment": "gold says 0, premise says 1"}]


async def test_a_conflict_adjudicated_and_shown_beside_the_others(demo_db_path):
    target = _queue(demo_db_path)[0]
    db = open_db(demo_db_path)
    record(db, "accept", [target], reviewer="bob", payload={"comment": "the reflection holds"})
    record(db, "reject", [target], reviewer="cy", payload={"reason": "gold is wrong"})
    db.conn.close()
    async with running(demo_db_path) as (app, pilot):
        assert app.screen.current.id == target and app.screen.current.state.conflict
        text = screen_text(app)
        assert "reviewers disagree: J adjudicates" in text
        assert "bob  accept" in text
        assert "comment: the reflection holds" in text and "cy  reject  reason: gold is wrong" in text
        await press(app, pilot, "J")
        assert "adopt bob's accept" in screen_text(app) and "adopt cy's reject (gold is wrong)" in screen_text(app)
        app.screen.query_one("#choice-note").value = "premise settles it"
        await press(app, pilot, "2")  # adopt cy's reject
        await press(app, pilot, "k")
        text = screen_text(app)
        assert "adjudicated" in text and "reviewers disagree" not in text
        assert "ada  reject  ⚖ adjudication  reason: gold is wrong" in text and "comment: premise settles it" in text
        assert "bob  accept" in text and "cy  reject" in text
    settled = stored_state(demo_db_path, target)
    assert settled.adjudicated and not settled.conflict and settled.status == "rejected"
    assert _events(demo_db_path, target)[-1] == (
        "reject", "ada", {"reason": "gold is wrong", "comment": "premise settles it", "adjudication": True})


async def test_adjudicate_by_accepting_and_only_where_there_is_a_conflict(demo_db_path):
    target = _queue(demo_db_path)[0]
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "J")
        assert any("no conflict to adjudicate" in n.message for n in app._notifications)
        db = open_db(demo_db_path)
        record(db, "accept", [target], reviewer="bob")
        record(db, "reject", [target], reviewer="cy")
        db.conn.close()
        await press(app, pilot, "f5", "J", "a")
        assert stored_state(demo_db_path, target).status == "accepted"
        assert _events(demo_db_path, target)[-1] == ("accept", "ada", {"adjudication": True})
        await press(app, pilot, "u", "J")
        app.screen.query_one("#choice-note").value = "cy is right"
        await press(app, pilot, "r", "4")  # reject: its reason dialog next, the comment carried over
    assert stored_state(demo_db_path, target).adjudicated
    assert _events(demo_db_path, target)[-1] == (
        "reject", "ada", {"adjudication": True, "reason": "gold is wrong", "comment": "cy is right"})


async def test_the_reviewer_is_shown_in_the_header(demo_db_path):
    async with running(demo_db_path, size=(80, 24), settings=Settings(reviewer="grace")) as (app, _pilot):
        assert "reviewer grace" in screen_text(app)
        assert app.sub_title == "demo.db · reviewer grace"


async def test_the_guidelines_pane_shows_the_demo_guide(tmp_path):
    store = tmp_path / "demo.db"
    assert open_demo(store).guide == tmp_path / "GUIDE.md"
    async with running(store, size=(100, 30)) as (app, pilot):
        await press(app, pilot, "G")
        text = screen_text(app)
        assert "Reviewing NLI reflections" in text and "Decisions" in text
        await press(app, pilot, "escape")
        assert "Reviewing NLI reflections" not in screen_text(app)


async def test_the_guidelines_named_in_the_config_or_where_to_put_one(tmp_path, demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "G")
        assert f"No guidelines at {demo_db_path.parent / 'GUIDE.md'}" in screen_text(app)
    config = tmp_path / "conf" / "config.toml"
    config.parent.mkdir()
    (config.parent / "team.md").write_text("# Our rules\n\nNever accept [a link](http://x) blindly.\n")
    async with running(demo_db_path, settings=Settings(guidelines="team.md", path=config)) as (app, pilot):
        await press(app, pilot, "G")
        assert "Our rules" in screen_text(app) and "Never accept a link blindly" in screen_text(app)


async def test_the_stats_screen_shows_agreement_between_reviewers(demo_db_path):
    """A worked example: ada accept, accept, reject, reject; bob accept, reject, reject, reject. Observed
    agreement 3/4; by chance 0.5 x 0.25 + 0.5 x 0.75 = 0.5; Cohen's kappa (0.75 - 0.5) / (1 - 0.5) = 0.5."""
    async with running(demo_db_path, size=(160, 80)) as (app, pilot):
        await press(app, pilot, "S")
        assert "Agreement on decisions" not in screen_text(app)  # nobody has decided yet: no panel
        db = open_db(demo_db_path)
        for i, (a, b) in enumerate([("accept", "accept"), ("accept", "reject"), ("reject", "reject"),
                                    ("reject", "reject")], 1):
            record(db, a, [i], reviewer="ada")
            record(db, b, [i], reviewer="bob")
        db.conn.close()
        await press(app, pilot, "r")
        app.screen.query_one("#stats-body").scroll_end(animate=False)
        await press(app, pilot)
        text = " ".join(screen_text(app).replace("│", " ").split())
        assert "Agreement on decisions" in text and "ada bob 4 75.0% 0.500" in text
