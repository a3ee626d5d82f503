"""The review screen: a queue pane and a detail pane; every decision is one key."""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import time
from collections import deque
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from db import queues
from db.journal import Step
from db.queues import QUEUE_TITLES, QUEUES, Facets, QueueFilter
from db.reviews import BIAS_CATEGORIES
from nlistral_tui.data.actions import Recorded, reload_after
from nlistral_tui.data.detail import ExampleDetail, load_details
from nlistral_tui.data.store import Store
from nlistral_tui.data.window import PAGE, QueueWindow, load_start, load_window
from nlistral_tui.messages import (
    CountsCounted, DecisionRecorded, DetailsLoaded, FacetsFound, PositionFound, ReflectionCompleted,
    ReflectionFailed, ReflectionStarted, RowsFetched, StepUndone, StoreChanged, WindowLoaded,
)
from nlistral_tui.screens.choice import ChoiceScreen
from nlistral_tui.screens.edit import Edit, EditScreen
from nlistral_tui.screens.filters import FilterScreen
from nlistral_tui.screens.prompt import PromptScreen
from nlistral_tui.screens.versions import VersionsScreen
from nlistral_tui.widgets.detail_pane import DetailPane
from nlistral_tui.widgets.detail_text import BIAS_NAMES
from nlistral_tui.widgets.queue_bar import QueueBar, QueueLine, queue_key
from nlistral_tui.widgets.queue_list import QueueList
from nlistral_tui.widgets.queue_progress import QueueProgress
from nlistral_tui.widgets.search_line import SearchLine

WATCH_S = 2.0
_STATUS_AFTER = {"accept": "accepted", "reject": "rejected", "edit": "edited"}


