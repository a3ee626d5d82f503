"""A choice dialog answers once: a second key (or esc) taken in the same moment is not a second answer."""
from __future__ import annotations

import pytest
from textual import events

from db import open_db
from db.journal import Step
from nlistral_tui.pilot import running, settle
from nlistral_tui.screens.choice import ChoiceScreen
from nlistral_tui.screens.dialog import ask

pytestmark = pytest.mark.asyncio


async def test_a_second_key_before_the_dialog_closes_is_not_a_second_answer(demo_db_path, monkeypatch):
    monkeypatch.setenv("NLISTRAL_REVIEWER", "ada")
    async with running(demo_db_path) as (app, pilot):
        answers: list[object] = []
        dialog = ChoiceScreen("Pick", [("1", "one", "one"), ("2", "two", "two")])
        ask(app, dialog, answers.append)
        await settle(app, pilot)
        assert dialog.take_key(events.Key("1", "1"))  # answered: closing
        assert not dialog.take_key(events.Key("2", "2"))  # a key typed ahead is not a second answer
        dialog.action_cancel()  # nor is esc
        await settle(app, pilot)
        assert answers == ["one"] and app.screen is not dialog


async def test_a_dialogs_answer_takes_effect_before_the_next_key(demo_db_path, monkeypatch):
    """`r 0 a` in one burst: the reject's answer is applied before the `a` that follows it runs, so the reject
    is stored for the example it was asked on and the accept goes to the next one. (Textual ran a push_screen
    callback later, from the review screen's queue, while `a` ran its binding at once: the accept came first
    and the reject, about an example no longer shown, was dropped.)"""
    monkeypatch.setenv("NLISTRAL_REVIEWER", "ada")
    async with running(demo_db_path) as (app, pilot):
        review = app.review
        asked = review.current.id
        review.action_reject()
        await settle(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, ChoiceScreen)
        assert dialog.take_key(events.Key("0", "0"))  # the reason key answers the dialog...
        review.action_accept()  # ...and the next key's binding runs at once, as the app runs it
        await settle(app, pilot)
        await app.store.stored(app.store.submit(Step("position", "ada", at={})))  # behind every earlier write
    db = open_db(demo_db_path)
    decided = db.execute("SELECT example_id, action FROM review_events WHERE action IN ('accept', 'reject') "
                         "ORDER BY id").fetchall()
    assert decided[0] == (asked, "reject") and len(decided) == 2
    assert decided[1][1] == "accept" and decided[1][0] != asked
