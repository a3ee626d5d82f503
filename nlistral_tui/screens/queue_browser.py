"""The screen the review screen is built on: a queue pane and a detail pane kept in step.

It moves the cursor, loads rows and details (its panes' workers post them as messages, handled here),
finds an example asked for by id, and follows what other processes write to the store. ReviewScreen
(screens/review.py) adds the keys and the decisions.
"""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from db import queue_pages, queues
from db.detail import ExampleDetail, load_details
from db.queues import Facets, QueueFilter
from nlistral_tui.data.store import Store
from nlistral_tui.data.window import QueueWindow
from nlistral_tui.messages import (
    DetailsLoaded,
    ExampleLocated,
    FacetsFound,
    RowsFetched,
    RowsRefreshed,
    StoreChanged,
    WindowLoaded,
)
from nlistral_tui.tuning import LatencyProbe, collect_young, quiet_gc
from nlistral_tui.widgets.detail_pane import DetailPane
from nlistral_tui.widgets.queue_list import QueueList
from nlistral_tui.widgets.queue_pane import QueuePane

WATCH_S = 2.0


class QueueBrowser(Screen[None]):
    """A queue on the left, the example under its cursor on the right."""

    def __init__(self, store: Store, reviewer: str, start_filter: QueueFilter | None = None) -> None:
        super().__init__()
        self.store, self.reviewer = store, reviewer
        self.pane = QueuePane(store, start_filter, id="queue-pane")
        self.detail = DetailPane(store, id="detail")
        self.facets: Facets | None = None
        self.probe = LatencyProbe()  # what benchmarks/tui_latency.py reads
        self._high_water: tuple[int, int, int] | None = None
        self.ready = False  # the first window has been shown

    @property
    def filter(self) -> QueueFilter:
        """The queue and filter shown."""
        return self.pane.filter

    @property
    def window(self) -> QueueWindow:
        """The rows around the cursor."""
        return self.pane.window

    @property
    def counts(self) -> dict[str, int] | None:
        """Every queue's count under the filter (None while counting)."""
        return self.pane.counts

    @property
    def current(self) -> ExampleDetail | None:
        """The example shown."""
        return self.detail.detail

    def compose(self) -> ComposeResult:
        with Horizontal(id="review-body"):
            yield self.pane
            yield self.detail
        yield Footer()

    def on_mount(self) -> None:
        self.pane.load(self.filter, None, self.reviewer if self.pane.pick_start else None)
        self.pane.load_facets()
        self._check_store()  # the baseline: later checks compare with it
        self.set_interval(WATCH_S, self._check_store)

    # ------------------------------------------------------------- navigation
    def action_refresh(self) -> None:
        self.pane.load(self.filter, self.current.id if self.current else None)
        self.pane.load_facets()

    def move(self, delta: int) -> None:
        """Move the cursor by delta rows (when the window ends, once more rows are fetched)."""
        if self.pane.move(delta):
            self.probe.start("next", self.window.current.id if self.window.current else None)
            self._show_cursor()

    def set_filter(self, new: QueueFilter, probe: str) -> None:
        """Show another queue or filter, from its first example."""
        self.probe.start(probe)
        self.pane.set_filter(new)

    def _show_cursor(self, reset_view: bool = False) -> None:
        row = self.window.current
        self.pane.show_rows(reset_view)
        self.pane.paint_progress()
        if row is None:
            self._display(None)
        elif (detail := self.detail.details.get(row.id)) is not None:
            self._display(detail)
            # Reading ahead competes for the interpreter with painting: start it once this frame is out.
            self.call_after_refresh(self._prefetch)
            return
        self._prefetch()

    def _display(self, detail: ExampleDetail | None) -> None:
        empty_store = detail is None and not self.window.rows and self.filter == QueueFilter()
        self.detail.show(detail, empty_store)
        self.probe.shown(self, detail.id if detail else None)
        self.call_after_refresh(self._prepare_neighbours)

    def _prepare_neighbours(self) -> None:
        """While idle: collect the young garbage (rather than in the next key's frame), wrap the neighbours."""
        collect_young()
        self.detail.prepare_neighbours(self.window)

    def _prefetch(self) -> None:
        self.pane.prefetch()
        self.detail.prefetch(self.window, self.filter.run_id)

    def _jump_to(self, text: str | None) -> None:
        if text:  # None: cancelled; "": nothing typed
            try:
                self._locate(int(text), switch=True)
            except ValueError:
                self.notify(f"{text!r} is not an example id; type a whole number.", severity="error")

    # ---------------------------------------------------------------- workers
    # Every worker reports by posting a message (thread-safe); the handlers below update the screen.
    @work(thread=True, group="watch", exclusive=True, exit_on_error=False)
    def _check_store(self) -> None:
        self.post_message(StoreChanged(queues.high_water(self.store.db())))

    @work(thread=True, group="refresh", exclusive=True, exit_on_error=False)
    def _soft_refresh(self, ids: list[int], cached: list[int], run_id: int | None) -> None:
        db = self.store.db()
        self.post_message(DetailsLoaded(load_details(db, cached, run_id)))
        self.post_message(RowsRefreshed(queue_pages.rows_by_id(db, ids)))

    @work(thread=True, group="jump", exclusive=True, exit_on_error=False)
    def _locate(self, example_id: int, switch: bool) -> None:
        """Find an example: whether it exists, and whether the current queue holds it."""
        db, f = self.store.db(), self.filter
        exists = queue_pages.contains(db, QueueFilter(), example_id)
        inside = exists and queue_pages.contains(db, f, example_id)
        self.post_message(ExampleLocated(example_id, f, exists, inside, switch))

    # --------------------------------------------------------------- handlers
    def on_window_loaded(self, msg: WindowLoaded) -> None:
        if not self.pane.take_window(msg):
            return
        self.detail.reset(msg.details)
        self._show_cursor(reset_view=True)
        if not self.ready:
            self.ready = True
            self.app.call_after_refresh(quiet_gc)

    def on_rows_fetched(self, msg: RowsFetched) -> None:
        if (taken := self.pane.take_rows(msg)) is None:
            return
        dropped, delta = taken
        self.detail.forget(dropped)
        if delta:
            self.move(delta)
        else:
            self._prefetch()

    def on_details_loaded(self, msg: DetailsLoaded) -> None:
        self.detail.details.update(msg.details)
        row = self.window.current
        if row is not None and row.id in msg.details and msg.details[row.id] != self.current:
            self._display(msg.details[row.id])

    def on_facets_found(self, msg: FacetsFound) -> None:
        self.facets = msg.facets

    def on_example_located(self, msg: ExampleLocated) -> None:
        f = msg.filter
        if not msg.exists:
            self.notify(f"No example with id {msg.example_id} in this database.", severity="error")
            return
        if not msg.in_filter:
            if not msg.switch:
                self.action_refresh()
                return
            self.notify(f"#{msg.example_id} is not in {f.describe()}; showing it under all.", markup=False)
            f = QueueFilter()
        self.pane.go_to(f, msg.example_id)

    def on_store_changed(self, msg: StoreChanged) -> None:
        if self._high_water is not None and msg.high_water != self._high_water:
            ids = [r.id for r in self.window.rows]
            self._soft_refresh(ids, [i for i in ids if i in self.detail.details], self.filter.run_id)
            self.pane.count(self.filter)
            if self.window.at_end and msg.high_water[0] != self._high_water[0]:
                self.window.at_end = False
                self.pane.fetch(True)
        self._high_water = msg.high_water

    def on_rows_refreshed(self, msg: RowsRefreshed) -> None:
        self.window.update_rows(msg.rows)
        self.pane.show_rows()

    @on(QueueList.RowClicked)
    def _row_clicked(self, msg: QueueList.RowClicked) -> None:
        if self.window.move_to(msg.index):
            self._show_cursor()
