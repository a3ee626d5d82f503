"""The review read model of the stats screen: the curated label balance and the review pace."""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from sqlite_utils import Database

from db.curation import DEFAULT_POLICY, curated_label_sql
from db.reviews import DECISIONS

_ACTIVE_DECISIONS = (
    "FROM review_events e JOIN review_groups g ON g.group_id = e.group_id "
    f"WHERE g.active = 1 AND e.action IN ({', '.join(repr(a) for a in DECISIONS)})"
)


@dataclass(frozen=True)
class ReviewPace:
    """How fast decisions are made: per day and per reviewer."""

    per_day: list[tuple[str, int]]  # (UTC day, decisions), oldest first, the last 14 days with any
    by_reviewer: list[tuple[str, int, float | None]]  # reviewer, decisions, median seconds per decision
    median_seconds: float | None


def accepted_balance(db: Database, policy: str = DEFAULT_POLICY) -> dict[str, dict[str, int]]:
    """Label balance of the accepted and edited examples: gold, and the label a curated export under this policy
    trains them on (db.curation; "none" when it leaves them out). The stats screen shows the default policy,
    unanimous: examples the reviewers contest (and no one adjudicated) count as "none"."""
    out: dict[str, dict[str, int]] = {"gold": {}, "curated": {}}
    rows = db.execute(
        f"SELECT e.gold_label, {curated_label_sql(policy=policy)}, count(*) "
        "FROM review_state r JOIN examples e ON e.id = r.example_id "
        "WHERE r.status IN ('accepted', 'edited') GROUP BY 1, 2"
    ).fetchall()
    for gold, curated, n in rows:
        for key, label in (("gold", gold), ("curated", curated)):
            name = "none" if label is None else str(label)
            out[key][name] = out[key].get(name, 0) + n
    return out


def review_pace(db: Database) -> ReviewPace:
    """Decisions per day and per reviewer, with median seconds per decision (a full scan of the log)."""
    per_day = db.execute(f"SELECT substr(e.created_at, 1, 10) AS day, count(*) {_ACTIVE_DECISIONS} "
                         "GROUP BY day ORDER BY day DESC LIMIT 14").fetchall()
    seconds: dict[str, list[float | None]] = {}
    for reviewer, spent in db.execute(f"SELECT e.reviewer, e.seconds_spent {_ACTIVE_DECISIONS}"):
        seconds.setdefault(reviewer, []).append(spent)
    by_reviewer = []
    for reviewer, values in sorted(seconds.items(), key=lambda kv: -len(kv[1])):
        timed = [v for v in values if v is not None]
        by_reviewer.append((reviewer, len(values), median(timed) if timed else None))
    every = [v for values in seconds.values() for v in values if v is not None]
    return ReviewPace([(d, n) for d, n in reversed(per_day)], by_reviewer, median(every) if every else None)
