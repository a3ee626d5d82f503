"""The screen the review screen is built on: a queue pane and a detail pane kept in step.

It moves the cursor, hands its panes the rows, details and counts that its feed (data/queue_feed.py) reads
from the store (the feed's workers post them as messages, handled here), finds an example asked for by id,
and follows what other processes write to the store. ReviewScreen (screens/review.py) adds the keys and
the decisions.
"""
from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from db.detail import ExampleDetail
from db.queue_team import TEAM_QUEUES
from db.queues import QUEUE_TITLES, Facets, QueueFilter
from nlistral_tui.data.queue_feed import QueueFeed
from nlistral_tui.data.store import Store
from nlistral_tui.data.window import QueueWindow
from nlistral_tui.messages import (
    CountsCounted,
    DetailsLoaded,
    ExampleLocated,
    FacetsFound,
    PositionFound,
    RankingRefreshed,
    RowsFetched,
    RowsRefreshed,
    SignalsCounted,
    StoreChanged,
    ViewOpened,
    ViewSaved,
    ViewsListed,
    WindowLoaded,
)
from nlistral_tui.screens.dialog import ask
from nlistral_tui.screens.triage import REFRESH, ranking_inputs, triage_dialog, with_thresholds
from nlistral_tui.screens.views import ViewsScreen
from nlistral_tui.tuning import LatencyProbe, collect_young, quiet_gc
from nlistral_tui.widgets.detail_pane import DetailPane
from nlistral_tui.widgets.queue_bar import QueueBar, queue_key
from nlistral_tui.widgets.queue_list import QueueList
from nlistral_tui.widgets.queue_pane import QueuePane
from pipeline.settings import Settings

WATCH_S = 2.0
# Keys of every queue browser (the review screen adds its own): the team queues and the named views.
BROWSE_BINDINGS: list[BindingType] = [
    *(Binding(queue_key(q), f"team_queue('{q}')", QUEUE_TITLES[q], id=f"queue_{q}", show=False,
              tooltip=f"queue: {QUEUE_TITLES[q]}") for q in TEAM_QUEUES),
    Binding("w", "views", "views", id="views", show=False,
            tooltip="named views: save this queue and filter, or open one"),
    Binding("t", "triage", "triage", id="triage", show=False,
            tooltip="triage: the suspect-gold queue, the outcome cells and the cartography regions, with counts"),
]


