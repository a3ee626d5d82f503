"""The review app driven through Pilot on the demo store: every action, undo/redo across a restart, bulk."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from db import open_db
from db.queues import QUEUES, QueueFilter, ids
from db.reviews import record
from nlistral_tui.pilot import press, running, screen_text, settle, stored_state
from pipeline.settings import Settings

pytestmark = pytest.mark.asyncio
WIDE, NARROW = (200, 50), (80, 24)


@pytest.fixture(autouse=True)
def _reviewer(monkeypatch):
    monkeypatch.setenv("NLISTRAL_REVIEWER", "pilot")
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)


def _ids(path: Path, f: QueueFilter) -> list[int]:
    db = open_db(path)
    try:
        return ids(db, f)
    finally:
        db.conn.close()


async def test_opens_on_the_disagreements_with_live_counts(demo_db_path):
    async with running(demo_db_path) as (app, _pilot):
        screen = app.screen
        disagreements = _ids(demo_db_path, QueueFilter(queue="disagreements"))
        assert screen.filter.queue == "disagreements" and screen.current.id == disagreements[0]
        assert screen.counts["all"] == 45 and screen.counts["disagreements"] == len(disagreements) == 15
        text = screen_text(app)
        assert "PREMISE" in text and "REFLECTION" in text and "row 1 of 15" in text
        assert "disagreements" in text and "45" in text


async def test_accept_reject_skip_record_reviewer_and_time_and_move_on(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        first, second, third = _ids(demo_db_path, QueueFilter(queue="disagreements"))[:3]
        await pilot.pause(0.05)
        await press(app, pilot, "a")
        assert app.screen.current.id == second
        await press(app, pilot, "r", "enter")  # the reason dialog: enter rejects without a reason
        await press(app, pilot, "s")
        assert app.screen.current.id == _ids(demo_db_path, QueueFilter(queue="disagreements"))[3]
    accepted, rejected, skipped = (stored_state(demo_db_path, i) for i in (first, second, third))
    assert accepted.status == "accepted" and accepted.reviewer == "pilot" and accepted.seconds_spent >= 0.05
    assert rejected.status == "rejected" and skipped.skipped and skipped.status == "pending"


async def test_next_previous_and_the_arrow_keys(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        order = _ids(demo_db_path, QueueFilter(queue="disagreements"))
        await press(app, pilot, "j", "j", "down")
        assert app.screen.current.id == order[3]
        await press(app, pilot, "k", "up")
        assert app.screen.current.id == order[1]
        await press(app, pilot, *["j"] * 20)
        assert app.screen.current.id == order[-1]
        assert len(app.screen.probe.latency["next"]) >= 18  # each move was timed inside the app


async def test_edit_stores_the_text_label_and_its_diff(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        target = app.screen.current
        base = target.improved_thought
        await press(app, pilot, "e")
        area = app.screen.query_one("#edit-text")
        area.text = base.replace("Step 3:", "Step 3: Crucially,")
        await press(app, pilot, "ctrl+s")
        assert app.screen.current.id != target.id
    edited = stored_state(demo_db_path, target.id)
    assert edited.status == "edited" and edited.edited_label == target.improved_label
    assert "Crucially," in edited.edited_thought and "{+Crucially," in edited.edit_diff


async def test_edit_refuses_an_empty_thought_and_cancels_with_escape(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        target = app.screen.current.id
        await press(app, pilot, "e")
        app.screen.query_one("#edit-text").text = "   "
        await press(app, pilot, "ctrl+s")
        assert app.screen.__class__.__name__ == "EditScreen"
        await press(app, pilot, "escape", "d")  # the text was changed: esc asks, d discards
        assert app.screen.current.id == target
    assert stored_state(demo_db_path, target).status == "pending"


async def test_flag_bias_with_a_note_then_clear_it(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        target = app.screen.current.id
        await press(app, pilot, "b")
        app.screen.query_one("#choice-note").value = "annotators disagree here"
        await press(app, pilot, "1", "0")  # the category, then the reason dialog: 0 flags without a reason
        flagged = stored_state(demo_db_path, target)
        assert flagged.bias_category == "gold_wrong" and flagged.bias_note == "annotators disagree here"
        assert app.screen.current.id == target and "gold looks wrong" in screen_text(app)
        assert app.screen.window.current.flagged
        await press(app, pilot, "b", "c")
    assert stored_state(demo_db_path, target).bias_category is None


async def test_relabel_suggests_a_label_beside_gold(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        current = app.screen.current
        other = 1 - current.example.gold_label
        await press(app, pilot, "l", str(other))
        assert "suggested relabel" in screen_text(app)
    after = stored_state(demo_db_path, current.id)
    assert after.suggested_label == other
    db = open_db(demo_db_path)
    assert db.execute("SELECT gold_label FROM examples WHERE id = ?", [current.id]).fetchone()[0] == \
        current.example.gold_label
    db.conn.close()


async def test_undo_and_redo_survive_a_restart(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        first = app.screen.current.id
        await press(app, pilot, "a", "r", "enter")
    assert stored_state(demo_db_path, first).status == "accepted"
    async with running(demo_db_path) as (app, pilot):  # a new process would read the same log
        await press(app, pilot, "u", "u")
        assert stored_state(demo_db_path, first).status == "pending"
        assert app.screen.current.id == first  # undo shows the example it changed
        await press(app, pilot, "U")
        assert stored_state(demo_db_path, first).status == "accepted"
        await press(app, pilot, "ctrl+z")
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "ctrl+y")
    assert stored_state(demo_db_path, first).status == "accepted"


async def test_undo_with_nothing_to_undo_says_so(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "u")
        assert any("Nothing to undo" in n.message for n in app._notifications)


async def test_bulk_accept_confirms_the_count_and_undoes_as_one_step(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        members = _ids(demo_db_path, QueueFilter(queue="disagreements"))
        await press(app, pilot, "A")
        assert "15 undecided" in screen_text(app)  # the confirmation shows the count
        await press(app, pilot, "y")
        assert all(stored_state(demo_db_path, i).status == "accepted" for i in members)
        assert stored_state(demo_db_path, 1).status == "pending"  # outside the filter
        await press(app, pilot, "u")
        assert all(stored_state(demo_db_path, i).status == "pending" for i in members)
        await press(app, pilot, "X", "n")
        assert all(stored_state(demo_db_path, i).status == "pending" for i in members)


async def test_bulk_leaves_decided_examples_alone_unless_they_are_included(demo_db_path):
    """An edit is careful work: a bulk accept over its filter takes only the undecided examples; replacing
    earlier decisions is its own, explicit choice."""
    members = _ids(demo_db_path, QueueFilter(queue="disagreements"))
    db = open_db(demo_db_path)
    record(db, "edit", [members[0]], reviewer="pilot", payload={"thought": "My careful edit.", "label": 1})
    record(db, "reject", [members[1]], reviewer="pilot")
    db.conn.close()
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "A")
        text = screen_text(app)
        assert "13 undecided · 2 decided" in text and "replacing 2 decisions" in text
        await press(app, pilot, "y")
        assert [stored_state(demo_db_path, i).status for i in members] == ["edited", "rejected"] + ["accepted"] * 13
        assert stored_state(demo_db_path, members[0]).edited_thought == "My careful edit."
        await press(app, pilot, "u", "A", "a")
        assert all(stored_state(demo_db_path, i).status == "accepted" for i in members)
        await press(app, pilot, "u")
        assert [stored_state(demo_db_path, i).status for i in members] == ["edited", "rejected"] + ["pending"] * 13


async def test_the_app_reopens_where_the_reviewer_left_off(demo_db_path):
    """Each reviewer comes back to their queue and filter, on the example after the last one decided (or on
    the one they were looking at), so the next keys never re-decide what is already decided."""
    members = _ids(demo_db_path, QueueFilter(queue="disagreements", gold=1))
    async with running(demo_db_path) as (app, pilot):
        app.screen.set_filter(QueueFilter(queue="disagreements", gold=1), "filter")
        await settle(app, pilot)
        await press(app, pilot, "a", "r", "enter")
    async with running(demo_db_path) as (app, pilot):
        assert app.screen.filter == QueueFilter(queue="disagreements", gold=1)
        assert app.screen.current.id == members[2]
        await press(app, pilot, "j")
    async with running(demo_db_path) as (app, pilot):  # quit after moving on without deciding
        assert app.screen.current.id == members[3]
    async with running(demo_db_path, start_filter=QueueFilter(queue="all")) as (app, pilot):
        assert app.screen.filter.queue == "all"  # an explicit start wins
    async with running(demo_db_path, settings=Settings(reviewer="someone-else")) as (app, pilot):
        assert app.screen.filter == QueueFilter(queue="disagreements")  # a new reviewer starts as before
        assert app.screen.current.id == _ids(demo_db_path, QueueFilter(queue="disagreements"))[0]


async def test_search_finds_and_filters(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "1", "slash")
        await pilot.press(*"BBCode")
        await press(app, pilot, "enter")
        screen = app.screen
        assert screen.filter == QueueFilter(search="BBCode")
        assert [r.id for r in screen.window.rows] == _ids(demo_db_path, screen.filter)
        assert "[bold]water tomatoes before noon[/bold]" in screen.current.example.premise
        assert screen.probe.latency["search"], "the search was timed"
        await press(app, pilot, "slash", "ctrl+u", "enter")
        assert screen.filter.search == "" and screen.counts["all"] == 45


@pytest.mark.parametrize("queue", QUEUES)
async def test_each_queue_key_shows_that_queue(reviewed_demo, queue):
    path = reviewed_demo
    async with running(path) as (app, pilot):
        key = str((QUEUES.index(queue) + 1) % 10)
        await press(app, pilot, key)
        expected = _ids(path, QueueFilter(queue=queue))
        assert app.screen.filter.queue == queue and expected, f"the fixture leaves {queue} empty"
        assert [r.id for r in app.screen.window.rows] == expected
        assert app.screen.current.id == expected[0] and app.screen.counts[queue] == len(expected)


async def test_queue_cycling_and_an_empty_queue(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "right_square_bracket")
        assert app.screen.filter.queue == "needs_reflection"
        assert app.screen.current is None and "Nothing to show" in screen_text(app)
        await press(app, pilot, "a")
        assert any("No example is shown" in n.message for n in app._notifications)
        await press(app, pilot, "left_square_bracket", "left_square_bracket")
        assert app.screen.filter.queue == "all"


async def test_filter_dialog_sets_gold_and_clears(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "1", "f")
        gold = app.screen.query_one("#filter-gold")
        gold.value = 1
        await press(app, pilot, "ctrl+s")
        assert app.screen.filter == QueueFilter(gold=1)
        assert all(r.gold_label == 1 for r in app.screen.window.rows) and app.screen.window.rows
        await press(app, pilot, "f", "ctrl+x")
        assert app.screen.filter == QueueFilter()


async def test_jump_to_an_id_in_and_out_of_the_queue(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        inside = _ids(demo_db_path, QueueFilter(queue="disagreements"))[5]
        await press(app, pilot, "g", *str(inside), "enter")
        assert app.screen.current.id == inside and app.screen.filter.queue == "disagreements"
        await press(app, pilot, "g", "1", "enter")  # example 1 agrees with gold
        assert app.screen.current.id == 1 and app.screen.filter == QueueFilter()
        await press(app, pilot, "g", "9", "9", "9", "enter")
        assert any("No example with id 999" in n.message for n in app._notifications)


async def test_diff_toggle_and_page_keys(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        assert "Improved thought" in screen_text(app)
        await press(app, pilot, "d")
        assert "Diff: flawed thought → improved thought" in screen_text(app)
        await press(app, pilot, "pagedown")


async def test_reflection_versions_can_be_browsed_and_chosen(demo_db_path):
    from db.generations import add_generation

    db = open_db(demo_db_path)
    example = db.execute("SELECT id, thought_id, gold_label FROM examples WHERE reflection_id IS NOT NULL "
                         "ORDER BY id LIMIT 1").fetchone()
    first = db.execute("SELECT reflection_id FROM examples WHERE id = ?", [example[0]]).fetchone()[0]
    add_generation(db, example_id=example[0], kind="reflection", parent_id=example[1], model="second-model",
                   backend="mistral", thought_process="Step 1: a newer take.", error_analysis="newer",
                   predicted_label=example[2], parse_status="ok")
    db.conn.close()
    async with running(demo_db_path) as (app, pilot):
        assert app.screen.current.id == example[0] and len(app.screen.current.reflections) == 2
        assert "version 2 of 2" in screen_text(app)
        await press(app, pilot, "v")
        assert "second-model" in screen_text(app)
        await press(app, pilot, "up", "enter")
        assert app.screen.current.reflection.id == first and "version 1 of 2 (chosen)" in screen_text(app)
    assert stored_state(demo_db_path, example[0]).chosen_reflection_id == first


async def test_rerun_without_a_model_says_what_to_set(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "R")
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert any("MISTRAL_API_KEY" in m for m in errors), errors


async def test_rerun_against_a_fake_server_adds_a_version(demo_db_path, monkeypatch):
    from fake_mistral import FakeMistral

    from pipeline.settings import Api

    monkeypatch.setenv("MISTRAL_API_KEY", "test-key")
    with FakeMistral() as fake:
        settings = Settings(api=Api(server_url=fake.url, rps=100.0, timeout_s=5.0))
        async with running(demo_db_path, settings=settings) as (app, pilot):
            current = app.screen.current
            await press(app, pilot, "R")
            await settle(app, pilot)
            after = app.screen.current
            assert after.id == current.id and len(after.reflections) == len(current.reflections) + 1
            assert after.reflection.id == after.reflections[-1].id != current.reflection.id


async def test_keymap_from_the_config_remaps_and_help_lists_it(demo_db_path):
    async with running(demo_db_path, settings=Settings(keymap={"accept": "y", "bogus": "z"})) as (app, pilot):
        first = app.screen.current.id
        assert any("bogus" in n.message for n in app._notifications)
        await press(app, pilot, "a")  # no longer accept
        assert stored_state(demo_db_path, first).status == "pending"
        await press(app, pilot, "y")
        assert stored_state(demo_db_path, first).status == "accepted"
        await press(app, pilot, "question_mark")
        text = screen_text(app)
        assert "Keys" in text and "accept" in text and "flag_bias" in text
        assert re.search(r"\by\s+accept and move on\s+accept\b", text), text
        await press(app, pilot, "escape")
        assert app.screen.__class__.__name__ == "ReviewScreen"


async def test_stats_screen_shows_the_thought_model_against_gold(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "a", "S")
        await settle(app, pilot)
        text = screen_text(app)
        assert "accuracy" in text and "Confusion" in text and "Label balance" in text and "Review pace" in text
        assert app.screen.stats.balance["gold"] and app.screen.stats.pace.by_reviewer[0][:2] == ("pilot", 1)
        await press(app, pilot, "escape")
        assert app.screen.__class__.__name__ == "ReviewScreen"


async def test_rows_written_by_another_process_appear(demo_db_path):
    async with running(demo_db_path) as (app, pilot):
        shown = app.screen.current.id
        other = open_db(demo_db_path)  # another writer, as a pipeline run or a second reviewer would be
        from db.reviews import record

        record(other, "reject", [shown], reviewer="someone-else")
        other.conn.close()
        app.screen._check_store()
        await settle(app, pilot)
        assert app.screen.current.state.status == "rejected" and app.screen.counts["rejected"] == 1
        assert "someone-else" in screen_text(app)
        await press(app, pilot, "f5")
        assert app.screen.current.id == shown


async def test_model_errors_queue_shows_the_prediction(demo_db_path):
    from db.generations import add_generation
    from db.runs import start_run

    db = open_db(demo_db_path)
    run = start_run(db, "evaluate", {})
    gold = db.execute("SELECT gold_label FROM examples WHERE id = 3").fetchone()[0]
    add_generation(db, example_id=3, kind="prediction", model="my-adapter", backend="local", run_id=run,
                   thought_process="Step 1: predicted wrongly.", predicted_label=1 - gold, parse_status="ok")
    db.conn.close()
    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "0")
        assert app.screen.current.id == 3
        text = screen_text(app)
        assert "PREDICTION" in text and "my-adapter" in text and "predicted wrongly" in text


@pytest.fixture
def reviewed_demo(demo_db_path):
    """The demo store with something in every queue."""
    from db.generations import add_generation
    from db.reviews import record
    from db.runs import start_run

    db = open_db(demo_db_path)
    dis = [r[0] for r in db.execute("SELECT id FROM examples WHERE thought_label != gold_label ORDER BY id")]
    record(db, "accept", [dis[0]], reviewer="t")
    record(db, "reject", [dis[1]], reviewer="t")
    record(db, "edit", [dis[2]], reviewer="t", payload={"thought": "Step 1: fixed.", "label": 1})
    record(db, "flag_bias", [dis[3]], reviewer="t", payload={"category": "ambiguous"})
    db.execute("UPDATE examples SET reflection_id = NULL WHERE id = ?", [dis[4]])
    db.conn.commit()
    run = start_run(db, "evaluate", {})
    add_generation(db, example_id=2, kind="prediction", model="m", backend="local", run_id=run,
                   predicted_label=1, parse_status="ok")
    db.conn.close()
    return demo_db_path


async def test_generations_and_examples_written_elsewhere_appear(demo_db_path, tmp_path):
    from db.generations import add_generation
    from pipeline.importing import import_file

    async with running(demo_db_path) as (app, pilot):
        await press(app, pilot, "1")
        shown = app.screen.current
        assert shown.id == 1 and not shown.reflections
        other = open_db(demo_db_path)  # a pipeline run in another process
        add_generation(other, example_id=1, kind="reflection", parent_id=shown.thought.id, model="elsewhere",
                       backend="mistral", thought_process="Step 1: written elsewhere.", error_analysis="e",
                       predicted_label=shown.example.gold_label, parse_status="ok")
        late = tmp_path / "late.csv"
        late.write_text("premise,hypothesis,label\nA late premise.,A late hypothesis.,1\n", encoding="utf-8")
        import_file(other, late, dataset="late", split="train")
        other.conn.close()
        app.screen._check_store()
        await settle(app, pilot)
        assert app.screen.current.reflection.model == "elsewhere" and "written elsewhere" in screen_text(app)
        assert app.screen.counts["all"] == 46
        await press(app, pilot, *["j"] * 45)
        assert app.screen.current.example.dataset == "late"
