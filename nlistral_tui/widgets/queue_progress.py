"""Where the cursor is in the queue and how much of it is decided, with a progress bar."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widget import Widget
from textual.widgets import ProgressBar


class PositionText(Widget):
    """'row 12 of 3,456 · 120 decided', repainted (never re-laid out) as the cursor moves."""

    DEFAULT_CSS = "PositionText { width: 1fr; height: 1; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = "row …"

    def set_text(self, text: str) -> None:
        """Show text (a repaint only when it changed)."""
        if text != self.text:
            self.text = text
            self.refresh()

    def render(self) -> Content:
        return Content.styled(self.text, "$text-muted")


class QueueProgress(Horizontal):
    """The position text and a bar of the decided share of the queue."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bar_state: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield PositionText(id="progress-text")
        yield ProgressBar(show_eta=False, id="progress-bar")

    def on_mount(self) -> None:
        self.query_one("#progress-bar", ProgressBar).visible = False

    def show(self, row: int | None, total: int | None, decided: int | None) -> None:
        """Update; None means not known yet (still counting)."""
        where = "row …" if row is None else f"row {row:,}"
        of = " of …" if total is None else f" of {total:,}"
        done = "" if decided is None else f" · {decided:,} decided"
        self.query_one("#progress-text", PositionText).set_text(where + of + done)
        state = None if total is None or decided is None else (max(total, 1), decided)
        if state != self._bar_state:
            self._bar_state = state
            bar = self.query_one("#progress-bar", ProgressBar)
            bar.visible = state is not None  # hidden, not removed: the layout stays as it is
            if state is not None:
                bar.update(total=state[0], progress=state[1])
