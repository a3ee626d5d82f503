"""The team's review guidelines (a Markdown file), in a pane over the review screen; links are never opened."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Markdown, Static

from nlistral_tui.messages import GuidelinesRead
from pipeline.control_chars import shown
from pipeline.guidelines import GuidelinesError, read_guidelines


class GuidelinesScreen(ModalScreen[None]):
    """The guide at path, read in a worker; where none is found, where to put one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,G,q", "close", "close", id="guidelines.close"),
    ]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog"):
            yield Label(Content(f"Guidelines · {shown(str(self.path))}"), classes="dialog-title")
            with VerticalScroll(id="guidelines-body"):  # focused: the arrows and page keys scroll it
                yield Markdown(id="guidelines-text", open_links=False)  # a link in the guide is never opened
            yield Static("↑↓ pgup pgdn scroll · esc or G closes", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="guidelines", exit_on_error=False)
    def _read(self) -> None:
        try:
            self.post_message(GuidelinesRead(read_guidelines(self.path), None))
        except GuidelinesError as exc:
            self.post_message(GuidelinesRead(None, str(exc)))

    async def on_guidelines_read(self, msg: GuidelinesRead) -> None:
        if msg.text is None:
            self.query_one("#guidelines-body").display = False
            self.query_one(".dialog-hint", Static).update(Content(f"{shown(msg.error or '')}\n\nesc or G closes"))
            return
        await self.query_one("#guidelines-text", Markdown).update(msg.text)

    def action_close(self) -> None:
        self.dismiss(None)
