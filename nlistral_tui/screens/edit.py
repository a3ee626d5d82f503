"""The edit dialog: rewrite the improved thought and choose its label; the diff is stored with it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Label, RadioButton, RadioSet, Static, TextArea

from nlistral_tui.screens.choice import ChoiceScreen
from nlistral_tui.screens.dialog import Dialog, ask
from nlistral_tui.text import label_text
from nlistral_tui.widgets.detail_text import edit_gold_note

LABELS = (1, 0)  # the radio buttons' order


@dataclass(frozen=True)
class Edit:
    """What the reviewer wrote: the thought and its label."""

    thought: str
    label: int


class EditScreen(Dialog[Edit]):
    """A text area for the improved thought and a label choice; warns when the label is not gold."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "save", id="edit.save"),
        Binding("escape", "cancel", "cancel", id="edit.cancel"),
    ]

    def __init__(self, example_id: int, thought: str, label: int | None, *, gold: int | None = None,
                 suggested: int | None = None) -> None:
        super().__init__()
        self.example_id, self.thought, self.label = example_id, thought, label
        self.gold, self.suggested = gold, suggested

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog"):
            yield Label(f"Edit the improved thought of #{self.example_id}", classes="dialog-title")
            yield TextArea(self.thought, soft_wrap=True, id="edit-text")
            with RadioSet(id="edit-label"):
                for value in LABELS:
                    yield RadioButton(label_text(value), value=self.label == value, id=f"edit-label-{value}")
            yield Static("", id="edit-warning", markup=False)
            yield Static("ctrl+s save · esc cancel · tab moves to the label", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self._warn()

    @property
    def chosen_label(self) -> int | None:
        """The label chosen now (None while none is)."""
        index = self.query_one("#edit-label", RadioSet).pressed_index
        return LABELS[index] if 0 <= index < len(LABELS) else None

    @property
    def changed(self) -> bool:
        """Whether the text or the label differs from what the dialog opened with."""
        return self.query_one("#edit-text", TextArea).text != self.thought or self.chosen_label != self.label

    @on(RadioSet.Changed)
    def _warn(self) -> None:
        note = edit_gold_note(self.chosen_label, self.gold, self.suggested)
        warning = self.query_one("#edit-warning", Static)
        warning.update(note or "")
        warning.display = note is not None

    def action_save(self) -> None:
        text = self.query_one("#edit-text", TextArea).text.strip()
        label = self.chosen_label
        if not text:
            self.notify("The improved thought is empty; write it, or press esc to cancel.", severity="error")
        elif label is None:
            self.notify("Choose a label: 1 entailment or 0 no-entailment.", severity="error")
        else:
            if note := edit_gold_note(label, self.gold, self.suggested):
                self.notify(f"Saved the edit of #{self.example_id}, but its {note}.", severity="warning",
                            timeout=10, markup=False)
            self.answer(Edit(text, label))

    def action_cancel(self) -> None:
        if not self.changed:
            self.answer(None)
            return
        ask(self.app,
            ChoiceScreen(f"Discard your changes to #{self.example_id}?",
                         [("k", "keep editing", False), ("d", "discard the changes", True)],
                         hint="k or esc keeps editing · d discards"),
            self._discard_chosen)

    def _discard_chosen(self, discard: bool | None) -> None:
        if discard:
            self.answer(None)
