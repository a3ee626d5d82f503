"""A one-line input dialog (jump to an id, search)."""
from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Input, Label, Static

from nlistral_tui.screens.dialog import Dialog


class PromptScreen(Dialog[str]):
    """Ask for one value; enter returns it (stripped, possibly empty), esc cancels (None)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel", id="prompt.cancel")]

    def __init__(self, title: str, placeholder: str = "", input_type: str = "text", value: str = "",
                 hint: str = "enter to go · esc cancels") -> None:
        super().__init__()
        self.title_text, self.placeholder, self.input_type = title, placeholder, input_type
        self.value, self.hint = value, hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content(self.title_text), classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, type=self.input_type,  # type: ignore[arg-type]
                        id="prompt-input")
            yield Static(self.hint, classes="dialog-hint", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.answer(event.value.strip())

    def action_cancel(self) -> None:
        self.answer(None)