class ReviewScreen(Screen[None]):
    """One example at a time from a queue; decisions are written to the review log in key order."""

    AUTO_FOCUS = ""  # keys go to the screen's bindings (dialogs take focus while open)
    BINDINGS = [
        Binding("j,down", "next", "next", id="next", tooltip="next example"),
        Binding("k,up", "previous", "prev", id="previous", tooltip="previous example"),
        Binding("a", "accept", "accept", id="accept", tooltip="accept and move on"),
        Binding("r", "reject", "reject", id="reject", tooltip="reject and move on"),
        Binding("e", "edit", "edit", id="edit", tooltip="edit the improved thought and its label"),
        Binding("s", "skip", "skip", id="skip", tooltip="skip (stays pending) and move on"),
        Binding("u,ctrl+z", "undo", "undo", id="undo", tooltip="undo your last step (any time, any session)"),
        Binding("space,pagedown", "page(1)", "more", id="page_down", tooltip="scroll the text down"),
        Binding("question_mark", "app.help", "keys", id="help", tooltip="this list of keys"),
        Binding("U,ctrl+y", "redo", "redo", id="redo", tooltip="redo your last undone step"),
        Binding("b", "flag_bias", "bias", id="flag_bias", tooltip="flag labeler bias (category and note)"),
        Binding("l", "relabel", "relabel", id="relabel", tooltip="suggest a label beside gold"),
        Binding("R", "rerun", "re-run", id="rerun", tooltip="re-run the reflection (a new version)"),
        Binding("v", "versions", "versions", id="versions", tooltip="browse and choose reflection versions"),
        Binding("d", "toggle_diff", "diff", id="toggle_diff",
                tooltip="diff: flawed thought vs improved (on an edited example: the edit)"),
        Binding("slash", "search", "search", id="search", tooltip="full-text search (enter applies)"),
        Binding("f", "filter", "filter", id="filter", tooltip="filter: dataset, split, gold, model, run"),
        Binding("c", "clear_filter", "clear", id="clear_filter", tooltip="clear the search and the filters"),
        Binding("right_square_bracket", "cycle_queue(1)", "queue", id="next_queue", tooltip="next queue"),
        Binding("left_square_bracket", "cycle_queue(-1)", "queue", id="previous_queue", show=False,
                tooltip="previous queue"),
        Binding("g", "jump", "jump", id="jump", tooltip="jump to an example id"),
        Binding("A", "bulk('accept')", "accept all", id="bulk_accept", tooltip="accept everything in the filter"),
        Binding("X", "bulk('reject')", "reject all", id="bulk_reject", tooltip="reject everything in the filter"),
        Binding("f5,ctrl+l", "refresh", "refresh", id="refresh", tooltip="reload rows written elsewhere"),
        Binding("pageup", "page(-1)", "page up", id="page_up", show=False, tooltip="scroll the text up"),
        *(Binding(queue_key(q), f"queue('{q}')", QUEUE_TITLES[q], id=f"queue_{q}", show=False,
                  tooltip=f"queue: {QUEUE_TITLES[q]}") for q in QUEUES),
    ]

    def __init__(self, store: Store, reviewer: str, settings: Any, start_filter: QueueFilter | None = None) -> None:
        super().__init__()
        self.store, self.reviewer, self.settings = store, reviewer, settings
        self.filter = start_filter or QueueFilter()
        self._pick_start = start_filter is None  # open on disagreements when there are any
        self.window = QueueWindow()
        self.details: dict[int, ExampleDetail] = {}
        self.current: ExampleDetail | None = None
        self.counts: dict[str, int] | None = None
        self.decided: int | None = None
        self.facets: Facets | None = None
        self.show_diff = False
        self.shown_at = time.monotonic()
        self.latency: dict[str, deque[float]] = {k: deque(maxlen=100_000) for k in ("next", "filter", "search")}
        self._probe: tuple[str, float, int | None] | None = None
        self._requested: set[int] = set()
        self._fetching: set[bool] = set()
        self._pending_move = 0
        self._high_water: tuple[int, int, int] | None = None
        self.ready = False  # the first window has been shown

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="review-body"):
            with Vertical(id="queue-pane"):
                yield QueueBar(id="queue-bar")
                yield QueueLine(id="queue-line")
                yield SearchLine(id="search-line")
                yield QueueProgress(id="queue-progress")
                yield QueueList(id="queue-list")
            yield DetailPane(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self._search_line = self.query_one(SearchLine)  # on_key asks it about every key press
        self._paint_queue()
        if self._pick_start:
            self._load_start()
        else:
            self._load_window(self.filter, None)
        self._load_facets()
        self._check_store()  # the baseline: later checks compare with it
        self.set_interval(WATCH_S, self._check_store)

    # ---------------------------------------------------------------- actions
    def action_next(self) -> None:
        self.move(1)

    def action_previous(self) -> None:
        self.move(-1)

    def action_accept(self) -> None:
        self.decide("accept")

    def action_reject(self) -> None:
        self.decide("reject")

    def action_skip(self) -> None:
        self.decide("skip")

    def action_edit(self) -> None:
        if (d := self._need_current()) is not None:
            base = d.improved_thought
            self.app.push_screen(EditScreen(d.id, base, d.improved_label, gold=d.example.gold_label,
                                            suggested=d.state.suggested_label),
                                 lambda edit: self._edited(d, base, edit))

    def action_flag_bias(self) -> None:
        if (d := self._need_current()) is None:
            return
        choices = [(str(i), BIAS_NAMES[c], c) for i, c in enumerate(BIAS_CATEGORIES, 1)]
        if d.state.bias_category:
            choices.append(("c", "clear the flag", None))
        self.app.push_screen(ChoiceScreen(f"Flag labeler bias on #{d.id}", choices, note=d.state.bias_note or ""),
                             lambda result: self._flagged(d, result))

    def action_relabel(self) -> None:
        if (d := self._need_current()) is None:
            return
        choices = [("1", "suggest 1 entailment", 1), ("0", "suggest 0 no-entailment", 0),
                   ("c", "clear the suggestion", "clear")]
        title = f"Suggest a label for #{d.id} (gold {d.example.gold_label} is kept)"
        self.app.push_screen(ChoiceScreen(title, choices),
                             lambda label: label is not None and self.decide(
                                 "relabel", {"label": None if label == "clear" else label}, advance=False))

    def action_rerun(self) -> None:
        if (d := self._need_current()) is None:
            return
        if d.thought is None:
            self.notify("This example has no thought to reflect on yet: run `nlistral generate` first.",
                        severity="warning")
        elif importlib.util.find_spec("pipeline.generate") is None:
            self.notify("Re-running needs the generation pipeline (pipeline/generate.py), which this install "
                        "lacks.", severity="error")
        else:
            self._rerun_reflection(d.id)

    def action_versions(self) -> None:
        if (d := self._need_current()) is None:
            return
        if not d.reflections:
            self.notify("No reflection versions yet: press R to run one.", severity="warning")
            return
        self.app.push_screen(VersionsScreen(d), lambda gid: gid is not None and self.decide(
            "choose_reflection", {"generation_id": gid}, advance=False))

    def action_toggle_diff(self) -> None:
        self.show_diff = not self.show_diff
        if self.current is not None:
            self.query_one(DetailPane).show(self.current, self.show_diff)

    def action_undo(self) -> None:
        self._flip(redo=False)

    def action_redo(self) -> None:
        self._flip(redo=True)

    def action_search(self) -> None:
        self._search_line.open(self.filter.search)

    def on_key(self, event: events.Key) -> None:
        """While the search line is open, every key is typing (no binding fires)."""
        line = self._search_line
        if not line.is_open:
            return
        event.stop()
        event.prevent_default()
        text = line.handle(event)
        if text is not None:
            self.set_filter(self.filter.replace(search=text), "search")

    def action_filter(self) -> None:
        if self.facets is None:
            self.notify("Still reading the datasets and models; try again in a moment.")
            return
        self.app.push_screen(FilterScreen(self.filter, self.facets),
                             lambda f: f is not None and self.set_filter(f, "filter"))

    def action_clear_filter(self) -> None:
        self.set_filter(QueueFilter(queue=self.filter.queue), "filter")

    def action_queue(self, queue: str) -> None:
        self.set_filter(self.filter.replace(queue=queue), "filter")

    def action_cycle_queue(self, step: int) -> None:
        self.action_queue(QUEUES[(QUEUES.index(self.filter.queue) + step) % len(QUEUES)])

    def action_jump(self) -> None:
        self.app.push_screen(PromptScreen("Jump to example id", "e.g. 1234", "integer"), self._jump_to)

    def action_bulk(self, action: str) -> None:
        self._count_bulk(action, self.filter)

    def action_refresh(self) -> None:
        focus = self.current.id if self.current else None
        self._load_window(self.filter, focus)
        self._load_facets()

    def action_page(self, step: int) -> None:
        self.query_one(DetailPane).page(step > 0)

    # ------------------------------------------------------------- navigation
    def move(self, delta: int) -> None:
        """Move the cursor by delta rows, fetching more rows when the window ends."""
        if not self.window.can_move(delta):
            ahead = delta > 0
            if (self.window.at_end if ahead else self.window.at_start) or not self.window.rows:
                self.notify("End of the queue." if ahead else "Start of the queue.", timeout=2)
            else:
                self._pending_move = delta
                self._fetch_rows(ahead)
            return
        started = time.perf_counter()
        self.window.move(delta)
        self._probe = ("next", started, self.window.current.id if self.window.current else None)
        self._show_cursor()

    def set_filter(self, new: QueueFilter, probe: str) -> None:
        """Show another queue or filter, from its first example."""
        self._start_probe(probe)
        self._pick_start = False
        self.filter, self.counts, self.decided = new, None, None
        self._paint_queue()
        self._load_window(new, None)

    def _jump_to(self, text: str | None) -> None:
        if text:  # None: cancelled; "": nothing typed
            try:
                self._locate(int(text), switch=True)
            except ValueError:
                self.notify(f"{text!r} is not an example id; type a whole number.", severity="error")

    def _start_probe(self, kind: str, target: int | None = None) -> None:
        """Time from now to the refresh that shows target (None: whatever shows first)."""
        self._probe = (kind, time.perf_counter(), target)

    def _finish_probe(self, kind: str, started: float) -> None:
        self.latency[kind].append((time.perf_counter() - started) * 1000)

    def _show_cursor(self, reset_view: bool = False) -> None:
        row = self.window.current
        self.query_one(QueueList).show(self.window.rows, self.window.cursor, reset=reset_view)
        self._paint_progress()
        if row is None:
            self._display(None)
        elif (detail := self.details.get(row.id)) is not None:
            self._display(detail)
            # Reading ahead competes for the interpreter with painting: start it once this frame is out.
            self.call_after_refresh(self._prefetch)
            return
        self._prefetch()

    def _display(self, detail: ExampleDetail | None) -> None:
        changed = detail is None or self.current is None or detail.id != self.current.id
        self.current = detail
        if changed:
            self.shown_at = time.monotonic()
        empty_store = detail is None and not self.window.rows and self.filter == QueueFilter()
        self.query_one(DetailPane).show(detail, self.show_diff, empty_store)
        if self._probe is not None and (self._probe[2] is None or (detail and detail.id == self._probe[2])):
            kind, started, _ = self._probe
            self._probe = None
            self.call_after_refresh(self._finish_probe, kind, started)
        self.call_after_refresh(self._prepare_neighbours)

    def _prepare_neighbours(self) -> None:
        """Wrap the next and previous examples now, while idle, so that moving to them is one repaint;
        and collect the young garbage now rather than in the middle of the next key's frame."""
        gc.collect(0)
        pane = self.query_one(DetailPane)
        for delta in (1, -1):
            index = self.window.cursor + delta
            if 0 <= index < len(self.window.rows) and (d := self.details.get(self.window.rows[index].id)):
                pane.prepare(d)

    def _prefetch(self) -> None:
        if self.window.wants_after():
            self._fetch_rows(True)
        if self.window.wants_before():
            self._fetch_rows(False)
        missing = [i for i in self.window.prefetch_ids(self.details) if i not in self._requested]
        current = self.window.current
        if missing and (len(missing) >= 10 or (current and current.id in missing)):
            self._requested.update(missing)
            self._load_details(missing, self.filter.run_id)

    # --------------------------------------------------------------- deciding
    def _need_current(self) -> ExampleDetail | None:
        if self.current is None:
            self.notify("No example is shown: this queue is empty or still loading.", severity="warning")
        return self.current

    def decide(self, action: str, payload: dict[str, Any] | None = None, advance: bool | None = None) -> None:
        """Record a decision on the shown example; accept, reject, edit and skip move on to the next one."""
        d = self._need_current()
        if d is None:
            return
        seconds = round(time.monotonic() - self.shown_at, 2)
        step = Step("record", self.reviewer, action, (d.id,), payload or {}, seconds, at=self._at(d.id))
        if not self._submit(step, [d.id]):
            return
        status = {"status": _STATUS_AFTER[action]} if action in _STATUS_AFTER else {}
        self.window.mark(d.id, unsaved=True, **status)
        if advance if advance is not None else action in (*_STATUS_AFTER, "skip"):
            if self.window.can_move(1) or not self.window.at_end:
                self.move(1)
            else:
                self._show_cursor()
        else:
            self.query_one(QueueList).show(self.window.rows, self.window.cursor)

    def _at(self, example_id: int | None) -> dict[str, Any]:
        """Where the reviewer stands, journaled with each step so the app reopens there."""
        return {"filter": dataclasses.asdict(self.filter), "example": example_id}

    def _submit(self, step: Step, reload: list[int]) -> bool:
        """Journal the step (on disk before anything shows it as made) and have the writer store it."""
        try:
            future = self.store.submit(step, reload_after(reload, self.filter.run_id))
        except OSError as exc:
            self.notify(f"Not saved: the decision journal {self.store.journal.path if self.store.journal else ''} "
                        f"cannot be written ({exc.strerror or exc}). Free some disk space and press the key again.",
                        severity="error", timeout=15, markup=False)
            return False
        self._await_step(future)
        return True

    def save_position(self) -> None:
        """Journal where the reviewer stands (on quitting), so the app reopens here."""
        if self.ready:
            current = self.window.current
            with contextlib.suppress(OSError, ValueError):
                self.store.submit(Step("position", self.reviewer, at=self._at(current.id if current else None)))

    def _edited(self, d: ExampleDetail, base: str, edit: Edit | None) -> None:
        if edit is not None and self.current is not None and self.current.id == d.id:
            self.decide("edit", {"thought": edit.thought, "label": edit.label, "base": base})

    def _flagged(self, d: ExampleDetail, result: tuple[str | None, str] | None) -> None:
        if result is None or self.current is None or self.current.id != d.id:
            return
        category, note = result
        if category is None:
            self.decide("unflag_bias", advance=False)
        else:
            self.decide("flag_bias", {"category": category, "note": note}, advance=False)

    # ---------------------------------------------------------------- workers
    # Reads a key press waits on go through the store's one reader thread (a warm page cache);
    # counts and other slow scans run in ordinary thread workers beside them.
    @work(group="window", exclusive=True, exit_on_error=False)
    async def _load_start(self) -> None:
        reviewer = self.reviewer
        loaded = await self.store.read(lambda db: load_start(db, reviewer))
        self.post_message(WindowLoaded(loaded.filter, loaded.rows, loaded.focus_id, loaded.at_start, loaded.at_end,
                                       loaded.details))

    @work(group="window", exclusive=True, exit_on_error=False)
    async def _load_window(self, f: QueueFilter, focus_id: int | None, pick_start: bool = False) -> None:
        loaded = await self.store.read(lambda db: load_window(db, f, focus_id, pick_start))
        self.post_message(WindowLoaded(loaded.filter, loaded.rows, focus_id, loaded.at_start, loaded.at_end,
                                       loaded.details))

    @work(group="rows", exit_on_error=False)
    async def _fetch_rows_worker(self, f: QueueFilter, after: bool, bound: int) -> None:
        rows = await self.store.read(lambda db: queues.page_after(db, f, bound, PAGE) if after
                                     else queues.page_before(db, f, bound, PAGE))
        self.post_message(RowsFetched(f, rows, after, len(rows) < PAGE))

    def _fetch_rows(self, after: bool) -> None:
        if after in self._fetching or not self.window.rows:
            return
        self._fetching.add(after)
        bound = self.window.rows[-1].id if after else self.window.rows[0].id
        self._fetch_rows_worker(self.filter, after, bound)

    @work(group="details", exit_on_error=False)
    async def _load_details(self, ids: list[int], run_id: int | None) -> None:
        self.post_message(DetailsLoaded(await self.store.read(lambda db: load_details(db, ids, run_id))))

    @work(thread=True, group="counts", exclusive=True, exit_on_error=False)
    def _count(self, f: QueueFilter, anchor_id: int | None) -> None:
        db = self.store.db()
        if anchor_id is not None:
            self.post_message(PositionFound(f, anchor_id, queues.position(db, f, anchor_id)))
        self.post_message(CountsCounted(f, queues.counts(db, f), queues.decided_count(db, f)))

    @work(thread=True, group="facets", exclusive=True, exit_on_error=False)
    def _load_facets(self) -> None:
        self.post_message(FacetsFound(queues.facets(self.store.db())))

    @work(thread=True, group="watch", exclusive=True, exit_on_error=False)
    def _check_store(self) -> None:
        self.post_message(StoreChanged(queues.high_water(self.store.db())))

    @work(thread=True, group="refresh", exclusive=True, exit_on_error=False)
    def _soft_refresh(self, ids: list[int], cached: list[int], run_id: int | None) -> None:
        db = self.store.db()
        self.post_message(DetailsLoaded(load_details(db, cached, run_id)))
        fresh = queues.rows_by_id(db, ids)
        self.app.call_from_thread(self._rows_refreshed, fresh)

    @work(group="write", exit_on_error=False)
    async def _await_step(self, future: Any) -> None:
        """Report a stored step (the writer stores it even if this worker is cancelled by a quit)."""
        done: Recorded = await self.store.stored(future)
        applied = done.applied
        step = applied.step
        if step.op == "record":
            self.post_message(DecisionRecorded(step.action, applied.group or 0, list(step.ids), done.details))
        elif applied.group is None:
            self.notify(applied.message, severity="warning", markup=False)
        else:
            self.post_message(StepUndone(step.op == "redo", applied.group, applied.action, list(applied.ids)))

    def _flip(self, redo: bool) -> None:
        self._submit(Step("redo" if redo else "undo", self.reviewer), [])

    @work(thread=True, group="bulk", exclusive=True, exit_on_error=False)
    def _count_bulk(self, action: str, f: QueueFilter) -> None:
        undecided, decided = queues.ids_by_decision(self.store.db(), f)
        self.app.call_from_thread(self._confirm_bulk, action, f, undecided, decided)

    @work(thread=True, group="jump", exclusive=True, exit_on_error=False)
    def _locate(self, example_id: int, switch: bool) -> None:
        """Show an example: in the current queue if it is there, else under all (switch) or not at all."""
        db, f, say = self.store.db(), self.filter, self.app.call_from_thread
        if not db.execute("SELECT 1 FROM examples WHERE id = ?", [example_id]).fetchone():
            say(self.notify, f"No example with id {example_id} in this database.", severity="error")
            return
        if not queues.contains(db, f, example_id):
            if not switch:
                say(self.action_refresh)
                return
            say(self.notify, f"#{example_id} is not in {f.describe()}; showing it under all.", markup=False)
            f = QueueFilter()
        say(self._go_to, f, example_id)

    @work(thread=True, group="reflect", exit_on_error=False)
    def _rerun_reflection(self, example_id: int) -> None:
        from pipeline.client import ApiError, ClientConfigError
        from pipeline.generate import GenerateError, reflect_one

        self.post_message(ReflectionStarted(example_id))
        try:
            gen = reflect_one(self.store.path, example_id, settings=self.settings)
        except (ClientConfigError, ApiError, GenerateError) as exc:
            self.post_message(ReflectionFailed(example_id, str(exc)))
            return
        self.post_message(ReflectionCompleted(example_id, gen.id))

    # --------------------------------------------------------------- handlers
    def on_window_loaded(self, msg: WindowLoaded) -> None:
        if msg.filter != self.filter and not self._pick_start:
            return
        self._pick_start = False
        self.filter = msg.filter
        self.details = dict(msg.details)
        self._requested = set(self.details)
        self._fetching.clear()
        self.window.reset(msg.rows, msg.focus_id, msg.at_start, msg.at_end)
        self._paint_queue()
        self._show_cursor(reset_view=True)
        if not self.ready:
            self.ready = True
            self.app.call_after_refresh(self.app.quiet_gc)
        self._count(self.filter, msg.rows[0].id if msg.rows else None)

    def on_rows_fetched(self, msg: RowsFetched) -> None:
        self._fetching.discard(msg.after)
        if msg.filter != self.filter:
            return
        dropped = self.window.extend(msg.rows, msg.after, msg.exhausted)
        for i in dropped:
            self.details.pop(i, None)
            self._requested.discard(i)
        if dropped and msg.after:
            self.query_one(QueueList).shift(len(dropped))
        if self._pending_move and self.window.can_move(self._pending_move):
            delta, self._pending_move = self._pending_move, 0
            self.move(delta)
        else:
            self._pending_move = 0
            self.query_one(QueueList).show(self.window.rows, self.window.cursor)
            self._prefetch()

    def on_details_loaded(self, msg: DetailsLoaded) -> None:
        self.details.update(msg.details)
        row = self.window.current
        if row is not None and row.id in msg.details and msg.details[row.id] != self.current:
            self._display(msg.details[row.id])

    def on_counts_counted(self, msg: CountsCounted) -> None:
        if msg.filter == self.filter:
            self.counts, self.decided = msg.counts, msg.decided
            self._paint_queue()

    def on_position_found(self, msg: PositionFound) -> None:
        if msg.filter == self.filter and self.window.rows and self.window.rows[0].id == msg.anchor_id:
            self.window.base_position = msg.position
            self._paint_progress()

    def on_facets_found(self, msg: FacetsFound) -> None:
        self.facets = msg.facets

    def on_decision_recorded(self, msg: DecisionRecorded) -> None:
        self.details.update(msg.details)
        for i, d in msg.details.items():
            self.window.mark(i, status=d.state.status, flagged=d.state.bias_category is not None,
                             suggested_label=d.state.suggested_label, unsaved=False)
        if self.current is not None and self.current.id in msg.details:
            self._display(msg.details[self.current.id])
        if len(msg.ids) > 1:
            verb = {"accept": "Accepted", "reject": "Rejected"}.get(msg.action, msg.action)
            self.notify(f"{verb} {len(msg.ids):,} examples (one step: u undoes it).")
            self.action_refresh()
        self.query_one(QueueList).show(self.window.rows, self.window.cursor)
        self._count(self.filter, None)

    def on_step_undone(self, msg: StepUndone) -> None:
        what = f"#{msg.ids[0]}" if len(msg.ids) == 1 else f"{len(msg.ids):,} examples"
        self.notify(f"{'Redid' if msg.redo else 'Undid'} {msg.action.replace('_', ' ')} on {what}.")
        for i in msg.ids:
            self.details.pop(i, None)
            self._requested.discard(i)
        if len(msg.ids) == 1:
            self._locate(msg.ids[0], switch=False)
        else:
            self.action_refresh()

    def on_store_changed(self, msg: StoreChanged) -> None:
        if self._high_water is not None and msg.high_water != self._high_water:
            ids = [r.id for r in self.window.rows]
            cached = [i for i in ids if i in self.details]
            self._soft_refresh(ids, cached, self.filter.run_id)
            self._count(self.filter, None)
            if self.window.at_end and msg.high_water[0] != self._high_water[0]:
                self.window.at_end = False
                self._fetch_rows(True)
        self._high_water = msg.high_water

    def on_reflection_started(self, msg: ReflectionStarted) -> None:
        self.notify(f"Re-running the reflection of #{msg.example_id}…", timeout=3)

    def on_reflection_completed(self, msg: ReflectionCompleted) -> None:
        self.notify(f"New reflection version for #{msg.example_id} (v shows the versions).")
        self._requested.discard(msg.example_id)
        self._load_details([msg.example_id], self.filter.run_id)

    def on_reflection_failed(self, msg: ReflectionFailed) -> None:
        self.notify(f"Re-run of #{msg.example_id} failed: {msg.message}", severity="error", timeout=10,
                    markup=False)

    @on(QueueList.RowClicked)
    def _row_clicked(self, msg: QueueList.RowClicked) -> None:
        if self.window.move_to(msg.index):
            self._show_cursor()

    # ---------------------------------------------------------------- helpers
    def _rows_refreshed(self, fresh: dict[int, queues.QueueRow]) -> None:
        self.window.update_rows(fresh)
        self.query_one(QueueList).show(self.window.rows, self.window.cursor)

    def _go_to(self, f: QueueFilter, example_id: int) -> None:
        if f != self.filter:
            self.filter, self.counts, self.decided = f, None, None
        self._load_window(f, example_id)

    def _confirm_bulk(self, action: str, f: QueueFilter, undecided: list[int], decided: list[int]) -> None:
        """Ask before a bulk step: by default it takes only the undecided examples; replacing earlier
        decisions (edits among them) needs its own key."""
        if f != self.filter:
            return
        if not undecided and not decided:
            self.notify("Nothing to do: the current filter selects no examples.", severity="warning")
            return
        verb = action
        choices: list[tuple[str, str, Any]] = []
        if undecided:
            choices.append(("y", f"yes, {verb} the {len(undecided):,} undecided (one undo step)", undecided))
        if decided:
            choices.append(("a", f"{verb} all {len(undecided) + len(decided):,}, replacing {len(decided):,} "
                                 "decisions (edits too)", undecided + decided))
        choices.append(("n", "no", None))
        title = f"{verb.capitalize()} in {f.describe()}? {len(undecided):,} undecided · {len(decided):,} decided"
        self.app.push_screen(ChoiceScreen(title, choices), lambda chosen: chosen and self._submit(
            Step("record", self.reviewer, action, tuple(sorted(chosen))), []))

    def _paint_queue(self) -> None:
        self._search_line.show(self.filter.search)
        self.query_one(QueueBar).show(self.filter, self.counts)
        self.query_one(QueueLine).show(self.filter, self.counts)
        self.sub_title = self.filter.describe()
        self._paint_progress()

    def _paint_progress(self) -> None:
        pos = self.window.position
        total = None if self.counts is None else self.counts.get(self.filter.queue)
        self.query_one(QueueProgress).show(None if pos is None else pos + 1, total, self.decided)