class QueueBrowser(Screen[None]):
    """A queue on the left, the example under its cursor on the right."""

    BINDINGS: ClassVar[list[BindingType]] = BROWSE_BINDINGS

    def __init__(self, store: Store, reviewer: str, start_filter: QueueFilter | None = None,
                 settings: Settings | None = None) -> None:
        super().__init__()
        self.store, self.reviewer = store, reviewer
        self.settings = settings or Settings()
        self.feed = QueueFeed(self, store, reviewer)
        self.pane = QueuePane(start_filter and start_filter.for_reviewer(reviewer), id="queue-pane")
        self.detail = DetailPane(id="detail")
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
        self.feed.load_window(self.filter, None, self.reviewer if self.pane.pick_start else None)
        self.feed.load_facets()
        self._check_store()  # the baseline: later checks compare with it
        self.set_interval(WATCH_S, self._check_store)

    # ------------------------------------------------------------- navigation
    def action_refresh(self) -> None:
        self.feed.load_window(self.filter, self.current.id if self.current else None)
        self.feed.load_facets()

    def move(self, delta: int) -> None:
        """Move the cursor by delta rows (when the window ends, once more rows are fetched)."""
        moved = self.pane.move(delta)
        if moved:
            self.probe.start("next", self.window.current.id if self.window.current else None)
            self._show_cursor()
        elif moved is None:  # the rows are not read yet: the move waits for them
            self.feed.fetch_rows(self.filter, self.window, delta > 0)

    def set_filter(self, new: QueueFilter, probe: str) -> None:
        """Show another queue or filter, from its first example (the "mine" queue is this reviewer's)."""
        new = new.for_reviewer(self.reviewer)
        self.probe.start(probe)
        self.pane.set_filter(new)
        self.feed.load_window(new)

    def next_queue(self, step: int) -> str:
        """The queue step places after (before, when negative) the current one among the queues listed."""
        shown = self.query_one(QueueBar).shown_queues
        return shown[(shown.index(self.filter.queue) + step) % len(shown)]

    def action_team_queue(self, queue: str) -> None:
        bar = self.query_one(QueueBar)
        if self.counts is not None and queue not in bar.team:
            hint = {"mine": "nothing is assigned on this store yet (nlistral assign --reviewers ...)",
                    "conflicts": "no two reviewers disagree on this store",
                    "sample": "no audit sample was drawn on this store yet (nlistral sample --n ...)"}[queue]
            self.notify(f"The {QUEUE_TITLES[queue]} queue is empty: {hint}.", timeout=6)
        self.set_filter(self.filter.replace(queue=queue), "filter")

    def action_views(self) -> None:
        self.feed.list_views()

    def action_triage(self) -> None:
        self.notify("Counting the triage queues…", timeout=3)
        self.feed.count_signals(with_thresholds(self.filter, self.settings))

    def on_signals_counted(self, msg: SignalsCounted) -> None:
        def chosen(queue: str | None) -> None:
            if queue == REFRESH:
                self.notify("Computing the suspect ranking…", timeout=4)
                self.feed.refresh_ranking(*ranking_inputs(self.settings))
            elif queue is not None:
                self.set_filter(with_thresholds(self.filter.replace(queue=queue), self.settings), "filter")

        ask(self.app, triage_dialog(msg.counts, msg.ranking), chosen)

    def on_ranking_refreshed(self, msg: RankingRefreshed) -> None:
        self.notify(f"The suspect ranking holds {msg.suspects:,} examples.", timeout=5)
        self.set_filter(self.filter.replace(queue="suspect_gold"), "filter")

    def _show_cursor(self, reset_view: bool = False) -> None:
        row = self.window.current
        self.pane.show_rows(reset_view)
        self.pane.paint_progress()
        if row is None:
            self._display(None)
        elif (detail := self.feed.details.get(row.id)) is not None:
            self._display(detail)
            # Reading ahead competes for the interpreter with painting: start it once this frame is out.
            self.call_after_refresh(self._prefetch)
            return
        self._prefetch()

    def _display(self, detail: ExampleDetail | None) -> None:
        empty_store = detail is None and not self.window.rows and self.filter == QueueFilter()
        self.detail.search = self.filter.search
        self.detail.show(detail, empty_store)
        self.probe.shown(self, detail.id if detail else None)
        self.call_after_refresh(self._prepare_neighbours)

    def _prepare_neighbours(self) -> None:
        """While idle: collect the young garbage (rather than in the next key's frame), wrap the neighbours."""
        collect_young()
        for detail in self.feed.neighbours(self.window):
            self.detail.prepare(detail)

    def _prefetch(self) -> None:
        self.feed.prefetch(self.filter, self.window)

    def _jump_to(self, text: str | None) -> None:
        if text:  # None: cancelled; "": nothing typed
            try:
                self.feed.locate(int(text), self.filter, switch=True)
            except ValueError:
                self.notify(f"{text!r} is not an example id; type a whole number.", severity="error")

    def _check_store(self) -> None:
        self.feed.check_store()

    # --------------------------------------------------------------- handlers
    def on_window_loaded(self, msg: WindowLoaded) -> None:
        if not self.pane.take_window(msg):
            return
        self.feed.reset(msg.details)
        self.feed.count(self.filter, msg.rows[0].id if msg.rows else None)
        self._show_cursor(reset_view=True)
        if not self.ready:
            self.ready = True
            self.app.call_after_refresh(quiet_gc)

    def on_rows_fetched(self, msg: RowsFetched) -> None:
        self.feed.fetched(msg.after)
        if (taken := self.pane.take_rows(msg)) is None:
            return
        dropped, delta = taken
        self.feed.forget(dropped)
        if delta:
            self.move(delta)
        else:
            self._prefetch()

    def on_details_loaded(self, msg: DetailsLoaded) -> None:
        self.feed.details.update(msg.details)
        row = self.window.current
        if row is not None and row.id in msg.details and msg.details[row.id] != self.current:
            self._display(msg.details[row.id])

    def on_counts_counted(self, msg: CountsCounted) -> None:
        self.pane.take_counts(msg)

    def on_position_found(self, msg: PositionFound) -> None:
        self.pane.take_position(msg)

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
        self.pane.go_to(f)
        self.feed.load_window(f, msg.example_id)

    def on_store_changed(self, msg: StoreChanged) -> None:
        if self._high_water is not None and msg.high_water != self._high_water:
            self.feed.refresh(self.window, self.filter.run_id)
            self.feed.count(self.filter)
            if self.window.at_end and msg.high_water[0] != self._high_water[0]:
                self.window.at_end = False
                self.feed.fetch_rows(self.filter, self.window, True)
        self._high_water = msg.high_water

    def on_views_listed(self, msg: ViewsListed) -> None:
        ask(self.app, ViewsScreen(msg.names, self.filter.describe()), self._view_chosen)

    def _view_chosen(self, chosen: tuple[str, str] | None) -> None:
        if chosen is not None:
            what, name = chosen
            if what == "save":
                self.feed.save_view(name, self.filter)
            else:
                self.feed.open_view(name)

    def on_view_saved(self, msg: ViewSaved) -> None:
        if msg.error:
            self.notify(f"The view was not saved: {msg.error}.", severity="error", markup=False)
        else:
            self.notify(f"Saved this view as {msg.name!r} (w opens it).", markup=False)

    def on_view_opened(self, msg: ViewOpened) -> None:
        if msg.filter is None:
            self.notify(f"The view {msg.name!r} is gone or was saved by another version of the app; "
                        "save it again (w).", severity="error", markup=False)
        else:
            self.set_filter(msg.filter, "filter")

    def on_rows_refreshed(self, msg: RowsRefreshed) -> None:
        self.window.update_rows(msg.rows)
        self.pane.show_rows()

    @on(QueueList.RowClicked)
    def _row_clicked(self, msg: QueueList.RowClicked) -> None:
        if self.window.move_to(msg.index):
            self._show_cursor()
