"""The queues with their live counts and the active filter: a list in wide layouts, one line in narrow ones."""
from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widget import Widget

from db.queue_signals import SIGNAL_QUEUES
from db.queue_team import TEAM_QUEUES
from db.queues import QUEUE_TITLES, QUEUES, QueueFilter
from nlistral_tui.text import literal

FILTER_STYLE = "bold $text-warning"
MUTED = "$text-muted"
TEAM_KEYS = {"mine": "m", "conflicts": "x", "sample": "o"}  # the team queues' keys (the digits are taken)


TRIAGE_KEY = "t"  # the signal queues are picked from the triage list


def queue_key(queue: str) -> str:
    """The key that selects a queue: 1-9 then 0, a letter for each team queue, t (the triage list) for the rest."""
    if queue in SIGNAL_QUEUES:
        return TRIAGE_KEY
    return TEAM_KEYS[queue] if queue in TEAM_KEYS else str((QUEUES.index(queue) + 1) % 10)


def _count(counts: dict[str, int] | None, queue: str) -> str:
    return "…" if counts is None else f"{counts.get(queue, 0):,}"


def facets_content(f: QueueFilter) -> Content | None:
    """The filter's facets (dataset/split, gold, model, evaluate run) as literal text; None when there are none.

    The search is left out: the search line shows it.
    """
    parts: list[Content] = []
    if f.dataset or f.split:
        parts.append(literal(f"{f.dataset or '*'}/{f.split or '*'}"))
    if f.gold is not None:
        parts.append(Content(f"gold {f.gold}"))
    if f.model:
        parts.append(Content.assemble("model ", literal(f.model)))
    if f.run_id is not None:
        parts.append(Content(f"run {f.run_id}"))
    if f.train_run is not None:
        parts.append(Content(f"train run {f.train_run}"))
    parts += [literal(part) for part in f.team_parts()]  # reviewer names, reasons, sample names: as typed
    return Content(" · ").join(parts) if parts else None


class _QueueView(Widget):
    """Holds the filter and counts; a count repaints it, a change of facets lays it out again (it may wrap)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.current = QueueFilter()
        self.counts: dict[str, int] | None = None
        self.team: tuple[str, ...] = ()  # the team queues the store has (as last counted)

    def show(self, current: QueueFilter, counts: dict[str, int] | None) -> None:
        """Redraw for the current filter and counts (None while counting)."""
        if (current, counts) != (self.current, self.counts):
            team = self.team if counts is None else tuple(q for q in TEAM_QUEUES if q in counts)
            relayout = (facets_content(current) != facets_content(self.current) or team != self.team
                        or SIGNAL_QUEUES.count(current.queue) != SIGNAL_QUEUES.count(self.current.queue))
            self.current, self.counts, self.team = current, counts, team
            self.refresh(layout=relayout)

    @property
    def shown_queues(self) -> tuple[str, ...]:
        """The queues listed: every store's, then the team queues this store has, and the current one."""
        q = self.current.queue
        return QUEUES + tuple(t for t in TEAM_QUEUES if t in self.team or t == q) + (
            (q,) if q in SIGNAL_QUEUES else ())


class QueueBar(_QueueView):
    """Every queue on its own line: key, name, count; the current one highlighted; then the filter."""

    def render(self) -> Content:
        width = max(10, self.size.width or 30)
        lines = []
        for q in self.shown_queues:
            name, n = QUEUE_TITLES[q], _count(self.counts, q)
            pad = max(1, width - len(name) - len(n) - 3)
            line = Content.assemble((queue_key(q), "bold $accent"), f" {name}{' ' * pad}{n}")
            lines.append(line.stylize("reverse bold") if q == self.current.queue else line)
        facets = facets_content(self.current)
        lines.append(Content.styled("no filter (f filters)", MUTED) if facets is None else
                     Content.assemble(("filter: ", FILTER_STYLE), facets, ("  c clears", MUTED)))
        return Content("\n").join(lines)


class QueueLine(_QueueView):
    """The current queue, its count and the filter on one line (two when the filter is long), for narrow terminals."""

    def render(self) -> Content:
        q = self.current.queue
        head = Content.assemble((queue_key(q), "bold $accent"), " ", (QUEUE_TITLES[q], "bold"),
                                f"  {_count(self.counts, q)}")
        facets = facets_content(self.current)
        if facets is None:
            return Content.assemble(head, ("   [ ] 1-0 queues · f filter · ? keys", MUTED))
        return Content.assemble(head, ("  filter: ", FILTER_STYLE), facets, ("  c clears", MUTED))
