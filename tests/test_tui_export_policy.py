"""The export screen under several reviewers: the policy select, the contested count and the reasons in the plan."""
from __future__ import annotations

import pytest

from db import open_db
from db.reviews import record
from nlistral_tui.pilot import press, running, screen_text, settle

pytestmark = pytest.mark.asyncio
SIZE = (200, 60)


async def _choose(app, pilot, select: str, value: str) -> None:
    """Set one of the export form's selects, then wait for the plan it leads to."""
    app.screen.query_one(select).value = value
    await pilot.pause(0.5)  # the plan is counted after a short delay (PLAN_DELAY_S)
    await settle(app, pilot)


async def test_the_policy_select_changes_what_a_curated_export_counts(demo_db_path):
    db = open_db(demo_db_path)
    record(db, "accept", [1, 2], reviewer="ada")
    record(db, "reject", [1, 2], reviewer="bob", payload={"reason": "gold is wrong"})
    record(db, "reject", [2], reviewer="cy")  # a majority rejects 2; 1 is a tie
    db.conn.close()
    async with running(demo_db_path, SIZE) as (app, pilot):
        await press(app, pilot, "E")
        screen = app.screen
        await _choose(app, pilot, "#export-ablation", "curated")
        assert screen.query_one("#export-policy").value == "unanimous"
        assert screen.plan.left_out["contested"] == 2 and screen.plan.reasons["contested"] == {"gold is wrong": 2}
        assert "left out: contested" in screen_text(app) and "reason given (contested): gold is wrong" in \
            screen_text(app)
        await _choose(app, pilot, "#export-policy", "majority")
        assert screen.plan.left_out["contested"] == 1 and screen.plan.left_out_ids["contested"] == [1]
        assert screen.options().policy == "majority"
        await _choose(app, pilot, "#export-ablation", "reflected")  # a policy is for review decisions only
        assert screen.plan is None and "--policy" in screen.error
        await pilot.press("escape")
