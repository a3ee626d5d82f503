"""The detail pane: the example under the cursor, side by side when wide and stacked when narrow (layout in
app.tcss). It is handed plain ExampleDetails (the screen's feed reads them) and keeps their wrapped text."""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.strip import Strip

from db.detail import ExampleDetail
from nlistral_tui.highlight import highlight
from nlistral_tui.widgets.detail_text import left_column, right_column
from nlistral_tui.widgets.text_pager import TextPager

CACHE_SIZE = 16
LOADING = Content.styled("Loading…", "$text-muted")
EMPTY_STORE = Content.styled(
    "This database holds no examples yet.\n\nImport pairs (and the original pipeline's thoughts and "
    "reflections) with `nlistral import FILE` (see `nlistral import --help`), generate thoughts with "
    "`nlistral generate`, or look around a ready-made one with `nlistral demo`.", "$text-muted")
EMPTY = Content.styled("Nothing to show: this queue is empty under the current search and filters.\n"
                       "Press c to clear them, 1-0 or [ ] for another queue, f to filter.", "$text-muted")


@dataclass(frozen=True)
class _Rendered:
    detail: ExampleDetail
    left: Content
    left_strips: list[Strip]
    right: Content
    right_strips: list[Strip]


class DetailPane(Horizontal, can_focus=False):
    """Two pagers of literal text; when narrow (right pager hidden by CSS) the left one holds both."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.detail: ExampleDetail | None = None
        self.reviewer: str | None = None  # who is reviewing: shown on the header line
        self.search = ""  # the queue's search text: its hits are highlighted
        self.show_diff = False
        self.colours = False  # the attributed answer's thought coloured by attribution (key i)
        self.shown_at = time.monotonic()  # when the shown example was first shown
        self._shown = self._empty_store = False
        self._cache: OrderedDict[tuple[Any, ...], _Rendered] = OrderedDict()

    def compose(self) -> ComposeResult:
        yield TextPager(id="detail-left")
        yield TextPager(id="detail-right")

    @property
    def stacked(self) -> bool:
        """True when the layout shows one column (the right pager is hidden)."""
        return not self.query_one("#detail-right", TextPager).display

    def _rendered(self, detail: ExampleDetail, show_diff: bool) -> _Rendered:
        left_pager, right_pager = self.query_one("#detail-left", TextPager), self.query_one("#detail-right", TextPager)
        stacked = self.stacked
        key = (detail.id, show_diff, stacked, left_pager.text_width, right_pager.text_width, self.search,
               self.colours)
        hit = self._cache.get(key)
        if hit is not None and (hit.detail is detail or hit.detail == detail):
            self._cache.move_to_end(key)
            return hit
        left, right = self._columns(detail, show_diff, None if stacked else right_pager.text_width)
        if stacked:
            left, right = Content.assemble(left, "\n\n", right), Content("")
        rendered = _Rendered(detail, left, left_pager.prepare(left), right,
                             [] if stacked else right_pager.prepare(right))
        self._cache[key] = rendered
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return rendered

    def _columns(self, detail: ExampleDetail, show_diff: bool, width: int | None = None) -> tuple[Content, Content]:
        """The two columns of an example, with the hits of the queue's search text highlighted; width: the right
        column's (the two reflections sit side by side when it is wide enough; None: one below the other)."""
        left, right = left_column(detail, self.reviewer), right_column(detail, show_diff, width, self.colours)
        return (highlight(left, self.search), highlight(right, self.search)) if self.search else (left, right)

    def prepare(self, detail: ExampleDetail) -> None:
        """Wrap an example ahead of time, so that showing it later is only a repaint."""
        if self.size.width:
            self._rendered(detail, self.show_diff)

    def show(self, detail: ExampleDetail | None, empty_store: bool = False) -> None:
        """Render an example (None: an empty queue, or an empty store)."""
        if detail is None or self.detail is None or detail.id != self.detail.id:
            self.shown_at = time.monotonic()
        self.detail, self._shown, self._empty_store = detail, True, empty_store
        left_pager, right_pager = self.query_one("#detail-left", TextPager), self.query_one("#detail-right", TextPager)
        if detail is None:
            left_pager.show(EMPTY_STORE if empty_store else EMPTY)
            right_pager.show(Content(""))
            return
        if not self.size.width:
            left, right = self._columns(detail, self.show_diff)
            left_pager.show(left)
            right_pager.show(right)
            return
        r = self._rendered(detail, self.show_diff)
        left_pager.show(r.left, r.left_strips)
        right_pager.show(r.right, r.right_strips)

    def page(self, down: bool) -> None:
        """Scroll the text by a page (both columns together)."""
        for pager in self.query(TextPager):
            pager.page(down)

    def toggle_diff(self) -> None:
        """Show the flawed thought against the improved one (on an edited example: the edit), or stop."""
        self.show_diff = not self.show_diff
        if self.detail is not None:
            self.show(self.detail)

    def toggle_colours(self) -> None:
        """Colour the attributed answer's thought by attribution, or stop."""
        self.colours = not self.colours
        if self.detail is not None:
            self.show(self.detail)

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        if self._shown:
            self.call_after_refresh(self.show, self.detail, self._empty_store)
        else:
            self.query_one("#detail-left", TextPager).show(LOADING)
