"""The queue pane: the queues with their counts, the search line, the progress and the rows of the queue window.

It shows the queue side of the review screen: the filter, the window of rows around the cursor (moved
here) and the counts. It never reads the store: the screen's feed (data/queue_feed.py) reads the rows and
counts, and the screen hands them over (take_window, take_rows, take_counts, take_position).
"""
from __future__ import annotations

from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical

from db.queues import QueueFilter
from nlistral_tui.data.window import QueueWindow
from nlistral_tui.messages import CountsCounted, PositionFound, RowsFetched, WindowLoaded
from nlistral_tui.widgets.queue_bar import QueueBar, QueueLine
from nlistral_tui.widgets.queue_list import QueueList
from nlistral_tui.widgets.queue_progress import QueueProgress
from nlistral_tui.widgets.search_line import SearchLine


class QueuePane(Vertical):
    """The current queue and filter, its counts and a window of its rows with the cursor."""

    def __init__(self, start_filter: QueueFilter | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter = start_filter or QueueFilter()
        self.pick_start = start_filter is None  # open where the reviewer left off (or on disagreements)
        self.window = QueueWindow()
        self.counts: dict[str, int] | None = None
        self.decided: int | None = None
        self._pending_move = 0

    def compose(self) -> ComposeResult:
        yield QueueBar(id="queue-bar")
        yield QueueLine(id="queue-line")
        yield SearchLine(id="search-line")
        yield QueueProgress(id="queue-progress")
        yield QueueList(id="queue-list")

    def on_mount(self) -> None:
        self._search_line = self.query_one(SearchLine)  # the screen asks it about every key press
        self._list = self.query_one(QueueList)
        self.paint()

    # --------------------------------------------------------------- painting
    def paint(self) -> None:
        """Show the filter, the counts and the position."""
        self._search_line.show(self.filter.search)
        self.query_one(QueueBar).show(self.filter, self.counts)
        self.query_one(QueueLine).show(self.filter, self.counts)
        self.screen.sub_title = self.filter.describe()
        self.paint_progress()

    def paint_progress(self) -> None:
        """Show the cursor's row number and how much of the queue is decided."""
        pos = self.window.position
        total = None if self.counts is None else self.counts.get(self.filter.queue)
        self.query_one(QueueProgress).show(None if pos is None else pos + 1, total, self.decided)

    def show_rows(self, reset_view: bool = False) -> None:
        """Show the window's rows and cursor (reset_view: a new window, recentre the view)."""
        self._list.show(self.window.rows, self.window.cursor, reset=reset_view)

    # ----------------------------------------------------------------- search
    @property
    def searching(self) -> bool:
        """Whether the search line is open (then every key is typing)."""
        return self._search_line.is_open

    def open_search(self) -> None:
        """Open the search line on the current search."""
        self._search_line.open(self.filter.search)

    def search_key(self, event: events.Key) -> str | None:
        """Give a key to the open search line; the text to search for on enter, else None."""
        return self._search_line.handle(event)

    # ----------------------------------------------------------------- moving
    def move(self, delta: int) -> bool | None:
        """Move the cursor by delta rows: True when it moved; None when the rows are not read yet (the move
        waits for them: take_rows gives it back); False when it cannot (the reviewer is told)."""
        if self.window.move(delta):
            return True
        ahead = delta > 0
        if (self.window.at_end if ahead else self.window.at_start) or not self.window.rows:
            self.notify("End of the queue." if ahead else "Start of the queue.", timeout=2)
            return False
        self._pending_move = delta
        return None

    def set_filter(self, new: QueueFilter) -> None:
        """Show another queue or filter (its window is read next)."""
        self.pick_start = False
        self.filter, self.counts, self.decided = new, None, None
        self.paint()

    def go_to(self, f: QueueFilter) -> None:
        """Show the queue and filter f once its window is read (the counts are f's, read afresh)."""
        if f != self.filter:
            self.filter, self.counts, self.decided = f, None, None

    # ------------------------------------------------- results of the workers
    def take_window(self, msg: WindowLoaded) -> bool:
        """Show a loaded window; False when it is for a filter no longer shown."""
        if msg.filter != self.filter and not self.pick_start:
            return False
        self.pick_start = False
        self.filter = msg.filter
        self.window.reset(msg.rows, msg.focus_id, msg.at_start, msg.at_end)
        self.paint()
        return True

    def take_rows(self, msg: RowsFetched) -> tuple[list[int], int] | None:
        """Add fetched rows: the ids dropped from the far end, and the move that waited for the rows (0: none,
        the rows are shown); None when they are for a filter no longer shown."""
        if msg.filter != self.filter:
            return None
        dropped = self.window.extend(msg.rows, msg.after, msg.exhausted)
        if dropped and msg.after:
            self._list.shift(len(dropped))
        delta, self._pending_move = self._pending_move, 0
        if delta and self.window.can_move(delta):
            return dropped, delta
        self.show_rows()
        return dropped, 0

    def take_counts(self, msg: CountsCounted) -> None:
        """Show the counts, when they are of the filter shown."""
        if msg.filter == self.filter:
            self.counts, self.decided = msg.counts, msg.decided
            self.paint()

    def take_position(self, msg: PositionFound) -> None:
        """Number the rows, when the position is of the window shown."""
        if msg.filter == self.filter and self.window.rows and self.window.rows[0].id == msg.anchor_id:
            self.window.base_position = msg.position
            self.paint_progress()
