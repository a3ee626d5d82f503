"""The search line of the queue pane: shows the search, and takes the typing while `/` is active.

It never takes focus (so opening it changes neither the layout nor the footer): the review screen
hands it the keys while it is open.
"""
from __future__ import annotations

from typing import Any

from textual import events
from textual.content import Content
from textual.widget import Widget

from nlistral_tui.text import one_line


class SearchLine(Widget):
    """One line: the current search text, or what is being typed."""

    DEFAULT_CSS = "SearchLine { height: 1; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.applied = ""  # the search of the current filter
        self.typing: str | None = None  # the text being typed, while open

    @property
    def is_open(self) -> bool:
        """Whether keys are going to the search line."""
        return self.typing is not None

    def open(self, text: str) -> None:
        """Start typing, from text."""
        self.typing = text
        self.refresh()

    def close(self) -> None:
        """Stop typing (the applied search stays)."""
        self.typing = None
        self.refresh()

    def show(self, applied: str) -> None:
        """Show the search the current filter applies."""
        if applied != self.applied:
            self.applied = applied
            self.refresh()

    def handle(self, event: events.Key) -> str | None:
        """Take one key while open; returns the text to search for on enter, else None."""
        assert self.typing is not None
        if event.key == "enter":
            text, self.typing = self.typing.strip(), None
            self.refresh()
            return text
        if event.key == "escape":
            self.close()
        elif event.key == "backspace":
            self.typing = self.typing[:-1]
        elif event.key == "ctrl+u":
            self.typing = ""
        elif event.is_printable and event.character:
            self.typing += event.character
        self.refresh()
        return None

    def render(self) -> Content:
        width = max(10, self.size.width)
        if self.typing is not None:
            shown = one_line(self.typing, width - 30)
            return Content.assemble(("search: ", "bold $accent"), shown, ("▏", "$accent"),
                                    ("  enter searches · esc cancels", "$text-muted"))
        if self.applied:
            return Content.assemble(("search: ", "bold"), one_line(self.applied, width - 26),
                                    ("  / edits · c clears", "$text-muted"))
        return Content.styled("/ search pairs and thoughts", "$text-muted")
