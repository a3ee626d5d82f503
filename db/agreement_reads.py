"""What each reviewer said about each example, for agreement between reviewers (pipeline/agreement.py).

Three ratings per (reviewer, example) the reviewer has rated (a standing decision, or a bias flag or
relabel of theirs still active): their standing decision as a review (db/team.py; an adjudication is not
a rating and is left out), their bias flag (the category of their latest flag_bias, or "none" when they
never flagged it or unflagged it last), and their suggested relabel (the label of their latest relabel,
or "none" when they never suggested one or cleared it).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from db.team import review_ratings

NONE = "none"  # no bias flag, no relabel suggestion
Ratings = dict[tuple[str, int], str]  # (reviewer, example id) -> the value they gave


@dataclass(frozen=True)
class ReviewerRatings:
    """Each reviewer's decision, bias flag and relabel on the examples they rated."""

    decisions: Ratings  # only where the reviewer has a standing decision
    flags: Ratings
    relabels: Ratings


def reviewer_ratings(db: Database) -> ReviewerRatings:
    """Every reviewer's ratings (one pass over the standing decisions and the active flags and relabels)."""
    decisions: Ratings = review_ratings(db)
    flags: Ratings = {}
    relabels: Ratings = {}
    for reviewer, example_id, action, value in db.execute(
        "SELECT e.reviewer, e.example_id, e.action, CASE e.action WHEN 'flag_bias' THEN "
        "json_extract(e.payload, '$.category') WHEN 'relabel' THEN json_extract(e.payload, '$.label') END "
        "FROM review_events e JOIN review_groups g ON g.group_id = e.group_id "
        "WHERE g.active = 1 AND e.action IN ('flag_bias', 'unflag_bias', 'relabel') ORDER BY e.id"
    ):
        into = relabels if action == "relabel" else flags
        into[(reviewer, example_id)] = NONE if value is None else str(value)
    rated = set(decisions) | set(flags) | set(relabels)
    return ReviewerRatings(decisions, {k: flags.get(k, NONE) for k in rated}, {k: relabels.get(k, NONE) for k in rated})
