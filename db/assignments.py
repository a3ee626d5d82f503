"""Who is asked to review what (`nlistral assign`): a seeded split of examples over reviewers, with an overlap.

Each chosen example goes to one reviewer, round-robin after a seeded shuffle; the first `overlap` share of
the shuffled examples also goes to a second reviewer, so agreement can be measured. The second reviewer
is the next one in the list for the first round of overlapped examples, the one after that for the next
round, and so on, so every pair of reviewers shares examples once there are enough of them.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlite_utils import Database

from db.clock import now
from db.errors import StoreError
from db.queues import QueueFilter, ids
from db.tx import write_tx

# A reviewer's name as `nlistral assign` takes it: letters, digits, '.', '_', '-' and '@' (no commas or spaces).
REVIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class AssignmentError(StoreError):
    """An assignment was asked for with reviewers or an overlap that cannot work."""


@dataclass(frozen=True)
class Assigned:
    """What an assignment did: examples chosen, skipped (already assigned), and assignments written."""

    chosen: int
    skipped: int
    replaced: int  # assignments deleted first (--replace)
    per_reviewer: dict[str, int] = field(default_factory=dict)
    shared: dict[tuple[str, str], int] = field(default_factory=dict)  # pair of reviewers -> examples both got


def check_reviewers(reviewers: Sequence[str], overlap: float) -> None:
    """AssignmentError unless the names are valid and distinct and the overlap is a share two reviewers can take."""
    if not reviewers:
        raise AssignmentError("No reviewers given: name them, e.g. --reviewers ada,bob,cy.")
    for name in reviewers:
        if not REVIEWER_NAME.fullmatch(name):
            raise AssignmentError(f"Reviewer name {name!r} is not valid: use letters, digits, '.', '_', '-' or '@' "
                                  "(at most 64), names separated by commas, e.g. --reviewers ada,bob,cy.")
    repeated = sorted(n for n, c in Counter(reviewers).items() if c > 1)
    if repeated:
        raise AssignmentError(f"Reviewer {repeated[0]!r} is named twice: name each reviewer once.")
    if not 0 <= overlap <= 1:
        raise AssignmentError(f"Overlap {overlap} is outside 0 to 1: it is the share of examples given to two "
                              "reviewers, e.g. --overlap 0.2.")
    if overlap > 0 and len(reviewers) < 2:
        raise AssignmentError("An overlap needs at least two reviewers (it gives examples to a second one); "
                              "name more reviewers or use --overlap 0.")


def split(example_ids: Sequence[int], reviewers: Sequence[str], overlap: float, seed: int) -> list[tuple[str, int]]:
    """(reviewer, example id) pairs: each example to one reviewer, round-robin after a seeded shuffle, the
    first `overlap` share of the shuffled ones to a second reviewer too (the offset grows each round)."""
    check_reviewers(reviewers, overlap)
    order = sorted(example_ids)
    random.Random(seed).shuffle(order)
    n = len(reviewers)
    doubled = round(overlap * len(order))
    pairs = []
    for i, example_id in enumerate(order):
        pairs.append((reviewers[i % n], example_id))
        if i < doubled:
            offset = 1 + (i // n) % (n - 1)
            pairs.append((reviewers[(i + offset) % n], example_id))
    return pairs


def assign(db: Database, f: QueueFilter, reviewers: Sequence[str], overlap: float, *, seed: int = 0,
           replace: bool = False) -> Assigned:
    """Assign the filter's examples to reviewers in one transaction; examples already assigned (to anyone) are
    kept as they are and left out, unless replace: then their assignments are deleted and made again."""
    check_reviewers(reviewers, overlap)
    with write_tx(db):
        chosen = ids(db, f)
        taken = assigned_ids(db, chosen)
        replaced = 0
        if replace and taken:
            replaced = db.execute("DELETE FROM assignments WHERE example_id IN (SELECT value FROM json_each(?))",
                                  [json.dumps(sorted(taken))]).rowcount
            taken = set()
        pairs = split([i for i in chosen if i not in taken], reviewers, overlap, seed)
        stamp = now()
        db.conn.executemany("INSERT INTO assignments (reviewer, example_id, assigned_at) VALUES (?, ?, ?)",
                            ((r, i, stamp) for r, i in pairs))
    per_reviewer = Counter(r for r, _ in pairs)
    by_example: dict[int, list[str]] = {}
    for r, i in pairs:
        by_example.setdefault(i, []).append(r)
    shared = Counter(tuple(sorted(rs)) for rs in by_example.values() if len(rs) == 2)
    return Assigned(len(chosen), len(taken), replaced, {r: per_reviewer.get(r, 0) for r in reviewers},
                    {(a, b): n for (a, b), n in sorted(shared.items())})


def assigned_ids(db: Database, among: Sequence[int]) -> set[int]:
    """Which of these examples are assigned to anyone."""
    return set(among) & {r[0] for r in db.execute("SELECT DISTINCT example_id FROM assignments")}


def assignment_counts(db: Database) -> dict[str, int]:
    """Examples assigned to each reviewer, by name."""
    return dict(db.execute("SELECT reviewer, count(*) FROM assignments GROUP BY reviewer ORDER BY reviewer").fetchall())

