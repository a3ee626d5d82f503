"""A small dialog that offers a few choices, each with its own key (relabel, bias category, reason, confirm)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from nlistral_tui.screens.dialog import Dialog
from pipeline.control_chars import shown


class ChoiceScreen(Dialog[Any]):
    """Pick one of (key, label, value) by its key or with the arrows and enter; esc cancels (None).

    With a note field, the result is (value, note); tab moves between the choices and the note.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel", id="choice.cancel")]

    def __init__(self, title: str, choices: Sequence[tuple[str, str, Any]], *, note: str | None = None,
                 hint: str = "", note_placeholder: str = "note (optional)") -> None:
        super().__init__()
        self.title_text, self.choices, self.note, self.hint = title, list(choices), note, hint
        self.note_placeholder = note_placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content(shown(self.title_text)), classes="dialog-title")
            yield OptionList(*(Option(Content.assemble((key, "bold $accent"), f"  {shown(label)}"), id=str(i))
                               for i, (key, label, _value) in enumerate(self.choices)), id="choices")
            if self.note is not None:
                yield Input(self.note, placeholder=self.note_placeholder, id="choice-note")
            hint = self.hint or "press a key, or arrows and enter · esc cancels"
            yield Static(hint, classes="dialog-hint", markup=False)

    def _result(self, index: int) -> Any:
        value = self.choices[index][2]
        if self.note is None:
            return value
        notes = self.query("#choice-note").results(Input)  # none yet when a key typed ahead comes before compose
        return value, next((n.value for n in notes), self.note).strip()

    def take_key(self, event: events.Key) -> bool:
        """Choose by this key, if it is one of the choices' keys (also for a key typed before the dialog showed)."""
        if self.answered:
            return False
        for i, (key, _label, _value) in enumerate(self.choices):
            if event.key == key or event.character == key:
                event.stop()
                self.answer(self._result(i))
                return True
        return False

    def on_key(self, event: events.Key) -> None:
        if not isinstance(self.focused, Input):
            self.take_key(event)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.answer(self._result(int(event.option.id or 0)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        index = self.query_one("#choices", OptionList).highlighted
        self.answer(self._result(index or 0))

    def action_cancel(self) -> None:
        self.answer(None)
