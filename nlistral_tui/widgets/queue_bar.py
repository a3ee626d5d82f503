"""The queues with their live counts: a list in wide layouts, one line in narrow ones."""
from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from db.queues import QUEUE_TITLES, QUEUES, QueueFilter


def queue_key(queue: str) -> str:
    """The digit that selects a queue: 1-9 then 0."""
    return str((QUEUES.index(queue) + 1) % 10)


def _count(counts: dict[str, int] | None, queue: str) -> str:
    return "…" if counts is None else f"{counts.get(queue, 0):,}"


class _QueueView(Widget):
    """Holds the filter and counts; a change repaints it (its size never changes, so no re-layout)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current = QueueFilter()
        self.counts: dict[str, int] | None = None

    def show(self, current: QueueFilter, counts: dict[str, int] | None) -> None:
        """Redraw for the current filter and counts (None while counting)."""
        if (current, counts) != (self.current, self.counts):
            self.current, self.counts = current, counts
            self.refresh()


class QueueBar(_QueueView):
    """Every queue on its own line: key, name, count; the current one highlighted."""

    def render(self) -> Content:
        width = max(10, self.size.width or 30)
        lines = []
        for q in QUEUES:
            name, n = QUEUE_TITLES[q], _count(self.counts, q)
            pad = max(1, width - len(name) - len(n) - 3)
            line = Content.assemble((queue_key(q), "bold $accent"), f" {name}{' ' * pad}{n}")
            lines.append(line.stylize("reverse bold") if q == self.current.queue else line)
        return Content("\n").join(lines)


class QueueLine(_QueueView):
    """The current queue and filter on one line, for narrow terminals."""

    def render(self) -> Content:
        return Content.assemble(
            (queue_key(self.current.queue), "bold $accent"), " ", (self.current.describe(), "bold"),
            f"  {_count(self.counts, self.current.queue)}", ("   [ ] 1-0 queues · ? keys", "$text-muted"),
        )
