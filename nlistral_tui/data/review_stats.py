"""What the stats screen shows: the store's statistics (as `nlistral stats`) with the review read model's."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlite_utils import Database

from db.cartography import DynamicsSummary, ExampleDynamics, Thresholds, example_rows, latest_dynamics_run, run_summary
from db.review_stats import ReviewPace, accepted_balance, review_pace
from pipeline.settings import Cartography
from pipeline.stats import StoreStats, collect_stats


@dataclass(frozen=True)
class DataMap:
    """The latest train run's training dynamics, for the stats screen's scatter (nlistral cartography)."""

    summary: DynamicsSummary
    rows: list[ExampleDynamics]
    thresholds: Thresholds


@dataclass(frozen=True)
class ReviewStats:
    """What the stats screen shows beyond `nlistral stats`."""

    store: StoreStats  # collect_stats(): counts by state, thought model against gold, lengths
    balance: dict[str, dict[str, int]]  # "gold" / "curated" -> {"1": n, "0": n, "none": n}
    pace: ReviewPace  # decisions per day and per reviewer
    data_map: DataMap | None = field(default=None)  # None: no train run has stored dynamics


def data_map(db: Database, thresholds: Thresholds) -> DataMap | None:
    """The latest train run with dynamics, its region counts and every example's point; None without one."""
    run = latest_dynamics_run(db)
    summary = run_summary(db, run, thresholds) if run is not None else None
    if run is None or summary is None:
        return None
    return DataMap(summary, example_rows(db, run, thresholds, with_text=False), thresholds)


def review_stats(db: Database, thresholds: Thresholds | None = None) -> ReviewStats:
    """Everything the stats screen shows (several full scans on a big store: run it in a worker); thresholds
    default to the [cartography] defaults."""
    return ReviewStats(collect_stats(db), accepted_balance(db), review_pace(db),
                       data_map(db, thresholds or Cartography()))
