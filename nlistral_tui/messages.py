"""Small past-tense messages that workers post back to the screens (one per finished piece of work)."""
from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from db.queues import Facets, QueueFilter, QueueRow
from nlistral_tui.data.detail import ExampleDetail


@dataclass
class WindowLoaded(Message):
    """A fresh window of queue rows around focus_id (or from the start), for the filter it was asked for."""

    filter: QueueFilter
    rows: list[QueueRow]
    focus_id: int | None
    at_start: bool
    at_end: bool
    details: dict[int, ExampleDetail]


@dataclass
class RowsFetched(Message):
    """More rows beyond the window's end (after=True) or before its start."""

    filter: QueueFilter
    rows: list[QueueRow]
    after: bool
    exhausted: bool


@dataclass
class DetailsLoaded(Message):
    """Details of some examples (prefetched, or reloaded after a change)."""

    details: dict[int, ExampleDetail]


@dataclass
class CountsCounted(Message):
    """Every queue's count under the facets, and how much of the current queue is decided."""

    filter: QueueFilter
    counts: dict[str, int]
    decided: int


@dataclass
class PositionFound(Message):
    """How many queue rows come before anchor_id (so the cursor's row number is known)."""

    filter: QueueFilter
    anchor_id: int
    position: int


@dataclass
class FacetsFound(Message):
    """The datasets, splits, models and evaluate runs in the store."""

    facets: Facets


@dataclass
class DecisionRecorded(Message):
    """A review step was written (one group); details holds the examples it touched, reloaded."""

    action: str
    group: int
    ids: list[int]
    details: dict[int, ExampleDetail]


@dataclass
class StepUndone(Message):
    """An undo (or redo, when redo=True) flipped a whole step; ids are the examples it touched."""

    redo: bool
    group: int
    action: str
    ids: list[int]


@dataclass
class StoreChanged(Message):
    """Another process (or this one) wrote to the store since the last check."""

    high_water: tuple[int, int, int]


@dataclass
class ReflectionStarted(Message):
    """A re-run of the reflection of an example began."""

    example_id: int


@dataclass
class ReflectionCompleted(Message):
    """A new reflection version was stored."""

    example_id: int
    generation_id: int


@dataclass
class ReflectionFailed(Message):
    """A re-run failed; message says what to set or fix."""

    example_id: int
    message: str
