"""Search hits highlighted in shown text: styles laid over Content at the hits' offsets, never markup parsed."""
from __future__ import annotations

from textual.content import Content

from db.search import hit_spans

HIT_STYLE = "bold reverse $text-warning"


def highlight(content: Content, search_text: str, style: str = HIT_STYLE) -> Content:
    """content with each word of the search styled where it occurs (db.search.hit_spans: whole words, the last
    one as a prefix, case and diacritics ignored). The hits are found in content's plain text, so text that
    looks like markup stays text and control characters (shown as glyphs) never count as words."""
    for start, end in hit_spans(content.plain, search_text):
        content = content.stylize(style, start, end)
    return content
