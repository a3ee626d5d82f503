"""The queues with their live counts: a list in wide layouts, one line in narrow ones."""
from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from db.queues import QUEUE_TITLES, QUEUES, QueueFilter


def queue_key(queue: str) -> str:
    """The digit that selects a queue: 1-9 then 0."""
    return str((QUEUES.index(queue) + 1) % 10)


def _count(counts: dict[str, int] | None, queue: str) -> str:
    return "…" if counts is None else f"{counts.get(queue, 0):,}"


class QueueBar(Static):
    """Every queue on its own line: key, name, count; the current one highlighted."""

    def show(self, current: QueueFilter, counts: dict[str, int] | None) -> None:
        """Redraw for the current filter and counts (None while counting)."""
        width = max(10, self.size.width or 30)
        lines = []
        for q in QUEUES:
            name, n = QUEUE_TITLES[q], _count(counts, q)
            pad = max(1, width - len(name) - len(n) - 3)
            line = Content.assemble((queue_key(q), "bold $accent"), f" {name}{' ' * pad}{n}")
            lines.append(line.stylize("reverse bold") if q == current.queue else line)
        self.update(Content("\n").join(lines))


class QueueLine(Static):
    """The current queue and filter on one line, for narrow terminals."""

    def show(self, current: QueueFilter, counts: dict[str, int] | None) -> None:
        """Redraw for the current filter and counts (None while counting)."""
        self.update(Content.assemble(
            (queue_key(current.queue), "bold $accent"), " ", (current.describe(), "bold"),
            f"  {_count(counts, current.queue)}", ("   [ ] 1-0 queues · ? keys", "$text-muted"),
        ))
