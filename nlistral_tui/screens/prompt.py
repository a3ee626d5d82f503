"""A one-line input dialog (jump to an id)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class PromptScreen(ModalScreen[str | None]):
    """Ask for one value; enter returns it, esc cancels (None)."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="prompt.cancel")]

    def __init__(self, title: str, placeholder: str = "", input_type: str = "text") -> None:
        super().__init__()
        self.title_text, self.placeholder, self.input_type = title, placeholder, input_type

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content(self.title_text), classes="dialog-title")
            yield Input(placeholder=self.placeholder, type=self.input_type, id="prompt-input")  # type: ignore[arg-type]
            yield Static("enter to go · esc cancels", classes="dialog-hint", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
