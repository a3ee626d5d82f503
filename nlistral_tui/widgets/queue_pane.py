"""The queue pane: the queues with their counts, the search line, the progress and the rows of the queue window.

It owns the queue side of the review screen: the filter, the window of rows around the cursor (loaded,
grown at either end and moved here) and the counts. Its workers post their results as messages, which
bubble up to the review screen: the screen hands them back to take_window / take_rows / take_counts
with the examples' details alongside.
"""
from __future__ import annotations

from typing import Any

from textual import events, work
from textual.app import ComposeResult
from textual.containers import Vertical

from db import queue_counts, queue_pages, queues
from db.queues import QueueFilter
from nlistral_tui.data.store import Store
from nlistral_tui.data.window import PAGE, QueueWindow, load_start, load_window
from nlistral_tui.messages import CountsCounted, FacetsFound, PositionFound, RowsFetched, WindowLoaded
from nlistral_tui.widgets.queue_bar import QueueBar, QueueLine
from nlistral_tui.widgets.queue_list import QueueList
from nlistral_tui.widgets.queue_progress import QueueProgress
from nlistral_tui.widgets.search_line import SearchLine


class QueuePane(Vertical):
    """The current queue and filter, its counts and a window of its rows with the cursor."""

    def __init__(self, store: Store, start_filter: QueueFilter | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.filter = start_filter or QueueFilter()
        self.pick_start = start_filter is None  # open where the reviewer left off (or on disagreements)
        self.window = QueueWindow()
        self.counts: dict[str, int] | None = None
        self.decided: int | None = None
        self._fetching: set[bool] = set()
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
    def move(self, delta: int) -> bool:
        """Move the cursor by delta rows; False when it cannot move yet (more rows are fetched: take_rows
        then gives the move back) or at all (the reviewer is told)."""
        if self.window.move(delta):
            return True
        ahead = delta > 0
        if (self.window.at_end if ahead else self.window.at_start) or not self.window.rows:
            self.notify("End of the queue." if ahead else "Start of the queue.", timeout=2)
        else:
            self._pending_move = delta
            self.fetch(ahead)
        return False

    def set_filter(self, new: QueueFilter) -> None:
        """Show another queue or filter, from its first example."""
        self.pick_start = False
        self.filter, self.counts, self.decided = new, None, None
        self.paint()
        self.load(new)

    def go_to(self, f: QueueFilter, example_id: int) -> None:
        """Show an example in the queue and filter f."""
        if f != self.filter:
            self.filter, self.counts, self.decided = f, None, None
        self.load(f, example_id)

    def prefetch(self) -> None:
        """Fetch more rows when the cursor nears an end of the window."""
        if self.window.wants_after():
            self.fetch(True)
        if self.window.wants_before():
            self.fetch(False)

    def fetch(self, after: bool) -> None:
        """Fetch the rows after (or before) the window, unless that is under way."""
        if after in self._fetching or not self.window.rows:
            return
        self._fetching.add(after)
        bound = self.window.rows[-1].id if after else self.window.rows[0].id
        self._fetch_rows(self.filter, after, bound)

    # ------------------------------------------------- results of the workers
    # Counts are the pane's alone; a window and more rows come with details, so the screen hands them over.
    def take_window(self, msg: WindowLoaded) -> bool:
        """Show a loaded window; False when it is for a filter no longer shown."""
        if msg.filter != self.filter and not self.pick_start:
            return False
        self.pick_start = False
        self.filter = msg.filter
        self._fetching.clear()
        self.window.reset(msg.rows, msg.focus_id, msg.at_start, msg.at_end)
        self.paint()
        self.count(self.filter, msg.rows[0].id if msg.rows else None)
        return True

    def take_rows(self, msg: RowsFetched) -> tuple[list[int], int] | None:
        """Add fetched rows: the ids dropped from the far end, and the move that waited for the rows (0: none,
        the rows are shown); None when they are for a filter no longer shown."""
        self._fetching.discard(msg.after)
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

    def on_counts_counted(self, msg: CountsCounted) -> None:
        if msg.filter == self.filter:
            self.counts, self.decided = msg.counts, msg.decided
            self.paint()

    def on_position_found(self, msg: PositionFound) -> None:
        if msg.filter == self.filter and self.window.rows and self.window.rows[0].id == msg.anchor_id:
            self.window.base_position = msg.position
            self.paint_progress()

    # ---------------------------------------------------------------- workers
    # Reads a key press waits on go through the store's one reader thread (a warm page cache);
    # counts and other slow scans run in ordinary thread workers beside them.
    @work(group="window", exclusive=True, exit_on_error=False)
    async def load(self, f: QueueFilter, focus_id: int | None = None, reviewer: str | None = None) -> None:
        """Load a window of f around focus_id; with a reviewer, where that reviewer left off instead."""
        loaded = await self.store.read(lambda db: load_start(db, reviewer) if reviewer is not None
                                       else load_window(db, f, focus_id))
        self.post_message(WindowLoaded(loaded.filter, loaded.rows, loaded.focus_id if reviewer is not None
                                       else focus_id, loaded.at_start, loaded.at_end, loaded.details))

    @work(group="rows", exit_on_error=False)
    async def _fetch_rows(self, f: QueueFilter, after: bool, bound: int) -> None:
        rows = await self.store.read(lambda db: queue_pages.page_after(db, f, bound, PAGE) if after
                                     else queue_pages.page_before(db, f, bound, PAGE))
        self.post_message(RowsFetched(f, rows, after, len(rows) < PAGE))

    @work(thread=True, group="counts", exclusive=True, exit_on_error=False)
    def count(self, f: QueueFilter, anchor_id: int | None = None) -> None:
        """Count the queues under f's facets (and the position of anchor_id, the window's first row)."""
        db = self.store.db()
        if anchor_id is not None:
            self.post_message(PositionFound(f, anchor_id, queue_counts.position(db, f, anchor_id)))
        self.post_message(CountsCounted(f, queue_counts.counts(db, f), queue_counts.decided_count(db, f)))

    @work(thread=True, group="facets", exclusive=True, exit_on_error=False)
    def load_facets(self) -> None:
        """Read the values the facet filters can take."""
        self.post_message(FacetsFound(queues.facets(self.store.db())))
