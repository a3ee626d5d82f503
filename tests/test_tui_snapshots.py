"""Snapshots (pytest-textual-snapshot) of the review, help and stats screens on the demo store.

Update after an intended change of the look with: pytest tests/test_tui_snapshots.py --snapshot-update
"""
from __future__ import annotations

import pytest

from nlistral_tui.app import NlistralApp
from nlistral_tui.pilot import ready, settle
from pipeline.settings import Settings


@pytest.fixture(autouse=True)
def _reviewer(monkeypatch):
    monkeypatch.setenv("NLISTRAL_REVIEWER", "snapshot")


def _after(*keys: str):
    async def run_before(pilot) -> None:
        await ready(pilot.app, pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot.app, pilot)
    return run_before


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["narrow", "wide"])
def test_review_screen(snap_compare, demo_db_path, size):
    assert snap_compare(NlistralApp(demo_db_path, Settings()), terminal_size=size, run_before=_after("j", "d"))


def test_help_screen(snap_compare, demo_db_path):
    assert snap_compare(NlistralApp(demo_db_path, Settings()), terminal_size=(120, 40),
                        run_before=_after("question_mark"))


def test_stats_screen(snap_compare, demo_db_path):
    assert snap_compare(NlistralApp(demo_db_path, Settings()), terminal_size=(160, 50), run_before=_after("S"))
