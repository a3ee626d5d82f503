"""The export screen (counts before writing, then the file) and the training screen (a run as a subprocess)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from db import open_db
from exports import SftOptions, list_exports, plan
from nlistral_tui.pilot import running, screen_text, settle
from nlistral_tui.screens.train import DIFF_DELAY_S, TrainScreen
from pipeline.dataset_diff import diff_exports

pytestmark = pytest.mark.asyncio
SIZE = (200, 50)

# Stands in for `nlistral train`: the same output contract (the "logging to" line, the JSONL events)
# without torch, so the screen is tested in a second. argv: log path, steps, seconds per step.
FAKE_TRAIN = """
import json, signal, sys, time
log, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print("run 99: logging to " + log, flush=True)
with open(log, "a") as fh:
    for step in range(1, steps + 1):
        if stop:
            print("run 99 cancelled; continue it with --resume", flush=True)
            sys.exit(130)
        fh.write(json.dumps({"event": "log", "step": step, "loss": 2.0 / step}) + "\\n")
        if step % 2 == 0:
            fh.write(json.dumps({"event": "eval", "step": step, "eval_loss": 2.5 / step}) + "\\n")
        fh.flush()
        print(f"step {step} [not markup]", flush=True)
        time.sleep(pause)
print("run 99 completed: adapter in /tmp/x", flush=True)
"""


async def test_export_screen_shows_the_plan_then_writes_it(demo_db_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = open_db(demo_db_path)
    expected = plan(db, SftOptions(ablation="reflected"))
    db.conn.close()
    async with running(demo_db_path, SIZE) as (app, pilot):
        await pilot.press("E")
        await pilot.pause(0.5)
        await settle(app, pilot)
        screen = app.screen
        assert screen.plan is not None and screen.plan.rows == expected.rows > 0
        assert f"{expected.rows:,} rows from" in screen_text(app)
        screen.query_one("#export-ablation").value = "correct-only"
        await pilot.pause(0.5)
        await settle(app, pilot)
        assert screen.plan.rule == "correct-only" and screen.plan.rows < expected.rows
        written = demo_db_path.parent / "demo-sft-correct-only.jsonl"  # beside the store, whatever the cwd
        assert screen.query_one("#export-out").value == str(written)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert "Write" in screen_text(app)
        await pilot.press("y")
        await settle(app, pilot)
        assert written.exists() and len(written.read_text().splitlines()) == screen.plan.rows
        screen.query_one("#export-use-relabels").value = True  # only for the curated rule: refused, said why
        await pilot.pause(0.5)
        await settle(app, pilot)
        assert screen.plan is None and "--use-relabels" in screen.error
        await pilot.press("escape")
    db = open_db(demo_db_path)
    assert [e.rule for e in list_exports(db)] == ["correct-only"]
    db.conn.close()


async def test_the_default_path_is_never_inside_a_python_package(tmp_path, monkeypatch):
    """Run from a repository root, the app's default export path used to land inside the `exports` package."""
    from pipeline.demo import build_demo

    package = tmp_path / "repo" / "exports"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    store = build_demo(package / "demo.db")  # even a store kept inside a package folder
    monkeypatch.chdir(tmp_path / "repo")
    async with running(store, SIZE) as (app, pilot):
        await pilot.press("E")
        await settle(app, pilot)
        out = Path(app.screen.query_one("#export-out").value)
        assert out == tmp_path / "repo" / "demo-sft-reflected.jsonl"
        assert not (out.parent / "__init__.py").exists()
        await pilot.press("escape")


async def _write_from_screen(app, pilot, *keys: str) -> None:
    await pilot.press("ctrl+s")
    await settle(app, pilot)
    await pilot.press(*keys)
    await settle(app, pilot)


async def test_writing_twice_never_silently_replaces_the_first_export(demo_db_path, tmp_path, monkeypatch):
    """Pressing E twice and writing each time used to replace the first export without a word."""
    monkeypatch.chdir(tmp_path)
    first = demo_db_path.parent / "demo-sft-reflected.jsonl"
    async with running(demo_db_path, SIZE) as (app, pilot):
        await pilot.press("E")
        await pilot.pause(0.5)
        await settle(app, pilot)
        assert app.screen.query_one("#export-out").value == str(first)
        assert "a new file" in screen_text(app)
        await _write_from_screen(app, pilot, "y")
        original = first.read_bytes()
        await pilot.press("escape", "E")  # the screen again: a fresh default name
        await pilot.pause(0.5)
        await settle(app, pilot)
        screen = app.screen
        second = demo_db_path.parent / "demo-sft-reflected-2.jsonl"
        assert screen.query_one("#export-out").value == str(second)
        screen.query_one("#export-out").value = str(first)  # the user types the first one's path
        await settle(app, pilot)
        assert "exists (export #1" in screen_text(app)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert "already exists" in screen_text(app) and "overwrite" in screen_text(app)
        await pilot.press("n")  # nothing written
        await settle(app, pilot)
        await _write_from_screen(app, pilot, "f")  # a fresh name instead
        assert second.exists() and first.read_bytes() == original
        await _write_from_screen(app, pilot, "o")  # explicitly over the first
        await pilot.press("escape")
    db = open_db(demo_db_path)
    records = {e.id: e for e in list_exports(db)}
    db.conn.close()
    assert sorted(records) == [1, 2, 3] and records[1].superseded_by == 3 and records[2].superseded_by is None
    assert records[3].path == str(first) and records[3].state() == "ok"


