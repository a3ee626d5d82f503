"""The named views dialog: save the queue and filter under a name, or reopen one of the reviewer's views."""
from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from nlistral_tui.screens.dialog import Dialog
from nlistral_tui.text import literal


class ViewsScreen(Dialog[tuple[str, str]]):
    """Type a name and enter to save the current view under it; or pick a saved view (arrows, enter) to open it.

    The result is ("save", name) or ("open", name); esc cancels (None).
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel", id="views.cancel")]

    def __init__(self, names: list[str], current: str) -> None:
        """names: the reviewer's views, most recent first; current: what the current view shows (its description)."""
        super().__init__()
        self.names, self.current = names, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Named views", classes="dialog-title")
            yield Static(Content.assemble("save ", literal(self.current), " as:"), id="views-current")
            yield Input(placeholder="a name, e.g. rte conflicts", id="views-name")
            if self.names:
                yield OptionList(*(Option(literal(name), id=str(i)) for i, name in enumerate(self.names)),
                                 id="views-list")
            else:
                yield Static("No saved views yet.", classes="dialog-hint", markup=False)
            yield Static("enter saves · tab, arrows and enter open a view · esc cancels", classes="dialog-hint",
                         markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.answer(("save", event.value))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.answer(("open", self.names[int(event.option.id or 0)]))

    def action_cancel(self) -> None:
        self.answer(None)
