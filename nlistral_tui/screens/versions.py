"""Browse the reflection versions of the current thought and choose the one to keep."""
from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from db.detail import ExampleDetail
from nlistral_tui.screens.dialog import Dialog
from nlistral_tui.text import label_text, literal


class VersionsScreen(Dialog[int]):
    """A list of versions (newest last) beside the highlighted one's text; enter chooses it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "close", id="versions.cancel")]

    def __init__(self, detail: ExampleDetail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        d = self.detail
        with Vertical(classes="dialog wide-dialog"):
            yield Label(f"Reflection versions of #{d.id} (enter chooses, esc closes)", classes="dialog-title")
            with Horizontal(id="versions-body"):
                options = []
                for i, g in enumerate(d.reflections, 1):
                    mark = "●" if d.reflection and g.id == d.reflection.id else " "
                    options.append(Option(Content.assemble(
                        f"{mark} v{i}  ", literal(g.model, "$text-muted"),
                        f"  label {g.predicted_label if g.predicted_label is not None else '?'}  ",
                        (g.created_at[:16].replace("T", " "), "$text-muted")), id=str(g.id)))
                yield OptionList(*options, id="versions-list")
                with VerticalScroll(id="versions-text"):
                    yield Static(id="versions-view", markup=False)

    def on_mount(self) -> None:
        versions = self.query_one("#versions-list", OptionList)
        current = next((i for i, g in enumerate(self.detail.reflections)
                        if self.detail.reflection and g.id == self.detail.reflection.id), 0)
        versions.highlighted = current
        versions.focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        g = next(g for g in self.detail.reflections if str(g.id) == event.option.id)
        self.query_one("#versions-view", Static).update(Content.assemble(
            (f"#{g.id}", "bold"), "  ", literal(g.model), f"  {label_text(g.predicted_label)}",
            f"  parse {g.parse_status}\n\n", ("Error analysis\n", "bold"), literal(g.error_analysis or ""),
            "\n\n", ("Improved thought\n", "bold"), literal(g.thought_process or ""),
        ))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.answer(int(event.option.id or 0))

    def action_cancel(self) -> None:
        self.answer(None)
