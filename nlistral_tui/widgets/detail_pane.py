"""The detail pane: the example under the cursor, side by side when wide and stacked when narrow (layout in
app.tcss). It keeps the details of the examples around the cursor, read ahead by its workers, which post
what they read as messages; and it re-runs the shown example's reflection."""
from __future__ import annotations

import importlib.util
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from textual import events, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.strip import Strip

from db.detail import ExampleDetail, load_details
from nlistral_tui.data.store import Store
from nlistral_tui.data.window import QueueWindow
from nlistral_tui.messages import DetailsLoaded, ReflectionCompleted, ReflectionFailed, ReflectionStarted
from nlistral_tui.widgets.detail_text import left_column, right_column
from nlistral_tui.widgets.text_pager import TextPager

CACHE_SIZE = 16
LOADING = Content.styled("Loading…", "$text-muted")
EMPTY_STORE = Content.styled(
    "This database holds no examples yet.\n\nImport pairs (and the original pipeline's thoughts and "
    "reflections) with `nlistral import FILE` (see `nlistral import --help`), generate thoughts with "
    "`nlistral generate`, or look around a ready-made one with `nlistral demo`.", "$text-muted")
EMPTY = Content.styled("Nothing to show: this queue is empty under the current search and filters.\n"
                       "Press c to clear them, 1-0 or [ ] for another queue, f to filter.", "$text-muted")


@dataclass(frozen=True)
class _Rendered:
    detail: ExampleDetail
    left: Content
    left_strips: list[Strip]
    right: Content
    right_strips: list[Strip]


