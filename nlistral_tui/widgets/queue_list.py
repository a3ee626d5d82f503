"""The queue pane's rows: a window of a few hundred rows around the cursor, never the whole queue.

Each row is rendered to a strip once and kept; moving the cursor repaints only the two rows whose
highlight changed (or the whole list when it scrolls).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events
from textual.content import Content
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.visual import Visual
from textual.widget import Widget

from db.queues import QueueRow
from nlistral_tui.text import one_line

STATUS_GLYPH = {"pending": "·", "accepted": "✓", "rejected": "✗", "edited": "✎"}
STATUS_STYLE = {"pending": "$text-muted", "accepted": "$text-success", "rejected": "$text-error",
                "edited": "$text-warning"}
LEGEND = ("· pending ✓ accepted ✗ rejected ✎ edited  * journaled, not yet in the store  ≠ thought ≠ gold  "
          "R reflection  ⚑ bias flag  ! parse failed")
MAX_CACHED = 2000


def _label(value: int | None) -> str:
    return "?" if value is None else str(value)


def row_content(row: QueueRow, width: int, selected: bool, id_width: int = 7) -> Content:
    """One row: status, id, gold/thought labels, markers, the start of the hypothesis."""
    marks = ("≠" if row.thought_label is not None and row.gold_label is not None
             and row.thought_label != row.gold_label else " ")
    marks += "R" if row.has_reflection else " "
    marks += "⚑" if row.flagged else " "
    marks += "!" if row.parse_failed else " "
    head = f" {row.id:>{id_width}} g{_label(row.gold_label)} t{_label(row.thought_label)} {marks} "
    line = Content.assemble(
        (STATUS_GLYPH.get(row.status, "?"), STATUS_STYLE.get(row.status, "")),
        ("*", "$text-warning") if row.unsaved else "", head[1:] if row.unsaved else head,
        one_line(row.snippet, max(0, width - len(head) - 1)),
    )
    return line.stylize("reverse") if selected else line


class QueueList(Widget):
    """Rows of the current window; the cursor row is highlighted and kept in view."""

    @dataclass
    class RowClicked(Message):
        """The user clicked the row at this window index."""

        index: int

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: list[QueueRow] = []
        self.cursor = -1
        self._top = 0
        self._strips: dict[tuple[QueueRow, bool, int, int], Strip] = {}

    def show(self, rows: list[QueueRow], cursor: int, reset: bool = False) -> None:
        """Show these rows with the cursor on index cursor (reset: a new window, recentre the view)."""
        old_rows, old_cursor, old_top = self.rows, self.cursor, self._top
        if reset:
            self._top = max(0, cursor - self.size.height // 3)
        self.rows, self.cursor = rows, cursor
        top = self._visible_top()
        if reset or rows is not old_rows or top != old_top:
            self.refresh()
            return
        for index in {old_cursor, cursor}:
            if 0 <= index - top < self.size.height:
                self.refresh(Region(0, index - top, self.size.width, 1))

    def shift(self, removed_front: int) -> None:
        """The window dropped removed_front rows at its start (keep the view where it was)."""
        self._top = max(0, self._top - removed_front)

    def _visible_top(self) -> int:
        """The first row in view; the view moves by nearly a page when the cursor leaves it, so most
        moves repaint two rows rather than the whole list."""
        height = max(1, self.size.height)
        margin = min(2, height // 4)
        if self.cursor < self._top + margin:
            self._top = max(0, self.cursor - height + margin + 1)
        elif self.cursor >= self._top + height - margin:
            self._top = self.cursor - margin
        self._top = max(0, min(self._top, max(0, len(self.rows) - height)))
        return self._top

    def _row_strip(self, row: QueueRow, selected: bool, width: int, id_width: int) -> Strip:
        key = (row, selected, width, id_width)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > MAX_CACHED:
                self._strips.clear()
            content = row_content(row, width, selected, id_width)
            strip = self._strips[key] = Visual.to_strips(self, content, width, 1, self.visual_style, pad=True)[0]
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if not self.rows:
            if y == 0:
                return Visual.to_strips(self, Content.styled(" (no examples in this queue)", "$text-muted"),
                                        width, 1, self.visual_style, pad=True)[0]
            return Strip.blank(width, self.visual_style.rich_style)
        index = self._visible_top() + y
        if index >= len(self.rows):
            return Strip.blank(width, self.visual_style.rich_style)
        id_width = len(str(self.rows[-1].id))
        return self._row_strip(self.rows[index], index == self.cursor, width, id_width)

    def on_click(self, event: events.Click) -> None:
        index = self._top + event.y
        if 0 <= index < len(self.rows):
            self.post_message(self.RowClicked(index))