async def _export_id(path: Path, tmp_path: Path) -> int:
    from exports import write_to

    db = open_db(path)
    manifest = write_to(db, SftOptions(), out=tmp_path / "train.jsonl")
    db.conn.close()
    return manifest.export_id


async def _open_training(app, pilot, command) -> TrainScreen:
    """Open the training screen (key T) with a stand-in for `nlistral train`."""
    app.install_screen(TrainScreen(app.store, command=command), name="train")
    await pilot.press("T")
    await settle(app, pilot)
    assert isinstance(app.screen, TrainScreen)
    return app.screen


async def test_training_screen_streams_the_log_and_the_loss(demo_db_path, tmp_path):
    export_id = await _export_id(demo_db_path, tmp_path)
    log = tmp_path / "train_log.jsonl"
    calls = []

    def fake(preset: str, export: int, db_path: Path, out: str) -> list[str]:
        calls.append((preset, export, db_path))
        return [sys.executable, "-c", FAKE_TRAIN, str(log), "6", "0.01"]

    async with running(demo_db_path, SIZE) as (app, pilot):
        screen = await _open_training(app, pilot, fake)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        screen._tail()
        assert calls and calls[0][1] == export_id and calls[0][0] in ("ablation0", "ablation1", "ablation2",
                                                                      "cal_dpo", "dpo", "dr_dpo", "label_only", "smoke")
        assert screen.exit_code == 0 and [s for s, _ in screen.losses["loss"]] == [1, 2, 3, 4, 5, 6]
        assert [s for s, _ in screen.losses["eval_loss"]] == [2, 4, 6]
        text = screen_text(app)
        assert "completed" in text and "step 6 [not markup]" in text


async def test_training_can_be_cancelled(demo_db_path, tmp_path):
    await _export_id(demo_db_path, tmp_path)
    log = tmp_path / "train_log.jsonl"
    fake = lambda *a: [sys.executable, "-c", FAKE_TRAIN, str(log), "500", "0.05"]
    async with running(demo_db_path, SIZE) as (app, pilot):
        screen = await _open_training(app, pilot, fake)
        await pilot.press("ctrl+s")
        for _ in range(100):
            await pilot.pause(0.05)
            if screen.log_path is not None and log.exists() and log.read_text().count("\n") >= 2:
                break
        await pilot.press("ctrl+x")
        await settle(app, pilot)
        assert screen.exit_code == 130 and "cancelled" in screen_text(app)
        steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
        assert max(steps) < 500


async def test_an_export_written_after_the_training_screen_opened_is_offered(demo_db_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with running(demo_db_path, SIZE) as (app, pilot):
        await pilot.press("T")  # opened once (and kept installed) before any export exists
        await settle(app, pilot)
        assert "no exports yet" in screen_text(app)
        await pilot.press("escape", "E")
        await pilot.pause(0.5)
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await pilot.press("y")
        await settle(app, pilot)
        await pilot.press("escape", "T")
        await settle(app, pilot)
        box = app.screen.query_one("#train-exports")
        assert "no exports yet" not in screen_text(app)
        assert box.option_count == 1 and "sft-reflected.jsonl" in str(box.get_option_at_index(0).prompt)


async def test_the_training_screen_shows_what_the_export_changes_since_the_last_training_run(demo_db_path,
                                                                                             tmp_path):
    from db.reviews import record
    from db.runs import finish_run, start_run
    from exports import write_to

    db = open_db(demo_db_path)
    first = write_to(db, SftOptions(ablation="correct-only"), out=tmp_path / "a.jsonl").export_id
    second = write_to(db, SftOptions(ablation="reflected"), out=tmp_path / "b.jsonl").export_id
    run = start_run(db, "train", {"method": "sft", "export": {"path": str(tmp_path / "a.jsonl"), "export_id": first}})
    finish_run(db, run, "completed")
    record(db, "accept", [1], reviewer="ada")  # unrelated to the comparison
    db.conn.close()
    expected = diff_exports(f"export:{first}", f"export:{second}", open_db(demo_db_path)).as_dict()
    async with running(demo_db_path, SIZE) as (app, pilot):
        await _open_training(app, pilot, lambda *a: [sys.executable, "-c", "pass"])
        await pilot.pause(DIFF_DELAY_S + 0.2)  # the comparison starts once the highlight rests
        await settle(app, pilot)
        text = screen_text(app)
        assert f"vs export:{first} (last completed training run)" in text  # the newest export is highlighted
        assert f"+{expected['added']['count']} added" in text and f"−{expected['removed']['count']} removed" in text
        assert expected["added"]["count"] > 0
        await pilot.press("tab", "down")  # the exports list: the first export, the one trained on
        await pilot.pause(DIFF_DELAY_S + 0.2)
        await settle(app, pilot)
        assert "The last completed training run used this export." in screen_text(app)
