"""Search hits highlighted in model and dataset text: literal, case and diacritics folded, the last word a prefix."""
from __future__ import annotations

import pytest
from textual.content import Content

from db.search import hit_spans
from nlistral_tui.highlight import HIT_STYLE, highlight
from nlistral_tui.text import literal


def _styled(content: Content) -> list[str]:
    return [content.plain[s.start:s.end] for s in content.spans if str(s.style) == HIT_STYLE]


def test_hits_are_whole_words_and_the_last_word_a_prefix():
    text = "A man plays the guitar; guitars and a Guitarist. The manager is not a man-made thing."
    assert [text[a:b] for a, b in hit_spans(text, "man guit")] == [
        "man", "guitar", "guitars", "Guitarist", "man"]  # "manager" is not the whole word "man"
    assert hit_spans(text, "  ") == [] and hit_spans(text, "!!") == []


def test_case_and_diacritics_fold_as_the_index_folds_them():
    text = "Le Café de Zoë; CAFE au lait, Zoëlle"
    assert [text[a:b] for a, b in hit_spans(text, "cafe zoe")] == ["Café", "Zoë", "CAFE", "Zoëlle"]
    assert [text[a:b] for a, b in hit_spans(text, "zoe caf")] == ["Café", "Zoë", "CAFE"]  # Zoë whole, caf a prefix


def test_markup_stays_text_and_control_characters_are_not_words():
    shown = literal("[bold]water[/bold] the\x07plants")
    out = highlight(shown, "bold plants")
    assert out.plain == shown.plain  # nothing parsed, nothing dropped
    assert _styled(out) == ["bold", "bold", "plants"]
    assert "[bold]" in out.plain and "[/bold]" in out.plain
    assert highlight(shown, "") is shown


def test_highlight_keeps_the_existing_styles():
    content = Content.assemble(("PREMISE ", "bold"), literal("a dog runs"))
    out = highlight(content, "dog")
    assert _styled(out) == ["dog"] and any(str(s.style) == "bold" for s in out.spans)


@pytest.mark.asyncio
async def test_the_detail_pane_highlights_the_search_hits(demo_db_path):
    from nlistral_tui.pilot import press, running

    async with running(demo_db_path, (120, 40)) as (app, pilot):
        await press(app, pilot, "slash", *"bakery", "enter")
        left = app.screen.query_one("#detail-left").content
        hits = _styled(left)
        assert hits and all(h.lower() == "bakery" for h in hits)
