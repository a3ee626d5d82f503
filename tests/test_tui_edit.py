"""The edit dialog and the edit in the detail pane: a label that is not gold, esc that asks, `d` that shows the edit."""
from __future__ import annotations

import pytest

from db import open_db
from db.detail import load_details
from db.reviews import record, undo
from nlistral_tui.pilot import press, running, screen_text, settle, stored_state
from nlistral_tui.widgets.detail_text import edit_gold_note
from nlistral_tui.widgets.text_pager import TextPager

WIDE, NARROW = (200, 50), (80, 24)


@pytest.fixture(autouse=True)
def _reviewer(monkeypatch):
    monkeypatch.setenv("NLISTRAL_REVIEWER", "pilot")


async def _choose(app, pilot, label: int) -> None:
    """Click the edit dialog's radio button of this label."""
    from textual.widgets import RadioButton

    button = next(b for b in app.screen.query(RadioButton) if str(b.label).startswith(f"{label} "))
    await pilot.click(button)
    await settle(app, pilot)


def _shown(app) -> str:
    """Everything the detail pane holds (both columns, scrolled or not)."""
    return "\n".join(p.content.plain for p in app.screen.query(TextPager))


def test_the_gold_note_says_what_a_curated_export_does_with_the_edit():
    assert edit_gold_note(0, 0, None) is None and edit_gold_note(1, None, None) is None
    assert edit_gold_note(None, 1, None) is None
    note = edit_gold_note(0, 1, None)
    assert note.startswith("label 0 differs from gold 1") and "(edit_not_gold)" in note and "--use-relabels" in note
    relabelled = edit_gold_note(0, 1, 0)
    assert "suggested relabel 0 matches it" in relabelled and "only with --use-relabels" in relabelled


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["wide", "narrow"])
async def test_a_label_that_is_not_gold_is_warned_before_saving_and_marked_after(demo_db_path, size):
    async with running(demo_db_path, size) as (app, pilot):
        target = app.screen.current
        gold = target.example.gold_label
        assert target.improved_label == gold
        await press(app, pilot, "e")
        warning = app.screen.query_one("#edit-warning")
        assert not warning.display  # the label the dialog opens with is gold: nothing to warn of
        await _choose(app, pilot, 1 - gold)
        assert warning.display and f"label {1 - gold} differs from gold {gold}" in str(warning.render())
        assert f"label {1 - gold} differs from gold {gold}" in screen_text(app).replace("\n", " ")
        await _choose(app, pilot, gold)
        assert not warning.display
        await _choose(app, pilot, 1 - gold)
        await press(app, pilot, "ctrl+s")  # warned, not blocked
        assert app.screen.__class__.__name__ == "ReviewScreen"
        warned = [n for n in app._notifications if n.severity == "warning" and "edit_not_gold" in n.message]
        assert warned and f"#{target.id}" in warned[0].message
        await press(app, pilot, "k")
        assert app.screen.current.id == target.id
        shown = _shown(app)
        assert "EDITED THOUGHT" in shown and f"label {1 - gold}" in shown
        edit_part = shown[shown.index("EDITED THOUGHT"):]
        assert edit_part.split("\n", 1)[0].endswith("✗ differs from gold") and "(edit_not_gold)" in edit_part
    saved = stored_state(demo_db_path, target.id)
    assert saved.status == "edited" and saved.edited_label == 1 - gold


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["wide", "narrow"])
async def test_an_edit_whose_label_is_not_gold_is_marked_in_the_detail_pane(demo_db_path, size):
    db = open_db(demo_db_path)
    eid, gold = db.execute("SELECT id, gold_label FROM examples WHERE thought_label != gold_label "
                           "ORDER BY id LIMIT 1").fetchone()
    record(db, "edit", [eid], reviewer="pilot", payload={"thought": "Step 1: mine.", "label": 1 - gold})
    db.conn.close()
    async with running(demo_db_path, size) as (app, pilot):
        await press(app, pilot, "7")  # the edited queue
        assert app.screen.current.id == eid
        shown = _shown(app)
        head, _, rest = shown[shown.index("EDITED THOUGHT"):].partition("\n")
        assert head == f"EDITED THOUGHT  label {1 - gold} {'entailment' if gold == 0 else 'no-entailment'}  " \
                       "✗ differs from gold"
        assert rest.startswith(f"label {1 - gold} differs from gold {gold}: a curated export leaves this edit out "
                               "(edit_not_gold)")
        assert "Step 1: mine." in rest