class DetailPane(Horizontal, can_focus=False):
    """Two pagers of literal text; when narrow (right pager hidden by CSS) the left one holds both."""

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.detail: ExampleDetail | None = None
        self.details: dict[int, ExampleDetail] = {}  # of the examples around the cursor
        self.show_diff = False
        self.shown_at = time.monotonic()  # when the shown example was first shown
        self.run_id: int | None = None  # the evaluate run whose predictions the details show
        self._requested: set[int] = set()
        self._shown = self._empty_store = False
        self._cache: OrderedDict[tuple[Any, ...], _Rendered] = OrderedDict()

    def compose(self) -> ComposeResult:
        yield TextPager(id="detail-left")
        yield TextPager(id="detail-right")

    @property
    def stacked(self) -> bool:
        """True when the layout shows one column (the right pager is hidden)."""
        return not self.query_one("#detail-right", TextPager).display

    def _rendered(self, detail: ExampleDetail, show_diff: bool) -> _Rendered:
        left_pager, right_pager = self.query_one("#detail-left", TextPager), self.query_one("#detail-right", TextPager)
        stacked = self.stacked
        key = (detail.id, show_diff, stacked, left_pager.text_width, right_pager.text_width)
        hit = self._cache.get(key)
        if hit is not None and (hit.detail is detail or hit.detail == detail):
            self._cache.move_to_end(key)
            return hit
        left, right = left_column(detail), right_column(detail, show_diff)
        if stacked:
            left, right = Content.assemble(left, "\n\n", right), Content("")
        rendered = _Rendered(detail, left, left_pager.prepare(left), right,
                             [] if stacked else right_pager.prepare(right))
        self._cache[key] = rendered
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return rendered

    def prepare(self, detail: ExampleDetail) -> None:
        """Wrap an example ahead of time, so that showing it later is only a repaint."""
        if self.size.width:
            self._rendered(detail, self.show_diff)

    def show(self, detail: ExampleDetail | None, empty_store: bool = False) -> None:
        """Render an example (None: an empty queue, or an empty store)."""
        if detail is None or self.detail is None or detail.id != self.detail.id:
            self.shown_at = time.monotonic()
        self.detail, self._shown, self._empty_store = detail, True, empty_store
        left_pager, right_pager = self.query_one("#detail-left", TextPager), self.query_one("#detail-right", TextPager)
        if detail is None:
            left_pager.show(EMPTY_STORE if empty_store else EMPTY)
            right_pager.show(Content(""))
            return
        if not self.size.width:
            left_pager.show(left_column(detail))
            right_pager.show(right_column(detail, self.show_diff))
            return
        r = self._rendered(detail, self.show_diff)
        left_pager.show(r.left, r.left_strips)
        right_pager.show(r.right, r.right_strips)

    def page(self, down: bool) -> None:
        """Scroll the text by a page (both columns together)."""
        for pager in self.query(TextPager):
            pager.page(down)

    def toggle_diff(self) -> None:
        """Show the flawed thought against the improved one (on an edited example: the edit), or stop."""
        self.show_diff = not self.show_diff
        if self.detail is not None:
            self.show(self.detail)

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        if self._shown:
            self.call_after_refresh(self.show, self.detail, self._empty_store)
        else:
            self.query_one("#detail-left", TextPager).show(LOADING)

    # ------------------------------------------------- the examples around the cursor
    def prepare_neighbours(self, window: QueueWindow) -> None:
        """Wrap the next and previous examples now, while idle, so that moving to them is one repaint."""
        for delta in (1, -1):
            index = window.cursor + delta
            if 0 <= index < len(window.rows) and (d := self.details.get(window.rows[index].id)):
                self.prepare(d)

    def reset(self, details: dict[int, ExampleDetail]) -> None:
        """Keep only these details (those of a fresh window)."""
        self.details = dict(details)
        self._requested = set(self.details)

    def forget(self, ids: Iterable[int]) -> None:
        """Drop the details of these examples (they changed, or left the window)."""
        for i in ids:
            self.details.pop(i, None)
            self._requested.discard(i)

    def prefetch(self, window: QueueWindow, run_id: int | None) -> None:
        """Read the details near the cursor that are not here yet (at once when the cursor's own is missing)."""
        self.run_id = run_id
        missing = [i for i in window.prefetch_ids(self.details) if i not in self._requested]
        current = window.current
        if missing and (len(missing) >= 10 or (current and current.id in missing)):
            self._requested.update(missing)
            self.load(missing, run_id)

    @work(group="details", exit_on_error=False)
    async def load(self, ids: list[int], run_id: int | None) -> None:
        """Read the details of these examples."""
        self.post_message(DetailsLoaded(await self.store.read(lambda db: load_details(db, ids, run_id))))

    # ------------------------------------------------- re-running the reflection
    def rerun(self, settings: Any) -> None:
        """Re-run the shown example's reflection (a new version), when it has a thought and the pipeline is here."""
        d = self.detail
        if d is None:
            return
        if d.thought is None:
            self.notify("This example has no thought to reflect on yet: run `nlistral generate` first.",
                        severity="warning")
        elif importlib.util.find_spec("pipeline.generate") is None:
            self.notify("Re-running needs the generation pipeline (pipeline/generate.py), which this install "
                        "lacks.", severity="error")
        else:
            self._reflect(d.id, settings)

    @work(thread=True, group="reflect", exit_on_error=False)
    def _reflect(self, example_id: int, settings: Any) -> None:
        from pipeline.client import ApiError, ClientConfigError
        from pipeline.generate import GenerateError, reflect_one

        self.post_message(ReflectionStarted(example_id))
        try:
            gen = reflect_one(self.store.path, example_id, settings=settings)
        except (ClientConfigError, ApiError, GenerateError) as exc:
            self.post_message(ReflectionFailed(example_id, str(exc)))
            return
        self.post_message(ReflectionCompleted(example_id, gen.id))

    def on_reflection_started(self, msg: ReflectionStarted) -> None:
        self.notify(f"Re-running the reflection of #{msg.example_id}…", timeout=3)

    def on_reflection_completed(self, msg: ReflectionCompleted) -> None:
        self.notify(f"New reflection version for #{msg.example_id} (v shows the versions).")
        self._requested.discard(msg.example_id)
        self.load([msg.example_id], self.run_id)

    def on_reflection_failed(self, msg: ReflectionFailed) -> None:
        self.notify(f"Re-run of #{msg.example_id} failed: {msg.message}", severity="error", timeout=10,
                    markup=False)
