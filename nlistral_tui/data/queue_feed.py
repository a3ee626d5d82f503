"""What the review screen reads from the store, and the workers that read it.

The panes get plain data (rows, details, counts), never the store: the review screen owns a QueueFeed,
which runs its workers (windows, more rows, the details around the cursor, counts, facets, what changed,
where an example is; the wait for a stored step and a reflection re-run) and keeps the details read so far.
Each worker reports by posting a message (messages.py) to the screen, whose handlers hand the data over.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from textual.dom import DOMNode

from db import queue_counts, queue_pages, queues, saved_views
from db.clock import now
from db.detail import ExampleDetail, load_details
from db.queues import QueueFilter
from nlistral_tui.data.actions import Recorded
from nlistral_tui.data.store import Store
from nlistral_tui.data.window import PAGE, QueueWindow, load_start, load_window
from nlistral_tui.messages import (
    BulkCounted,
    CountsCounted,
    DecisionRecorded,
    DetailsLoaded,
    ExampleLocated,
    FacetsFound,
    PositionFound,
    RankingRefreshed,
    ReflectionCompleted,
    ReflectionFailed,
    ReflectionStarted,
    RowsFetched,
    RowsRefreshed,
    SignalsCounted,
    StepRefused,
    StepUndone,
    StoreChanged,
    ViewOpened,
    ViewSaved,
    ViewsListed,
    WindowLoaded,
)


class QueueFeed:
    """The review screen's reads of the store, run as its workers, and the details of the examples around the cursor."""

    def __init__(self, screen: DOMNode, store: Store, me: str | None = None) -> None:
        """me: the reviewer using the app (whose "mine" queue the counts count, whose named views these are)."""
        self.screen, self.store, self.me = screen, store, me
        self.details: dict[int, ExampleDetail] = {}  # of the examples around the cursor
        self.run_id: int | None = None  # the evaluate run whose predictions the details show
        self._requested: set[int] = set()  # details read, or being read
        self._fetching: set[bool] = set()  # rows being read after (True) / before (False) the window

    def _start(self, work: Callable[..., Any], *args: Any, group: str, exclusive: bool = False,
               thread: bool = False) -> None:
        """Run work(*args) as a worker of the screen (cancelled with it; exclusive: the group's last one wins)."""
        self.screen.run_worker(functools.partial(work, *args), name=work.__name__, group=group, exclusive=exclusive,
                               thread=thread, exit_on_error=False)

    def _post(self, *messages: Any) -> None:
        for message in messages:
            self.screen.post_message(message)

    # ----------------------------------------------------------------- rows
    # Reads a key press waits on go through the store's one reader thread (a warm page cache);
    # counts and other slow scans run in ordinary thread workers beside them.
    def load_window(self, f: QueueFilter, focus_id: int | None = None, reviewer: str | None = None) -> None:
        """Read a window of f around focus_id; with a reviewer, where that reviewer left off instead."""
        self._start(self._load_window, f, focus_id, reviewer, group="window", exclusive=True)

    async def _load_window(self, f: QueueFilter, focus_id: int | None, reviewer: str | None) -> None:
        loaded = await self.store.read(lambda db: load_start(db, reviewer) if reviewer is not None
                                       else load_window(db, f, focus_id))
        self._post(WindowLoaded(loaded.filter, loaded.rows, loaded.focus_id if reviewer is not None else focus_id,
                                loaded.at_start, loaded.at_end, loaded.details))

    def reset(self, details: dict[int, ExampleDetail]) -> None:
        """A fresh window is shown: keep only its details; no row read under way is for it."""
        self._fetching.clear()
        self.details = dict(details)
        self._requested = set(self.details)

    def fetch_rows(self, f: QueueFilter, window: QueueWindow, after: bool) -> None:
        """Read the rows after (or before) the window, unless that is under way."""
        if after in self._fetching or not window.rows:
            return
        self._fetching.add(after)
        self._start(self._fetch_rows, f, after, window.rows[-1].id if after else window.rows[0].id, group="rows")

    async def _fetch_rows(self, f: QueueFilter, after: bool, bound: int) -> None:
        rows = await self.store.read(lambda db: queue_pages.page_after(db, f, bound, PAGE) if after
                                     else queue_pages.page_before(db, f, bound, PAGE))
        self._post(RowsFetched(f, rows, after, len(rows) < PAGE))

    def fetched(self, after: bool) -> None:
        """The rows read after (or before) the window have come."""
        self._fetching.discard(after)

    def prefetch(self, f: QueueFilter, window: QueueWindow) -> None:
        """Read the rows and details the cursor nears (at once when the cursor's own detail is missing)."""
        if window.wants_after():
            self.fetch_rows(f, window, True)
        if window.wants_before():
            self.fetch_rows(f, window, False)
        self.run_id = f.run_id
        missing = [i for i in window.prefetch_ids(self.details) if i not in self._requested]
        current = window.current
        if missing and (len(missing) >= 10 or (current and current.id in missing)):
            self._requested.update(missing)
            self._start(self._load_details, missing, f.run_id, group="details")

    # -------------------------------------------------------------- details
    async def _load_details(self, ids: list[int], run_id: int | None) -> None:
        self._post(DetailsLoaded(await self.store.read(lambda db: load_details(db, ids, run_id))))

    def forget(self, ids: Iterable[int]) -> None:
        """Drop the details of these examples (they changed, or left the window)."""
        for i in ids:
            self.details.pop(i, None)
            self._requested.discard(i)

    def reload(self, example_id: int) -> None:
        """Read an example's details again (it changed)."""
        self._requested.discard(example_id)
        self._start(self._load_details, [example_id], self.run_id, group="details")

    def neighbours(self, window: QueueWindow) -> list[ExampleDetail]:
        """The details read of the examples after and before the cursor."""
        rows = [window.rows[i] for i in (window.cursor + 1, window.cursor - 1) if 0 <= i < len(window.rows)]
        return [d for r in rows if (d := self.details.get(r.id)) is not None]

    # ------------------------------------------------------ counts and facets
    def count(self, f: QueueFilter, anchor_id: int | None = None) -> None:
        """Count the queues under f's facets (and the position of anchor_id, the window's first row)."""
        self._start(self._count, f, anchor_id, group="counts", exclusive=True, thread=True)

    def _count(self, f: QueueFilter, anchor_id: int | None) -> None:
        db = self.store.db()
        if anchor_id is not None:
            self._post(PositionFound(f, anchor_id, queue_counts.position(db, f, anchor_id)))
        self._post(CountsCounted(f, queue_counts.counts(db, f, self.me), queue_counts.decided_count(db, f)))

    def load_facets(self) -> None:
        """Read the values the facet filters can take."""
        self._start(self._load_facets, group="facets", exclusive=True, thread=True)

    def _load_facets(self) -> None:
        self._post(FacetsFound(queues.facets(self.store.db())))

    def count_bulk(self, action: str, f: QueueFilter) -> None:
        """Read which examples under f a bulk action would take: the undecided and the decided ones."""
        self._start(self._count_bulk, action, f, group="bulk", exclusive=True, thread=True)

    def _count_bulk(self, action: str, f: QueueFilter) -> None:
        self._post(BulkCounted(action, f, *queues.ids_by_decision(self.store.db(), f)))

    def count_signals(self, f: QueueFilter) -> None:
        """Count the signal queues under f's facets, and read the suspicion ranking's state (the triage list)."""
        self._start(self._count_signals, f, group="triage", exclusive=True, thread=True)

    def _count_signals(self, f: QueueFilter) -> None:
        from db import suspicion

        db = self.store.db()
        self._post(SignalsCounted(f, queue_counts.signal_counts(db, f), suspicion.ranking_state(db)))

    def refresh_ranking(self, weights: dict[str, float], thresholds: Any) -> None:
        """Compute the suspicion ranking again and store it (on the writer thread, after the steps before it)."""
        self._start(self._refresh_ranking, weights, thresholds, group="ranking", exclusive=True)

    async def _refresh_ranking(self, weights: dict[str, float], thresholds: Any) -> None:
        from db import suspicion

        ranked = await self.store.write(lambda db: suspicion.refresh(db, weights, thresholds))
        self._post(RankingRefreshed(len(ranked)))

    # ------------------------------------------------- following the store
    def check_store(self) -> None:
        """Read the store's high-water mark (it moves when any process writes)."""
        self._start(self._check_store, group="watch", exclusive=True, thread=True)

    def _check_store(self) -> None:
        self._post(StoreChanged(queues.high_water(self.store.db())))

    def refresh(self, window: QueueWindow, run_id: int | None) -> None:
        """Read the window's rows and the details read so far again (the store changed)."""
        ids = [r.id for r in window.rows]
        self._start(self._refresh, ids, [i for i in ids if i in self.details], run_id, group="refresh",
                    exclusive=True, thread=True)

    def _refresh(self, ids: list[int], cached: list[int], run_id: int | None) -> None:
        db = self.store.db()
        self._post(DetailsLoaded(load_details(db, cached, run_id)), RowsRefreshed(queue_pages.rows_by_id(db, ids)))

    def locate(self, example_id: int, f: QueueFilter, switch: bool) -> None:
        """Find an example: whether it exists, and whether f holds it."""
        self._start(self._locate, example_id, f, switch, group="jump", exclusive=True, thread=True)

    def _locate(self, example_id: int, f: QueueFilter, switch: bool) -> None:
        db = self.store.db()
        exists = queue_pages.contains(db, QueueFilter(), example_id)
        inside = exists and queue_pages.contains(db, f, example_id)
        self._post(ExampleLocated(example_id, f, exists, inside, switch))

    # ---------------------------------------------------------- named views
    def list_views(self) -> None:
        """Read the reviewer's named views."""
        self._start(self._list_views, group="views", exclusive=True)

    async def _list_views(self) -> None:
        self._post(ViewsListed(await self.store.read(lambda db: saved_views.names(db, self.me or ""))))

    def save_view(self, name: str, f: QueueFilter) -> None:
        """Save f as the reviewer's view called name (on the writer thread, after the steps before it)."""
        self._start(self._save_view, name, f, group="views")

    async def _save_view(self, name: str, f: QueueFilter) -> None:
        try:
            await self.store.write(lambda db: saved_views.save(db, self.me or "", name, f, now()))
        except saved_views.ViewNameError as exc:
            self._post(ViewSaved(name, str(exc)))
        else:
            self._post(ViewSaved(name.strip()))

    def open_view(self, name: str) -> None:
        """Read the reviewer's view called name."""
        self._start(self._open_view, name, group="views", exclusive=True)

    async def _open_view(self, name: str) -> None:
        self._post(ViewOpened(name, await self.store.read(lambda db: saved_views.load(db, self.me or "", name))))

    # -------------------------------------------------------------- writes
    def await_step(self, future: Future[Recorded]) -> None:
        """Report a step once stored (the writer stores it even if this worker is cancelled by a quit)."""
        self._start(self._await_step, future, group="write")

    async def _await_step(self, future: Future[Recorded]) -> None:
        done = await self.store.stored(future)
        applied = done.applied
        step = applied.step
        if step.op == "record":
            self._post(DecisionRecorded(step.action, applied.group or 0, list(step.ids), done.details))
        elif applied.group is None:
            self._post(StepRefused(applied.message))
        else:
            self._post(StepUndone(step.op == "redo", applied.group, applied.action, list(applied.ids)))

    def rerun(self, example_id: int, settings: Any) -> None:
        """Re-run an example's reflection (a new version) through the generation pipeline."""
        self._start(self._rerun, example_id, settings, group="reflect", thread=True)

    def _rerun(self, example_id: int, settings: Any) -> None:
        from pipeline.api.endpoint import ClientConfigError
        from pipeline.api.retry import ApiError
        from pipeline.generate import GenerateError, reflect_one

        self._post(ReflectionStarted(example_id))
        try:
            gen = reflect_one(self.store.path, example_id, settings=settings)
        except (ClientConfigError, ApiError, GenerateError) as exc:
            self._post(ReflectionFailed(example_id, str(exc)))
            return
        self._post(ReflectionCompleted(example_id, gen.id))
