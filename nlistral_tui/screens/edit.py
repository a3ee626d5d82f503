"""The edit dialog: rewrite the improved thought and choose its label; the diff is stored with it."""
from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, RadioButton, RadioSet, Static, TextArea


@dataclass(frozen=True)
class Edit:
    """What the reviewer wrote: the thought and its label."""

    thought: str
    label: int


class EditScreen(ModalScreen[Edit | None]):
    """A text area for the improved thought and a label choice."""

    BINDINGS = [
        Binding("ctrl+s", "save", "save", id="edit.save"),
        Binding("escape", "cancel", "cancel", id="edit.cancel"),
    ]

    def __init__(self, example_id: int, thought: str, label: int | None) -> None:
        super().__init__()
        self.example_id, self.thought, self.label = example_id, thought, label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog"):
            yield Label(f"Edit the improved thought of #{self.example_id}", classes="dialog-title")
            yield TextArea(self.thought, soft_wrap=True, id="edit-text")
            with RadioSet(id="edit-label"):
                yield RadioButton("1 entailment", value=self.label == 1)
                yield RadioButton("0 no-entailment", value=self.label == 0)
            yield Static("ctrl+s save · esc cancel · tab moves to the label", classes="dialog-hint", markup=False)

    def action_save(self) -> None:
        text = self.query_one("#edit-text", TextArea).text.strip()
        index = self.query_one("#edit-label", RadioSet).pressed_index
        if not text:
            self.notify("The improved thought is empty; write it, or press esc to cancel.", severity="error")
        elif index < 0:
            self.notify("Choose a label: 1 entailment or 0 no-entailment.", severity="error")
        else:
            self.dismiss(Edit(text, 1 if index == 0 else 0))

    def action_cancel(self) -> None:
        self.dismiss(None)
