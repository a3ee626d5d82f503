"""What the stats screen shows: the store's statistics (as `nlistral stats`) with the review read model's."""
from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from db.review_stats import ReviewPace, accepted_balance, review_pace
from pipeline.stats import StoreStats, collect_stats


@dataclass(frozen=True)
class ReviewStats:
    """What the stats screen shows beyond `nlistral stats`."""

    store: StoreStats  # collect_stats(): counts by state, thought model against gold, lengths
    balance: dict[str, dict[str, int]]  # "gold" / "curated" -> {"1": n, "0": n, "none": n}
    pace: ReviewPace  # decisions per day and per reviewer


def review_stats(db: Database) -> ReviewStats:
    """Everything the stats screen shows (several full scans on a big store: run it in a worker)."""
    return ReviewStats(collect_stats(db), accepted_balance(db), review_pace(db))
