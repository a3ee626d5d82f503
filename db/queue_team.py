"""The SQL of team review's queues and filters (mine, conflicts, audit samples; flags, judge score, reviewer,
reason, thought length): conditions over `examples e`, joined with the others by db/queues.py's where_terms."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from db import grounding
from db.tallies import WORDS_SQL as THOUGHT_WORDS  # the one word count (stats buckets the same lengths)

if TYPE_CHECKING:
    from db.queues import QueueFilter

# Queues of team review: shown once a store has assignments, conflicts or audit samples (team_queues).
TEAM_QUEUES = ("mine", "conflicts", "sample")
# Flags of the current thought or reflection a filter can ask for (the grounding ones: db/grounding.py).
FLAGS = ("label_inconsistent", "label_not_gold", *grounding.FLAGS)


def team_queue_sql(f: QueueFilter, per_row: bool) -> tuple[str, list[Any]]:
    """The queues of team review: mine (assigned to f.me, not decided by them), conflicts, an audit sample."""
    if f.queue == "mine":
        if f.me is None:  # no reviewer: nothing is anyone's
            return "0", []
        undecided = "NOT EXISTS (SELECT 1 FROM review_decisions d WHERE d.example_id = {id} AND d.reviewer = ?)"
        if per_row:
            return ("EXISTS (SELECT 1 FROM assignments a WHERE a.reviewer = ? AND a.example_id = e.id) AND "
                    + undecided.format(id="e.id")), [f.me, f.me]
        return (f"e.id IN (SELECT a.example_id FROM assignments a WHERE a.reviewer = ? AND "
                f"{undecided.format(id='a.example_id')})"), [f.me, f.me]
    if f.queue == "conflicts":
        if per_row:
            return "EXISTS (SELECT 1 FROM review_state r1 WHERE r1.example_id = e.id AND r1.conflict = 1)", []
        return "e.id IN (SELECT example_id FROM review_state WHERE conflict = 1)", []
    named, args = ("s.name = ?", [f.sample]) if f.sample is not None else ("1", [])
    if per_row:
        return f"EXISTS (SELECT 1 FROM samples s WHERE {named} AND s.example_id = e.id)", args
    return f"e.id IN (SELECT s.example_id FROM samples s WHERE {named})", args


def mine_ids(db: Database, me: str, after_id: int | None = None, before_id: int | None = None, limit: int = 100,
             descending: bool = False) -> list[int]:
    """Up to limit ids of the reviewer's queue (assigned to them, not decided by them) between the bounds, nearest
    the start first: one merge of two index walks in id order, which stops after limit ids (listing the queue
    whole to page it read 400,000 assignments: 140 ms on a 1M store)."""
    low, high = (-1 if after_id is None else after_id), ((1 << 62) if before_id is None else before_id)
    between = "reviewer = ? AND example_id > ? AND example_id < ?"
    sql = (f"SELECT example_id FROM assignments WHERE {between} EXCEPT SELECT example_id FROM review_decisions "
           f"WHERE {between} ORDER BY 1 {'DESC' if descending else 'ASC'} LIMIT ?")
    return [r[0] for r in db.execute(sql, [me, low, high, me, low, high, limit])]


# The team filters, over `examples e`. The flag and judge filters list their members from partial indexes
# (m010): the generations that carry a flag, the judge scores; the words filter looks up each row's thought.
FLAGGED = ("e.id IN (SELECT g.example_id FROM generations g WHERE g.flags != '[]' AND g.flags LIKE ? "
            "AND g.id IN (SELECT x.thought_id FROM examples x WHERE x.id = g.example_id "
            "UNION ALL SELECT x.reflection_id FROM examples x WHERE x.id = g.example_id))")
_JUDGED = ("e.id IN (SELECT g.example_id FROM generations g WHERE g.kind = 'judge' AND g.score BETWEEN ? AND ? "
           "AND g.id = (SELECT max(j.id) FROM generations j WHERE j.example_id = g.example_id AND j.kind = 'judge'))")
_WORDS = f"(SELECT {THOUGHT_WORDS} FROM generations g WHERE g.id = e.thought_id) BETWEEN ? AND ?"


def team_terms(f: QueueFilter) -> tuple[list[str], list[Any]]:
    """The conditions of the flag, judge score, reviewer, reason and thought length filters, with their parameters."""
    terms: list[str] = []
    args: list[Any] = []
    if f.flag:
        terms.append(FLAGGED)
        args.append(f'%"{f.flag}"%')  # flags are stored as a JSON list of names
    for low, high, sql in ((f.judge_min, f.judge_max, _JUDGED), (f.words_min, f.words_max, _WORDS)):
        if low is not None or high is not None:
            terms.append(sql)
            args += [-1e308 if low is None else low, 1e308 if high is None else high]
    if f.reviewer or f.reason:
        by = [(c, v) for c, v in (("reviewer", f.reviewer), ("reason", f.reason)) if v]
        terms.append(f"e.id IN (SELECT example_id FROM review_decisions WHERE "
                     f"{' AND '.join(f'{c} = ?' for c, _ in by)})")
        args += [v for _, v in by]
    return terms, args


def team_queues(db: Database) -> tuple[str, ...]:
    """The team queues this store has: mine once anything is assigned, conflicts once reviewers disagreed
    (or an adjudication settled it), the audit sample once a sample was drawn."""
    def has(sql: str) -> bool:
        return bool(db.execute(f"SELECT EXISTS ({sql})").fetchone()[0])

    shown = {"mine": has("SELECT 1 FROM assignments"),
             "conflicts": has("SELECT 1 FROM review_state WHERE conflict = 1") or has(
                 "SELECT 1 FROM review_decisions WHERE adjudication = 1"),
             "sample": has("SELECT 1 FROM samples")}
    return tuple(q for q in TEAM_QUEUES if shown[q])

