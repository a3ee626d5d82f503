"""The `?` help screen: every key of the review app as it is bound now (keymap applied)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from nlistral_tui.keys import effective_keys
from nlistral_tui.widgets.queue_list import LEGEND
from pipeline.settings import config_path

TEAM = ("Reviewing as a team: r and b ask why (1-9 a reason from the config file's `reasons`, 0 or enter "
        "none; in r's dialog tab types a comment). C comments on your standing decision of the example (it "
        "records that decision again, with the comment). J settles a conflict between reviewers: the final "
        "decision, marked as an adjudication in the log and shown beside the others. G shows the guidelines.")


class HelpScreen(ModalScreen[None]):
    """A table of key, what it does, and the binding id to remap it with, per section."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss_help", "close", id="help.close"),
    ]

    def __init__(self, sections: Iterable[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        parts: list[Table | Text] = []
        for title, bindings in self.sections:
            table = Table(title=title, title_justify="left", expand=True, box=None, padding=(0, 1))
            table.add_column("key", style="bold", no_wrap=True)
            table.add_column("what it does", ratio=3)
            table.add_column("binding id", style="dim", ratio=2, overflow="fold")
            for binding_id, keys, description in effective_keys(self.app, bindings):
                table.add_row(Text(keys), Text(description), Text(binding_id))
            parts += [table, Text("")]
        parts += [Text("Queue rows: " + LEGEND, style="dim"), Text(""), Text(TEAM, style="dim"), Text(""), Text(
            f"Remap keys in {config_path()} under [keymap], e.g.  accept = \"y\"  (binding id = keys).",
            style="dim")]
        with Vertical(classes="dialog wide-dialog"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(Group(*parts), id="help-text")
            yield Static("esc or ? closes", classes="dialog-hint", markup=False)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