@pytest.mark.asyncio
async def test_with_a_matching_relabel_the_warning_names_use_relabels(demo_db_path):
    async with running(demo_db_path, WIDE) as (app, pilot):
        gold = app.screen.current.example.gold_label
        await press(app, pilot, "l", str(1 - gold), "e")
        await _choose(app, pilot, 1 - gold)
        text = str(app.screen.query_one("#edit-warning").render())
        assert f"the suggested relabel {1 - gold} matches it" in text and "only with --use-relabels" in text


@pytest.mark.asyncio
async def test_escape_closes_an_unchanged_edit_at_once(demo_db_path):
    async with running(demo_db_path, NARROW) as (app, pilot):
        target = app.screen.current.id
        await press(app, pilot, "e", "escape")
        assert app.screen.__class__.__name__ == "ReviewScreen" and app.screen.current.id == target
    assert stored_state(demo_db_path, target).status == "pending"


@pytest.mark.asyncio
async def test_escape_asks_before_discarding_typed_text(demo_db_path):
    async with running(demo_db_path, NARROW) as (app, pilot):
        target = app.screen.current.id
        await press(app, pilot, "e", *"Mine. ")
        area = app.screen.query_one("#edit-text")
        assert area.text.startswith("Mine. ")
        await press(app, pilot, "escape")
        assert app.screen.__class__.__name__ == "ChoiceScreen"
        assert f"Discard your changes to #{target}?" in screen_text(app)
        await press(app, pilot, "k")  # keep editing: the text is still there
        assert app.screen.__class__.__name__ == "EditScreen" and area.text.startswith("Mine. ")
        await press(app, pilot, "escape", "escape")  # esc on the question keeps editing too
        assert app.screen.__class__.__name__ == "EditScreen" and area.text.startswith("Mine. ")
        await press(app, pilot, "escape", "d")
        assert app.screen.__class__.__name__ == "ReviewScreen" and app.screen.current.id == target
    assert stored_state(demo_db_path, target).status == "pending"


@pytest.mark.asyncio
async def test_escape_asks_when_only_the_label_changed(demo_db_path):
    async with running(demo_db_path, WIDE) as (app, pilot):
        gold = app.screen.current.example.gold_label
        await press(app, pilot, "e")
        await _choose(app, pilot, 1 - gold)
        await press(app, pilot, "escape")
        assert app.screen.__class__.__name__ == "ChoiceScreen"
        await press(app, pilot, "d")
        assert app.screen.__class__.__name__ == "ReviewScreen"


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["wide", "narrow"])
async def test_d_shows_the_edit_once_the_example_is_edited(demo_db_path, size):
    async with running(demo_db_path, size) as (app, pilot):
        target = app.screen.current
        await press(app, pilot, "e")
        area = app.screen.query_one("#edit-text")
        area.text = target.improved_thought.replace("Step 3:", "Step 3: Crucially,")
        await press(app, pilot, "ctrl+s", "k", "d")
        assert app.screen.current.id == target.id
        shown = _shown(app)
        assert "Diff: what the edit replaced → edited thought" in shown and "{+Crucially, +}" in shown
        assert "Diff: flawed thought → improved thought" not in shown
        await press(app, pilot, "j")  # the next example is not edited: `d` diffs its reflection as before
        assert "Diff: flawed thought → improved thought" in _shown(app)


@pytest.mark.asyncio
async def test_a_label_only_edit_says_its_text_is_unchanged(demo_db_path):
    async with running(demo_db_path, WIDE) as (app, pilot):
        gold = app.screen.current.example.gold_label
        await press(app, pilot, "e")
        await _choose(app, pilot, 1 - gold)
        await press(app, pilot, "ctrl+s", "k", "d")
        assert "(the text is unchanged: the edit set the label)" in _shown(app)


def test_the_detail_holds_what_the_latest_active_edit_replaced(demo_db_path):
    db = open_db(demo_db_path)
    try:
        eid = db.execute("SELECT id FROM examples WHERE reflection_id IS NOT NULL ORDER BY id LIMIT 1").fetchone()[0]
        assert load_details(db, [eid])[eid].edit_base is None
        record(db, "edit", [eid], reviewer="t", payload={"thought": "First.", "label": 1, "base": "Original."})
        record(db, "edit", [eid], reviewer="t", payload={"thought": "Second.", "label": 1, "base": "First."})
        d = load_details(db, [eid])[eid]
        assert d.edited and d.edit_base == "First."
        undo(db, reviewer="t")
        d = load_details(db, [eid])[eid]
        assert d.state.edited_thought == "First." and d.edit_base == "Original."
        record(db, "accept", [eid], reviewer="t")
        d = load_details(db, [eid])[eid]
        assert not d.edited and d.edit_base is None  # accepted now: no edit to diff
    finally:
        db.conn.close()
