"""A choice dialog answers once: a second key (or esc) taken in the same moment is not a second answer."""
from __future__ import annotations

import pytest
from textual import events

from nlistral_tui.pilot import running, settle
from nlistral_tui.screens.choice import ChoiceScreen

pytestmark = pytest.mark.asyncio


async def test_a_second_key_before_the_dialog_closes_is_not_a_second_answer(demo_db_path, monkeypatch):
    monkeypatch.setenv("NLISTRAL_REVIEWER", "ada")
    async with running(demo_db_path) as (app, pilot):
        answers: list[object] = []
        dialog = ChoiceScreen("Pick", [("1", "one", "one"), ("2", "two", "two")])
        app.push_screen(dialog, answers.append)
        await settle(app, pilot)
        assert dialog.take_key(events.Key("1", "1"))  # answered: closing
        assert not dialog.take_key(events.Key("2", "2"))  # a key typed ahead is not a second answer
        dialog.action_cancel()  # nor is esc
        await settle(app, pilot)
        assert answers == ["one"] and app.screen is not dialog
