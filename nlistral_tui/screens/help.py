"""The `?` help screen: every key of the review app as it is bound now (keymap applied)."""
from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from nlistral_tui.keys import effective_keys


class HelpScreen(ModalScreen[None]):
    """A table of key, action and description for the review screen and the app."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss_help", "close", id="help.close")]

    def __init__(self, sections: Iterable[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        lines: list[Content] = []
        for title, bindings in self.sections:
            lines.append(Content.styled(title, "bold $accent"))
            for binding_id, keys, description in effective_keys(self.app, bindings):
                lines.append(Content.assemble((f"  {keys:<18}", "bold"), f"{description:<34}",
                                              (binding_id, "$text-muted")))
            lines.append(Content(""))
        lines.append(Content.styled(
            "Remap any key in your config file (nlistral config path: $NLISTRAL_CONFIG or "
            "~/.config/nlistral/config.toml), section [keymap], e.g.  accept = \"y\"  (the right column "
            "names the binding ids).", "$text-muted"))
        with Vertical(classes="dialog wide-dialog"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(Content("\n").join(lines), id="help-text")
            yield Static("esc or ? closes", classes="dialog-hint", markup=False)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
