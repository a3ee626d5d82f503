"""The filter dialog: dataset, split, gold label, thought model, evaluate run, audit sample, flag, reviewer,
reason, judge score and thought length (the queue is kept)."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Input, Label, Select, Static

from db.queue_team import FLAGS
from db.queues import Facets, QueueFilter
from nlistral_tui.screens.dialog import Dialog
from nlistral_tui.text import literal

FIELDS = ("dataset", "split", "gold", "model", "run_id", "sample", "flag", "reviewer", "reason")
# Typed bounds: (field, input type).
BOUNDS: tuple[tuple[str, Literal["number", "integer"]], ...] = (
    ("judge_min", "number"), ("judge_max", "number"), ("words_min", "integer"), ("words_max", "integer"))
TITLES = {"dataset": "dataset", "split": "split", "gold": "gold label", "model": "thought model",
          "run_id": "evaluate run (model errors)", "sample": "audit sample (sample queue)",
          "flag": "flag on thought/reflection", "reviewer": "decided by reviewer", "reason": "reason given",
          "judge_min": "judge score at least", "judge_max": "judge score at most",
          "words_min": "thought words at least", "words_max": "thought words at most"}


def _options(name: str, facets: Facets) -> list[tuple[Content, Any]]:
    values: tuple[Any, ...] = {
        "dataset": facets.datasets, "split": facets.splits, "gold": (1, 0), "model": facets.models,
        "run_id": facets.evaluate_runs, "sample": facets.samples, "flag": FLAGS, "reviewer": facets.reviewers,
        "reason": facets.reasons,
    }[name]
    shown = {"gold": {1: "1 entailment", 0: "0 no-entailment"}}.get(name, {})
    return [(literal(str(shown.get(v, v))), v) for v in values]


def _bound(name: str, text: str, kind: str) -> float | int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text) if kind == "integer" else float(text)
    except ValueError:
        raise ValueError(f"{TITLES[name]}: {text!r} is not {'a whole' if kind == 'integer' else 'a'} number; "
                         "type one or leave it blank") from None


class FilterScreen(Dialog[QueueFilter]):
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
            with VerticalScroll(id="filter-scroll"), Grid(id="filter-grid"):
                for name in FIELDS:
                    yield Label(TITLES[name])
                    value = getattr(self.current, name)
                    yield Select(_options(name, self.facets), prompt="any",
                                 value=Select.NULL if value is None else value,
                                 id=f"filter-{name}", compact=True)
                for name, kind in BOUNDS:
                    yield Label(TITLES[name])
                    value = getattr(self.current, name)
                    yield Input("" if value is None else str(value), placeholder="any", type=kind,
                                id=f"filter-{name}", compact=True)
            yield Static("ctrl+s apply · ctrl+x clear all · esc cancel", classes="dialog-hint", markup=False)

    def action_apply(self) -> None:
        values: dict[str, Any] = {}
        for name in FIELDS:
            value = self.query_one(f"#filter-{name}", Select).value
            values[name] = None if value is Select.NULL else value
        try:
            for name, kind in BOUNDS:
                values[name] = _bound(name, self.query_one(f"#filter-{name}", Input).value, kind)
            chosen = self.current.replace(**values)
        except ValueError as exc:
            self.notify(f"{exc}.", severity="error", markup=False)
            return
        self.answer(chosen)

    def action_clear(self) -> None:
        self.answer(self.current.replace(**{name: None for name in (*FIELDS, *(n for n, _ in BOUNDS))}))

    def action_cancel(self) -> None:
        self.answer(None)
