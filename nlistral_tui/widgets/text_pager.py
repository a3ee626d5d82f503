"""A fixed-size view of long text that scrolls itself: showing new text repaints it without a re-layout.

Text is wrapped into strips once (possibly ahead of time, see `prepare`) and each line is served from
them, so moving to the next example costs one repaint of this widget, not a layout of the screen.
"""
from __future__ import annotations

from typing import Any, ClassVar, Self

from rich.segment import Segment
from textual import events
from textual.content import Content
from textual.geometry import Region
from textual.strip import Strip
from textual.visual import Visual
from textual.widget import Widget

THUMB, TRACK = "┃", "│"


class TextPager(Widget, can_focus=False):
    """Literal Content wrapped to the widget's width, with its own scroll offset and a thin scroll bar.

    The bar's track doubles as the rule between the columns.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"text-pager--thumb", "text-pager--track"}
    DEFAULT_CSS = """
    TextPager {
        width: 1fr;
        height: 1fr;
    }
    TextPager > .text-pager--thumb {
        color: $accent;
    }
    TextPager > .text-pager--track {
        color: $panel-lighten-2;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.content = Content("")
        self.strips: list[Strip] = []
        self._wrapped_at = -1
        self.offset_y = 0
        self._segment_key: object = None
        self._segment_cache: tuple[Segment, Segment, Segment] | None = None
        self._pager_size = (0, 0)
        self._thumb_rows: range | None = None

    @property
    def text_width(self) -> int:
        """Cells available for text (a margin column on the left, the scroll bar on the right)."""
        if not self._pager_size[0]:
            self._pager_size = (self.size.width, self.size.height)
        return max(1, self._pager_size[0] - 2)

    def prepare(self, content: Content, width: int | None = None) -> list[Strip]:
        """Lay content out as finished lines (margin, wrapped text, bar track) without showing it."""
        width = width or self.text_width
        margin, _thumb, track = self._segments()
        return [Strip([margin, *line, track], width + 2)
                for line in Visual.to_strips(self, content, width, None, self.visual_style, pad=True)]

    def show(self, content: Content, strips: list[Strip] | None = None) -> None:
        """Show content from its top; strips, when given, are its wrapping at the current width."""
        self.content, self.offset_y = content, 0
        if strips is not None and self._pager_size[0]:
            self.strips, self._wrapped_at = strips, self.text_width
        else:
            self._wrapped_at = -1
        self.refresh()

    def scroll_lines(self, lines: int) -> None:
        """Scroll by a number of lines (negative: up), staying within the text."""
        self._ensure_wrapped()
        top = max(0, min(self.offset_y + lines, len(self.strips) - self._pager_size[1]))
        if top != self.offset_y:
            self.offset_y = top
            self.refresh()

    def page(self, down: bool) -> None:
        """Scroll by a page less two lines."""
        step = max(1, self._pager_size[1] - 2)
        self.scroll_lines(step if down else -step)

    def _ensure_wrapped(self) -> None:
        if self._wrapped_at != self.text_width and self._pager_size[0]:
            self.strips, self._wrapped_at = self.prepare(self.content), self.text_width

    def on_resize(self, event: events.Resize) -> None:
        self._pager_size = (event.size.width, event.size.height)
        self._wrapped_at = -1
        self.refresh()

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Self:
        self._thumb_rows = None
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def render_line(self, y: int) -> Strip:
        self._ensure_wrapped()
        margin, thumb_seg, track_seg = self._segments()
        if self._thumb_rows is None:
            height, total = self._pager_size[1], len(self.strips)
            if total > height:
                thumb = max(1, height * height // total)
                start = (height - thumb) * self.offset_y // max(1, total - height)
                self._thumb_rows = range(start, start + thumb)
            else:
                self._thumb_rows = range(0)
        index = self.offset_y + y
        width = self.text_width + 2
        if index < len(self.strips):
            line = self.strips[index]
        else:
            line = Strip([Segment(" " * (width - 1), margin.style), track_seg], width)
        if y in self._thumb_rows:
            return Strip([*line.crop(0, width - 1), thumb_seg], width)
        return line

    def _segments(self) -> tuple[Segment, Segment, Segment]:
        """The margin, thumb and track segments (styles looked up once per style change)."""
        key = self.styles._cache_key
        if self._segment_key != key:
            self._segment_key = key
            self._segment_cache = (
                Segment(" ", self.visual_style.rich_style),
                Segment(THUMB, self.get_component_rich_style("text-pager--thumb")),
                Segment(TRACK, self.get_component_rich_style("text-pager--track")),
            )
        assert self._segment_cache is not None  # set with the key above
        return self._segment_cache

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_lines(3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_lines(-3)
