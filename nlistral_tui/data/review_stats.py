"""What the stats screen shows: the store's statistics (as `nlistral stats`) with the review read model's."""
from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from db.review_stats import accepted_balance, review_pace
from pipeline.stats import StoreStats, collect_stats


@dataclass(frozen=True)
class ReviewStats:
    """What the stats screen shows beyond `nlistral stats`."""

    store: StoreStats  # collect_stats(): counts by state, thought model against gold, lengths
    balance: dict[str, dict[str, int]]  # "gold" / "curated" -> {"1": n, "0": n, "none": n}
    per_day: list[tuple[str, int]]  # (UTC day, decisions), oldest first, the last 14 days with any
    by_reviewer: list[tuple[str, int, float | None]]  # reviewer, decisions, median seconds per decision
    median_seconds: float | None


def review_stats(db: Database) -> ReviewStats:
    """Everything the stats screen shows (several full scans on a big store: run it in a worker)."""
    pace = review_pace(db)
    return ReviewStats(collect_stats(db), accepted_balance(db), pace.per_day, pace.by_reviewer, pace.median_seconds)
