"""Narrow and wide layouts, and model / dataset text shown literally (markup, escape sequences, bidi)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from db import open_db
from nlistral_tui.pilot import running, screen_text, settle
from nlistral_tui.text import literal, one_line, visible
from nlistral_tui.widgets.text_pager import TextPager
from pipeline.importing import import_file

WIDE, NARROW = (200, 50), (80, 24)
ESC_PREMISE = "The log line read \x1b[31mERROR\x1b[0m and then \x1b]8;;http://evil.example\x07click\x1b]8;;\x07 ended."
BIDI_HYPOTHESIS = "The file is named \u202egnp.exe and rang a bell\x07."
ESC_THOUGHT = "Step 1: The premise shows \x1b[2J a clear-screen code. Therefore the hypothesis is not entailed."


@pytest.fixture
def escape_db(tmp_path: Path) -> tuple[Path, int]:
    """A store with one example whose pair and thought hold real ESC, BEL and bidi-override characters."""
    pairs, thoughts = tmp_path / "esc.csv", tmp_path / "esc_thoughts.jsonl"
    with pairs.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "premise", "hypothesis", "label"])
        writer.writerow([0, ESC_PREMISE, BIDI_HYPOTHESIS, 0])
    thoughts.write_text(json.dumps({"id": 0, "premise": ESC_PREMISE, "hypothesis": BIDI_HYPOTHESIS,
                                    "thought_process": ESC_THOUGHT, "predicted_label": 1, "true_label": 0}) + "\n",
                        encoding="utf-8")
    path = tmp_path / "esc.db"
    db = open_db(path)
    import_file(db, pairs, dataset="esc", split="train", fmt="csv")
    import_file(db, thoughts, dataset="esc", split="train", fmt="seed-thoughts", model="m\x1b[5m")
    example_id = db.execute("SELECT id FROM examples").fetchone()[0]
    db.conn.close()
    return path, example_id


def test_literal_keeps_markup_and_shows_control_characters():
    assert literal("[bold]x[/bold] [link=https://a.b]c[/link]").plain == "[bold]x[/bold] [link=https://a.b]c[/link]"
    shown = literal("a\x1b[31mb\x07\u202ec\td\ne").plain
    assert shown == "a␛[31mb␇<U+202E>c\td\ne" and "\x1b" not in shown
    assert visible("\x00") == "␀" and visible("\x7f") == "␡" and visible("\x9b") == "\\x9b"
    assert one_line("a\nb\x1b", 10) == "a b␛" and one_line("x" * 20, 5) == "xxxx…"
    assert literal(None).plain == "" and literal("plain").plain == "plain"


@pytest.mark.asyncio
async def test_wide_layout_is_side_by_side(demo_db_path):
    async with running(demo_db_path, WIDE) as (app, _pilot):
        screen = app.screen
        assert screen.has_class("-wide")
        left, right = screen.query_one("#detail-left", TextPager), screen.query_one("#detail-right", TextPager)
        assert left.display and right.display and left.region.y == right.region.y and left.region.x < right.region.x
        assert screen.query_one("#queue-bar").display and not screen.query_one("#queue-line").display
        assert "PREMISE" in left.content.plain and "REFLECTION" in right.content.plain


@pytest.mark.asyncio
async def test_narrow_layout_is_stacked_and_follows_a_resize(demo_db_path):
    async with running(demo_db_path, NARROW) as (app, pilot):
        screen = app.screen
        assert screen.has_class("-narrow")
        left, right = screen.query_one("#detail-left", TextPager), screen.query_one("#detail-right", TextPager)
        assert not right.display and screen.query_one("#queue-line").display
        assert not screen.query_one("#queue-bar").display
        stacked = left.content.plain
        assert stacked.index("PREMISE") < stacked.index("THOUGHT") < stacked.index("REFLECTION") < stacked.index("REVIEW")
        text = screen_text(app)
        assert "disagreements" in text and "row 1 of 15" in text and "PREMISE" in text
        assert len(text.splitlines()) == 24 and max(len(line) for line in text.splitlines()) <= 80
        # Long text scrolls: page down shows a later part of the stacked example.
        before = left.offset_y
        await pilot.press("pagedown")
        await settle(app, pilot)
        assert left.offset_y > before
        await pilot.resize_terminal(*WIDE)
        await settle(app, pilot)
        await pilot.pause(0.1)
        assert screen.has_class("-wide") and right.display and "REFLECTION" in right.content.plain
        assert "REFLECTION" not in left.content.plain


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [WIDE, NARROW])
async def test_markup_like_dataset_and_model_text_appears_as_typed(demo_db_path, size):
    async with running(demo_db_path, size) as (app, pilot):
        await pilot.press("1", "slash", *"BBCode", "enter")
        await settle(app, pilot)
        screen = app.screen
        assert screen.current is not None and "[bold]" in screen.current.example.premise
        shown = screen.query_one("#detail-left", TextPager).content.plain
        assert "[bold]water tomatoes before noon[/bold]" in shown
        assert "[link=https://example.com]click[/link]" in shown
        assert r"\x1b[31m" in shown  # the thought's typed backslash sequence, kept as typed
        pager = screen.query_one("#detail-left", TextPager)
        # What is painted, unwrapped (each line is a margin, the text, and the scroll bar's track).
        painted = " ".join(" ".join(strip.text[1:-1].split()) for strip in pager.strips)
        assert "[bold]water tomatoes before noon[/bold]" in painted
        assert "[link=https://example.com]click[/link]" in painted.replace(" ", "") or \
            "[link=https://example.com]click[/link]" in painted
        text = screen_text(app)
        assert "[bold]" in text and "[/bold]" in text


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [WIDE, NARROW])
async def test_real_escape_sequences_are_shown_never_sent(escape_db, size):
    path, example_id = escape_db
    async with running(path, size) as (app, _pilot):
        assert app.screen.current.id == example_id
        text = screen_text(app)
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "␛[31mERROR␛[0m" in text and "<U+202E>gnp.exe" in text
        every = app.screen.query_one("#detail-left", TextPager).content.plain
        assert "␛[2J a clear-screen code" in every + app.screen.query_one("#detail-right", TextPager).content.plain
        assert "m␛[5m" in every  # even a model name is data
        segments = [seg.text for strip in app.screen._compositor.render_strips() for seg in strip]
        assert not any("\x1b" in t or "\x07" in t for t in segments)


HOSTILE_DATASET = "[bold]rte\x1b]0;pwned\x07"
HOSTILE_MODEL = "[i]m\x1b[5m"


@pytest.fixture
def hostile_names_db(tmp_path: Path) -> Path:
    """A store whose dataset and thought model names hold markup and real escape sequences."""
    pairs, thoughts = tmp_path / "pairs.csv", tmp_path / "pairs_thoughts.jsonl"
    rows = [(i, f"Premise {i} about a harbour.", f"Hypothesis {i}.", i % 2) for i in range(4)]
    with pairs.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("id", "premise", "hypothesis", "label"), *rows])
    thoughts.write_text("".join(json.dumps({"id": i, "premise": p, "hypothesis": h, "thought_process": "Step 1: x.",
                                            "predicted_label": 1 - g, "true_label": g}) + "\n"
                                for i, p, h, g in rows), encoding="utf-8")
    path = tmp_path / "hostile.db"
    db = open_db(path)
    import_file(db, pairs, dataset=HOSTILE_DATASET, split="dev", fmt="csv")
    import_file(db, thoughts, dataset=HOSTILE_DATASET, split="dev", fmt="seed-thoughts", model=HOSTILE_MODEL)
    db.conn.close()
    return path


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [WIDE, NARROW, (160, 45)], ids=["wide", "narrow", "160x45"])
async def test_the_active_filter_is_shown_in_both_layouts_as_typed(hostile_names_db, size):
    from textual.widgets import Select

    async with running(hostile_names_db, size) as (app, pilot):
        screen = app.screen
        assert "filter:" not in screen_text(app)
        await pilot.press("f")
        await settle(app, pilot)
        for name, value in (("dataset", HOSTILE_DATASET), ("split", "dev"), ("gold", 1), ("model", HOSTILE_MODEL)):
            app.screen.query_one(f"#filter-{name}", Select).value = value
        await pilot.press("ctrl+s", "slash", *"harbour", "enter")
        await settle(app, pilot)
        assert screen.filter.dataset == HOSTILE_DATASET and screen.filter.model == HOSTILE_MODEL
        assert screen.current is not None  # the filter selects the labelled-1 examples
        text = screen_text(app)
        lines, shown = text.splitlines(), []
        for widget in ("#queue-bar", "#queue-line", "#search-line"):  # what is painted there, row by row
            if screen.query_one(widget).display:
                r = screen.query_one(widget).region
                shown += [line[r.x:r.right] for line in lines[r.y:r.bottom]]
        flat = " ".join(" ".join(shown).split())
        assert "filter: [bold]rte␛]0;pwned␇/dev · gold 1 · model [i]m␛[5m" in flat
        assert "search: harbour" in flat
        segments = [seg.text for strip in screen._compositor.render_strips() for seg in strip]
        assert not any("\x1b" in t or "\x07" in t for t in segments)
        assert max(len(line) for line in text.splitlines()) <= size[0]
        await pilot.press("c")
        await settle(app, pilot)
        assert "filter:" not in screen_text(app) and "search: harbour" not in screen_text(app)


@pytest.mark.asyncio
async def test_an_empty_database_says_how_to_fill_it(db_path):
    async with running(db_path, NARROW) as (app, pilot):
        text = screen_text(app)
        assert app.screen.current is None and "holds no examples yet" in text and "nlistral import" in text
        await pilot.press("j", "a")
        await settle(app, pilot)
        assert app.screen.current is None  # nothing to move to or decide on, and no crash
