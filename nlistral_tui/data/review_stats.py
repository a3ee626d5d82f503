"""Review-side statistics for the stats screen: the curated label balance and the review pace."""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Any

from sqlite_utils import Database

from db.reviews import DECISIONS
from pipeline.stats import collect_stats

_ACTIVE_DECISIONS = (
    "FROM review_events e JOIN review_groups g ON g.group_id = e.group_id "
    f"WHERE g.active = 1 AND e.action IN ({', '.join(repr(a) for a in DECISIONS)})"
)


@dataclass(frozen=True)
class ReviewStats:
    """What the stats screen shows beyond `nlistral stats`."""

    store: dict[str, Any]  # collect_stats(): counts by state, thought model against gold, lengths
    balance: dict[str, dict[str, int]]  # "gold" / "curated" -> {"1": n, "0": n, "none": n}
    per_day: list[tuple[str, int]]  # (UTC day, decisions), oldest first, the last 14 days with any
    by_reviewer: list[tuple[str, int, float | None]]  # reviewer, decisions, median seconds per decision
    median_seconds: float | None


def accepted_balance(db: Database) -> dict[str, dict[str, int]]:
    """Label balance of the accepted and edited examples: gold, and the label the curated example carries."""
    out: dict[str, dict[str, int]] = {"gold": {}, "curated": {}}
    rows = db.execute(
        "SELECT e.gold_label, CASE WHEN r.status = 'edited' THEN r.edited_label "
        "WHEN e.reflection_id IS NOT NULL THEN e.reflection_label ELSE e.thought_label END, count(*) "
        "FROM review_state r JOIN examples e ON e.id = r.example_id "
        "WHERE r.status IN ('accepted', 'edited') GROUP BY 1, 2"
    ).fetchall()
    for gold, curated, n in rows:
        for key, label in (("gold", gold), ("curated", curated)):
            name = "none" if label is None else str(label)
            out[key][name] = out[key].get(name, 0) + n
    return out


def review_stats(db: Database) -> ReviewStats:
    """Everything the stats screen shows (several full scans on a big store: run it in a worker)."""
    per_day = db.execute(
        f"SELECT substr(e.created_at, 1, 10) AS day, count(*) {_ACTIVE_DECISIONS} GROUP BY day ORDER BY day DESC LIMIT 14"
    ).fetchall()
    seconds: dict[str, list[float]] = {}
    for reviewer, spent in db.execute(f"SELECT e.reviewer, e.seconds_spent {_ACTIVE_DECISIONS}"):
        seconds.setdefault(reviewer, []).append(spent)
    by_reviewer = []
    for reviewer, values in sorted(seconds.items(), key=lambda kv: -len(kv[1])):
        timed = [v for v in values if v is not None]
        by_reviewer.append((reviewer, len(values), median(timed) if timed else None))
    every = [v for values in seconds.values() for v in values if v is not None]
    return ReviewStats(
        store=collect_stats(db),
        balance=accepted_balance(db),
        per_day=[(d, n) for d, n in reversed(per_day)],
        by_reviewer=by_reviewer,
        median_seconds=median(every) if every else None,
    )
