"""Small past-tense messages: the one way a worker (or the writer thread) reaches the UI is to post one.

Posting a message is thread-safe, so thread workers and async workers report alike; the handlers run on
the UI's event loop."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from db.detail import ExampleDetail
from db.queues import Facets, QueueFilter, QueueRow

if TYPE_CHECKING:  # the other screens are imported when first opened: the review screen starts without them
    from db.runs import Run
    from db.suspicion import RankingState
    from exports.lineage import ExportRecord, Manifest
    from exports.tally import ExportPlan
    from nlistral_tui.data.review_stats import ReviewStats
    from pipeline.agreement import AgreementReport


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
class StepRefused(Message):
    """A journaled step changed nothing (nothing to undo or redo, an example gone); message says why."""

    message: str


@dataclass
class RowsRefreshed(Message):
    """The current rows of the window's examples, re-read after the store changed."""

    rows: dict[int, QueueRow]


@dataclass
class BulkCounted(Message):
    """The examples a bulk action would take: the undecided ones and those already decided."""

    action: str
    filter: QueueFilter
    undecided: list[int]
    decided: list[int]


@dataclass
class ExampleLocated(Message):
    """Where an example asked for is: whether it exists and whether the filter it was looked for in holds it."""

    example_id: int
    filter: QueueFilter
    exists: bool
    in_filter: bool
    switch: bool  # show it under all when the filter does not hold it


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


@dataclass
class StatsComputed(Message):
    """The stats screen's numbers, computed."""

    stats: ReviewStats


@dataclass
class ExportScopesRead(Message):
    """The (dataset, split, examples) an export can select from, and the exports written so far, newest first."""

    scopes: list[tuple[str, str, int]]
    history: list[ExportRecord]


@dataclass
class ExportPlanned(Message):
    """The counts of the export the form describes."""

    plan: ExportPlan


@dataclass
class ExportPlanFailed(Message):
    """The export the form describes cannot be planned; message says why."""

    message: str


@dataclass
class ExportWaiting(Message):
    """An export's write waits (again) for another process that holds the store's write lock."""


@dataclass
class ExportWritten(Message):
    """An export was written; its manifest says where and what."""

    manifest: Manifest


@dataclass
class ExportFailed(Message):
    """An export could not be written; message says why."""

    message: str


@dataclass
class TrainListsLoaded(Message):
    """The exports to train on and the earlier training runs."""

    exports: list[ExportRecord]
    runs: list[Run]


@dataclass
class TrainDiffLoaded(Message):
    """What the highlighted export changes against the export of the last completed training run."""

    export_id: int
    text: str


@dataclass
class TrainOutput(Message):
    """A line a training run wrote."""

    line: str


@dataclass
class TrainExited(Message):
    """A training run ended with this exit code (130: cancelled)."""

    exit_code: int


@dataclass
class OrphansStored(Message):
    """Steps that ended sessions had journaled but not stored are now in the review log."""

    count: int


@dataclass
class StoreBusy(Message):
    """A write waits (again) for another process that holds the store's write lock."""


@dataclass
class GuidelinesRead(Message):
    """The guidelines file's Markdown, or (text None) why it could not be read and where to put one."""

    text: str | None
    error: str | None


@dataclass
class ViewsListed(Message):
    """The reviewer's named views (most recent first), read for the views dialog."""

    names: list[str]


@dataclass
class ViewSaved(Message):
    """The queue and filter were saved as a named view (error: why not, and what to do)."""

    name: str
    error: str | None = None


@dataclass
class ViewOpened(Message):
    """A named view was read: its filter, or None when it is gone or cannot be read by this version."""

    name: str
    filter: QueueFilter | None


@dataclass
class AgreementComputed(Message):
    """Agreement between the store's reviewers, and their pace (pipeline.agreement), for the stats screen."""

    report: AgreementReport


@dataclass
class SignalsCounted(Message):
    """The signal queues' counts under the filter's facets, and the stored suspicion ranking's state (None: never
    computed), for the triage list."""

    filter: QueueFilter
    counts: dict[str, int]
    ranking: RankingState | None


@dataclass
class RankingRefreshed(Message):
    """The suspicion ranking was computed again: how many examples it ranks."""

    suspects: int
