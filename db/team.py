"""Several reviewers on one store: each reviewer's standing decision, conflicts, adjudications, assignments.

A reviewer's standing decision on an example is their latest active accept, reject, edit or bias flag
(a flag they took back later does not count). Reviewers disagree when their standing decisions differ;
an adjudication (a decision recorded with payload {"adjudication": true}, by any reviewer) settles that.
All of it is derived from review_events in the same transaction as review_state (db/reviews.py).
"""
from __future__ import annotations

from sqlite_utils import Database

# What a reviewer's standing decision can be; "flag" is a bias flag (flag_bias in the log).
TEAM_DECISIONS = ("accept", "reject", "edit", "flag")

_ACTIVE = "FROM review_events e JOIN review_groups g ON g.group_id = e.group_id WHERE g.active = 1"
_TAKEN_BACK = (  # a bias flag the same reviewer unflagged later
    "e.action = 'flag_bias' AND EXISTS (SELECT 1 FROM review_events u "
    "JOIN review_groups ug ON ug.group_id = u.group_id WHERE ug.active = 1 AND u.action = 'unflag_bias' "
    "AND u.example_id = e.example_id AND u.reviewer = e.reviewer AND u.id > e.id)"
)


def _standing(among: str) -> str:
    """SELECT of each reviewer's standing decision (example_id, reviewer, decision, reason, comment,
    adjudication, id) among the active decision events that also meet the SQL condition `among` (over e)."""
    return f"""
        SELECT example_id, reviewer, CASE action WHEN 'flag_bias' THEN 'flag' ELSE action END AS decision,
            reason, comment, adjudication, id
        FROM (
            SELECT e.example_id, e.reviewer, e.id, e.action,
                json_extract(e.payload, '$.reason') AS reason, json_extract(e.payload, '$.comment') AS comment,
                coalesce(json_extract(e.payload, '$.adjudication'), 0) AS adjudication,
                row_number() OVER (PARTITION BY e.example_id, e.reviewer ORDER BY e.id DESC) AS nth
            {_ACTIVE} AND e.action IN ('accept', 'reject', 'edit', 'flag_bias') AND {among} AND NOT ({_TAKEN_BACK})
        ) WHERE nth = 1
        """


def review_ratings(db: Database) -> dict[tuple[str, int], str]:
    """(reviewer, example id) -> the reviewer's standing decision as a review: their adjudications left out,
    so an adjudicator who also reviewed an example is rated on their own review (agreement reads this)."""
    sql = _standing("coalesce(json_extract(e.payload, '$.adjudication'), 0) = 0")
    return {(reviewer, example_id): decision
            for example_id, reviewer, decision, *_ in db.execute(sql)}


def rederive_team(db: Database, touched: str | None) -> None:
    """Re-derive review_decisions and review_state's conflict / adjudicated for the examples of the SQL
    `touched` (a SELECT of example ids; None: every example). Runs inside the caller's transaction."""
    db.execute("DELETE FROM review_decisions" + (f" WHERE example_id IN ({touched})" if touched else ""))
    db.execute("INSERT INTO review_decisions (example_id, reviewer, decision, reason, comment, adjudication, event_id)"
               + _standing(f"e.example_id IN ({touched})" if touched else "1"))
    db.execute(
        f"""
        UPDATE review_state SET
            adjudicated = EXISTS (SELECT 1 FROM review_decisions d
                                  WHERE d.example_id = review_state.example_id AND d.adjudication = 1),
            conflict = NOT EXISTS (SELECT 1 FROM review_decisions d
                                   WHERE d.example_id = review_state.example_id AND d.adjudication = 1)
                AND (SELECT count(DISTINCT d.decision) FROM review_decisions d
                     WHERE d.example_id = review_state.example_id) > 1
        WHERE {f"example_id IN ({touched})" if touched else "1"}
        """
    )
