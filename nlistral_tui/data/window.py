"""The queue window: a few hundred rows around the cursor, grown at either end as the cursor nears it."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db import positions, queue_pages
from db.detail import ExampleDetail, load_details
from db.queues import QueueFilter, QueueRow, filter_from

MAX_ROWS = 400  # rows kept; beyond this the far end is dropped
MARGIN = 60  # fetch more rows when the cursor is this close to an end of the window
AHEAD, BEHIND = 30, 5  # details prefetched ahead of / behind the cursor
PAGE = 100  # rows fetched at a time


@dataclass(frozen=True)
class WindowLoad:
    """A fresh window: rows around focus_id (or from the start), whether the queue goes on, nearby details."""

    filter: QueueFilter
    rows: list[QueueRow]
    at_start: bool
    at_end: bool
    details: dict[int, ExampleDetail]
    focus_id: int | None = None


def load_window(db: Database, f: QueueFilter, focus_id: int | None, pick_start: bool = False) -> WindowLoad:
    """Read a window of the queue; pick_start opens on the disagreements when there are any."""
    if pick_start and queue_pages.page_after(db, f.replace(queue="disagreements"), None, 1):
        f = f.replace(queue="disagreements")
    if focus_id is None:
        before, after = [], queue_pages.page_after(db, f, None, PAGE)
    else:
        before = queue_pages.page_before(db, f, focus_id, PAGE // 2)
        after = queue_pages.page_from(db, f, focus_id, PAGE)
    near = [r.id for r in after[:AHEAD]] + [r.id for r in before[-BEHIND:]]
    return WindowLoad(f, before + after, len(before) < PAGE // 2, len(after) < PAGE, load_details(db, near, f.run_id),
                      focus_id)


def load_start(db: Database, reviewer: str) -> WindowLoad:
    """Where the reviewer left off (their queue and filter, on the example they were at, or the one
    after the example they last decided); without a saved place, what is assigned to them and not decided
    yet, else the disagreements when there are any."""
    saved = positions.load(db, reviewer)
    if saved is not None:
        f = filter_from(saved.filter)  # None: a place saved by another version of the app
        if f is not None:
            f = f.for_reviewer(reviewer)
            focus = saved.example_id
            if focus is not None and saved.decided:
                after = queue_pages.page_after(db, f, focus, 1)
                focus = after[0].id if after else focus
            return load_window(db, f, focus)
    mine = QueueFilter(queue="mine", me=reviewer)
    if queue_pages.page_after(db, mine, None, 1):  # a new reviewer with work assigned starts on it
        return load_window(db, mine, None)
    return load_window(db, QueueFilter(), None, pick_start=True)


class QueueWindow:
    """Rows (in id order), the cursor index, and whether the queue goes on past either end."""

    def __init__(self) -> None:
        self.rows: list[QueueRow] = []
        self.cursor = -1
        self.at_start = True
        self.at_end = True
        self.base_position: int | None = None  # the queue index of rows[0], once counted

    def reset(self, rows: list[QueueRow], focus_id: int | None, at_start: bool, at_end: bool) -> None:
        """Replace the rows; the cursor goes to focus_id, else the first row after it, else the last row."""
        self.rows, self.at_start, self.at_end, self.base_position = rows, at_start, at_end, None
        if not rows:
            self.cursor = -1
        elif focus_id is None:
            self.cursor = 0
        else:
            exact = next((i for i, r in enumerate(rows) if r.id == focus_id), None)  # a ranked queue: not id order
            self.cursor = exact if exact is not None else next(
                (i for i, r in enumerate(rows) if r.id >= focus_id), len(rows) - 1)

    @property
    def current(self) -> QueueRow | None:
        """The row under the cursor."""
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    @property
    def position(self) -> int | None:
        """The cursor's 0-based index in the whole queue, once the window's start was counted."""
        if self.base_position is None or self.cursor < 0:
            return None
        return self.base_position + self.cursor

    def can_move(self, delta: int) -> bool:
        """Whether the cursor can move by delta within the rows already loaded."""
        return 0 <= self.cursor + delta < len(self.rows)

    def move(self, delta: int) -> bool:
        """Move the cursor within the loaded rows; False when that would leave them."""
        if not self.can_move(delta):
            return False
        self.cursor += delta
        return True

    def move_to(self, index: int) -> bool:
        """Put the cursor on a row index of the window."""
        if not 0 <= index < len(self.rows):
            return False
        self.cursor = index
        return True

    def wants_after(self) -> bool:
        """More rows should be fetched after the window's end."""
        return not self.at_end and len(self.rows) - self.cursor <= MARGIN

    def wants_before(self) -> bool:
        """More rows should be fetched before the window's start."""
        return not self.at_start and self.cursor <= MARGIN

    def extend(self, rows: list[QueueRow], after: bool, exhausted: bool) -> list[int]:
        """Add fetched rows at one end (dropping the far end past MAX_ROWS); returns the dropped ids."""
        known = {r.id for r in self.rows}
        rows = [r for r in rows if r.id not in known]
        dropped: list[QueueRow] = []
        if after:
            self.rows = self.rows + rows
            self.at_end = exhausted
            excess = len(self.rows) - MAX_ROWS
            if excess > 0 and self.cursor - excess >= MARGIN:
                dropped, self.rows = self.rows[:excess], self.rows[excess:]
                self.cursor -= excess
                self.at_start = False
                if self.base_position is not None:
                    self.base_position += excess
        else:
            self.rows = rows + self.rows
            self.cursor += len(rows)
            self.at_start = exhausted
            if self.base_position is not None:
                self.base_position -= len(rows)
            excess = len(self.rows) - MAX_ROWS
            if excess > 0 and len(self.rows) - excess - self.cursor > MARGIN:
                dropped, self.rows = self.rows[-excess:], self.rows[:-excess]
                self.at_end = False
        return [r.id for r in dropped]

    def prefetch_ids(self, have: Iterable[int]) -> list[int]:
        """Ids near the cursor whose details are not loaded yet, nearest first."""
        have = set(have)
        start, end = max(0, self.cursor - BEHIND), min(len(self.rows), self.cursor + AHEAD)
        order = list(range(self.cursor, end)) + list(range(self.cursor - 1, start - 1, -1))
        return [self.rows[i].id for i in order if 0 <= i and self.rows[i].id not in have]

    def index_of(self, example_id: int) -> int | None:
        """The window index of an example, if loaded."""
        return next((i for i, r in enumerate(self.rows) if r.id == example_id), None)

    def update_rows(self, fresh: dict[int, QueueRow]) -> None:
        """Replace rows whose state changed (same ids, new status or labels)."""
        self.rows = [fresh.get(r.id, r) for r in self.rows]

    def mark(self, example_id: int, **changes: Any) -> None:
        """Change fields of one loaded row (e.g. its status right after a decision)."""
        i = self.index_of(example_id)
        if i is not None:
            self.rows[i] = dataclasses.replace(self.rows[i], **changes)
