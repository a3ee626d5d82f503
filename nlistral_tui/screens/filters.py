"""The filter dialog: dataset, split, gold label, thought model and evaluate run (the queue is kept)."""
from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Select, Static

from db.queues import Facets, QueueFilter

FIELDS = ("dataset", "split", "gold", "model", "run_id")
TITLES = {"dataset": "dataset", "split": "split", "gold": "gold label", "model": "thought model",
          "run_id": "evaluate run (model errors)"}


def _options(name: str, facets: Facets) -> list[tuple[Content, Any]]:
    values: tuple[Any, ...] = {
        "dataset": facets.datasets, "split": facets.splits, "gold": (1, 0), "model": facets.models,
        "run_id": facets.evaluate_runs,
    }[name]
    shown = {"gold": {1: "1 entailment", 0: "0 no-entailment"}}.get(name, {})
    return [(Content(str(shown.get(v, v))), v) for v in values]


class FilterScreen(ModalScreen[QueueFilter | None]):
    """Choose facet values; 'any' (blank) means no filter on that field."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "apply", id="filter.apply"),
        Binding("ctrl+x", "clear", "clear all", id="filter.clear"),
        Binding("escape", "cancel", "cancel", id="filter.cancel"),
    ]

    def __init__(self, current: QueueFilter, facets: Facets) -> None:
        super().__init__()
        self.current, self.facets = current, facets

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Filter the queue", classes="dialog-title")
            with Grid(id="filter-grid"):
                for name in FIELDS:
                    yield Label(TITLES[name])
                    value = getattr(self.current, name)
                    yield Select(_options(name, self.facets), prompt="any",
                                 value=Select.NULL if value is None else value,
                                 id=f"filter-{name}", compact=True)
            yield Static("ctrl+s apply · ctrl+x clear all · esc cancel", classes="dialog-hint", markup=False)

    def action_apply(self) -> None:
        values = {}
        for name in FIELDS:
            value = self.query_one(f"#filter-{name}", Select).value
            values[name] = None if value is Select.NULL else value
        self.dismiss(self.current.replace(**values))

    def action_clear(self) -> None:
        self.dismiss(self.current.replace(**{name: None for name in FIELDS}))

    def action_cancel(self) -> None:
        self.dismiss(None)
