"""Review queues: what a queue is (a filter over examples, its SQL), and the whole-set reads of one (ids, facets).

Reading a queue page by page is db/queue_pages.py; counting and positions, db/queue_counts.py. Counts
can take a while on a big store: callers run them off the UI thread.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db import search
from db.errors import StoreError
from db.queue_signals import SIGNAL_QUEUES, SIGNAL_TITLES, signal_queue_sql
from db.queue_team import FLAGS, TEAM_QUEUES, team_queue_sql, team_terms
from db.reviews import DECIDED_STATUSES
from db.scope import Scope
from db.search import fts_query

QUEUES = (  # the queues every store has, selected by the digits 1-9 then 0
    "all", "disagreements", "needs_reflection", "pending", "accepted", "rejected", "edited",
    "bias_flagged", "parse_failures", "model_errors",
)
ALL_QUEUES = QUEUES + TEAM_QUEUES + SIGNAL_QUEUES
QUEUE_TITLES = {
    "all": "all",
    "disagreements": "disagreements",
    "needs_reflection": "needs reflection",
    "pending": "pending review",
    "accepted": "accepted",
    "rejected": "rejected",
    "edited": "edited",
    "bias_flagged": "bias-flagged",
    "parse_failures": "parse failures",
    "model_errors": "model errors",
    "mine": "mine",
    "conflicts": "conflicts",
    "sample": "audit sample",
    **SIGNAL_TITLES,
}
DECIDED_IN = f"IN ({', '.join(repr(s) for s in DECIDED_STATUSES)})"  # SQL: a status that is a decision
_DISAGREE = "e.thought_label != e.gold_label"
# Examples whose latest prediction (of one evaluate run when the filter names it) failed to parse or
# differs from gold. Not correlated with the outer row, so SQLite builds the id list once. The latest
# prediction per example comes from one pass over the small partial index generations_predictions
# (GROUP BY; a correlated max() per prediction read the large generations_example instead: 0.7 s of
# a 1.7 s first page read cold, on 1M examples with 10,000 predictions).
LATEST_PREDICTIONS = (  # (example_id, id) of each example's latest prediction; {run}: "" or " AND run_id = ?"
    "SELECT example_id, max(id) AS id FROM generations INDEXED BY generations_predictions "
    "WHERE kind = 'prediction'{run} GROUP BY example_id"
)
_PREDICTION_WRONG = (
    "e.id IN (SELECT p.example_id FROM (" + LATEST_PREDICTIONS + ") latest "
    "JOIN generations p ON p.id = latest.id JOIN examples x ON x.id = p.example_id "
    "WHERE p.parse_status = 'failed' OR p.predicted_label IS NULL "
    "OR (x.gold_label IS NOT NULL AND p.predicted_label != x.gold_label))"
)
# The same rule tested row by row (for narrowing a given list of ids, e.g. a chunk of search matches).
_PREDICTION_WRONG_ROW = (
    "EXISTS (SELECT 1 FROM generations p WHERE p.id = (SELECT max(id) FROM generations "
    "WHERE example_id = e.id AND kind = 'prediction'{run}) "
    "AND (p.parse_status = 'failed' OR p.predicted_label IS NULL "
    "OR (e.gold_label IS NOT NULL AND p.predicted_label != e.gold_label)))"
)
# Examples matching a search (the pair or one generation holds every word): for whole-set reads
# (counts, positions, bulk ids); pages walk the matches in id order instead (_search_rows).
_SEARCH = f"e.id IN (SELECT rowid >> {search.SHIFT} FROM search_fts WHERE search_fts MATCH ?)"


class UnknownQueueError(StoreError, ValueError):
    """A filter named a queue that does not exist."""


@dataclass(frozen=True)
class QueueFilter:
    """Which examples a queue shows: the queue, optional facets, search text, an evaluate run."""

    queue: str = "all"
    dataset: str | None = None
    split: str | None = None
    gold: int | None = None
    model: str | None = None  # the model of the current thought
    search: str = ""
    run_id: int | None = None  # model errors of this evaluate run only
    me: str | None = None  # the reviewer whose "mine" queue this is (set on that queue only: see for_reviewer)
    sample: str | None = None  # the audit sample queue shows this sample only (None: every sample)
    flag: str | None = None  # one of FLAGS, on the example's current thought or reflection
    judge_min: float | None = None  # the latest judge score of the example, at least / at most
    judge_max: float | None = None
    reviewer: str | None = None  # examples with a standing decision by this reviewer
    reason: str | None = None  # examples with a standing decision for this reason (by `reviewer`, when set)
    words_min: int | None = None  # the current thought's length in words, at least / at most
    words_max: int | None = None
    train_run: int | None = None  # the cartography region queues: this train run (None: the latest with dynamics)
    ambiguous_variability: float | None = None  # their region edges (None: db.suspicion.Thresholds' defaults)
    hard_confidence: float | None = None

    def __post_init__(self) -> None:
        if self.queue not in ALL_QUEUES:
            raise UnknownQueueError(f"unknown queue {self.queue!r}; expected one of {', '.join(ALL_QUEUES)}")
        if self.gold not in (None, 0, 1):
            raise ValueError("a gold label filter is 0, 1 or None")
        if self.flag not in (None, *FLAGS):
            raise ValueError(f"unknown flag {self.flag!r}; expected one of {', '.join(FLAGS)}")
        for low, high, what in ((self.judge_min, self.judge_max, "judge score"),
                                (self.words_min, self.words_max, "thought length")):
            if low is not None and high is not None and low > high:
                raise ValueError(f"the {what} filter's minimum {low} is above its maximum {high}; swap them")

    def for_reviewer(self, reviewer: str) -> QueueFilter:
        """This filter as the reviewer sees it: the "mine" queue is theirs; other queues carry no reviewer
        (so that a filter compares equal whoever shows it)."""
        return self.replace(me=reviewer if self.queue == "mine" else None)

    def replace(self, **changes: Any) -> QueueFilter:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """A short human description, e.g. 'disagreements · rte/dev · gold 1 · "bus"'."""
        parts = [QUEUE_TITLES[self.queue]]
        if self.dataset or self.split:
            parts.append(f"{self.dataset or '*'}/{self.split or '*'}")
        if self.gold is not None:
            parts.append(f"gold {self.gold}")
        if self.model:
            parts.append(f"model {self.model}")
        if self.run_id is not None:
            parts.append(f"run {self.run_id}")
        if self.train_run is not None:
            parts.append(f"train run {self.train_run}")
        parts += self.team_parts()
        if self.search.strip():
            parts.append(f'"{self.search.strip()}"')
        return " · ".join(parts)

    def team_parts(self) -> list[str]:
        """The descriptions of the sample, flag, judge, reviewer, reason and length filters set."""
        parts = [f"sample {self.sample}"] if self.sample is not None else []
        parts += [f"⚑ {self.flag}"] if self.flag else []
        for low, high, what in ((self.judge_min, self.judge_max, "judge"), (self.words_min, self.words_max, "words")):
            if low is not None or high is not None:
                parts.append(f"{what} {'' if low is None else low}–{'' if high is None else high}")
        parts += [f"by {self.reviewer}"] if self.reviewer else []
        parts += [f"reason {self.reason}"] if self.reason else []
        return parts


def filter_from(fields: object) -> QueueFilter | None:
    """The filter saved as these fields (a place, a named view); None when they do not make one (saved by
    another version of the app)."""
    if not isinstance(fields, dict):
        return None
    try:
        return QueueFilter(**fields)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue pane: enough to show the row without loading the example."""

    id: int
    gold_label: int | None
    thought_label: int | None
    has_reflection: bool
    parse_failed: bool
    status: str  # pending | accepted | rejected | edited
    flagged: bool
    suggested_label: int | None
    snippet: str  # the start of the hypothesis
    unsaved: bool = False  # the app journaled a decision on it that the writer has not stored yet


@dataclass(frozen=True)
class Facets:
    """The values the facet filters can take in this store."""

    datasets: tuple[str, ...]
    splits: tuple[str, ...]
    models: tuple[str, ...]
    evaluate_runs: tuple[int, ...]
    samples: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()  # reviewers with a standing decision
    reasons: tuple[str, ...] = ()  # reasons of standing decisions


def queue_sql(queue: str, run_id: int | None = None, per_row: bool = False) -> tuple[str | None, list[Any]]:
    """The WHERE condition (over `examples e`) that defines a queue (None: every example), with its parameters
    (the team queues, which need more of the filter: db.queue_team.team_queue_sql).

    per_row: written to test given rows (lookups per row) rather than to list the queue's members
    (which a statement builds once, however few rows it then tests).
    """
    if queue == "all":
        return None, []
    if queue == "disagreements":
        return _DISAGREE, []
    if queue == "needs_reflection":
        return f"{_DISAGREE} AND e.reflection_id IS NULL", []
    if queue == "pending":
        return ("NOT EXISTS (SELECT 1 FROM review_state r0 WHERE r0.example_id = e.id "
                "AND r0.status != 'pending')"), []
    if queue in DECIDED_STATUSES:
        if per_row:
            return "EXISTS (SELECT 1 FROM review_state r1 WHERE r1.example_id = e.id AND r1.status = ?)", [queue]
        return "e.id IN (SELECT example_id FROM review_state WHERE status = ?)", [queue]
    if queue == "bias_flagged":
        if per_row:
            return ("EXISTS (SELECT 1 FROM review_state r1 WHERE r1.example_id = e.id "
                    "AND r1.bias_category IS NOT NULL)"), []
        return "e.id IN (SELECT example_id FROM review_state WHERE bias_category IS NOT NULL)", []
    if queue == "parse_failures":
        return "e.parse_failed = 1", []
    if queue == "model_errors":
        rule = _PREDICTION_WRONG_ROW if per_row else _PREDICTION_WRONG
        if run_id is None:
            return rule.format(run=""), []
        return rule.format(run=" AND run_id = ?"), [run_id]
    raise UnknownQueueError(f"unknown queue {queue!r}; expected one of {', '.join(ALL_QUEUES)}")


def facet_terms(f: QueueFilter) -> tuple[list[str], list[Any]]:
    """The conditions of the facets and the search text (not the queue), with their parameters."""
    scope = Scope(datasets=() if f.dataset is None else (f.dataset,), splits=() if f.split is None else (f.split,))
    sql, args = scope.where()
    terms = [sql] if args else []
    for column, value in (("gold_label", f.gold), ("thought_model", f.model)):
        if value is not None:
            terms.append(f"e.{column} = ?")
            args.append(value)
    team, team_args = team_terms(f)
    terms, args = terms + team, args + team_args
    query = fts_query(f.search)
    if query:
        terms.append(_SEARCH)
        args.append(query)
    return terms, args


def where_terms(f: QueueFilter, per_row: bool = False) -> tuple[list[str], list[Any]]:
    """Every condition of a filter, over `examples e` (an empty list: every example); per_row as in queue_sql."""
    q_sql: str | None
    if f.queue in TEAM_QUEUES:
        q_sql, q_args = team_queue_sql(f, per_row)
    elif f.queue in SIGNAL_QUEUES:
        q_sql, q_args = signal_queue_sql(f, per_row)
    else:
        q_sql, q_args = queue_sql(f.queue, f.run_id, per_row)
    terms, args = facet_terms(f)
    return ([q_sql] if q_sql else []) + terms, [*q_args, *args]



def where(terms: list[str], *extra: str) -> str:
    """A WHERE clause of all these conditions (nothing when there are none)."""
    parts = [*terms, *extra]
    return f"WHERE {' AND '.join(parts)}" if parts else ""


def ids(db: Database, f: QueueFilter) -> list[int]:
    """Every example id the filter selects, in order (for bulk actions)."""
    terms, args = where_terms(f)
    return [r[0] for r in db.execute(f"SELECT e.id FROM examples e {where(terms)} ORDER BY e.id", args)]


def ids_by_decision(db: Database, f: QueueFilter) -> tuple[list[int], list[int]]:
    """The filter's example ids, in order, split into undecided ones and ones already accepted, rejected or
    edited (a bulk action leaves those alone unless the reviewer includes them)."""
    terms, args = where_terms(f)
    undecided: list[int] = []
    decided: list[int] = []
    done_sql = f"EXISTS (SELECT 1 FROM review_state r WHERE r.example_id = e.id AND r.status {DECIDED_IN})"
    for example_id, done in db.execute(f"SELECT e.id, {done_sql} FROM examples e {where(terms)} ORDER BY e.id", args):
        (decided if done else undecided).append(example_id)
    return undecided, decided


def facets(db: Database) -> Facets:
    """The datasets, splits, thought models and evaluate runs present in the store."""
    def col(sql: str) -> tuple[Any, ...]:
        return tuple(r[0] for r in db.execute(sql).fetchall())

    return Facets(
        datasets=col("SELECT DISTINCT dataset FROM examples ORDER BY 1"),
        splits=col("SELECT DISTINCT split FROM examples ORDER BY 1"),
        models=col("SELECT DISTINCT thought_model FROM examples WHERE thought_model IS NOT NULL ORDER BY 1"),
        evaluate_runs=col("SELECT id FROM runs WHERE kind = 'evaluate' ORDER BY id DESC"),
        samples=col("SELECT DISTINCT name FROM samples ORDER BY 1"),
        reviewers=col("SELECT DISTINCT reviewer FROM review_decisions ORDER BY 1"),
        reasons=col("SELECT DISTINCT reason FROM review_decisions WHERE reason IS NOT NULL ORDER BY 1"),
    )


def analyze(db: Database) -> None:
    """Refresh SQLite's table statistics, so the planner reads the queues through the right indexes (after a bulk
    build: an import of a whole store at once)."""
    db.execute("ANALYZE")


def high_water(db: Database) -> tuple[int, int, int]:
    """The largest example, generation and review event ids: a cheap 'has anything changed' check."""
    e, g, r = db.execute(" ".join(("SELECT", ", ".join(f"(SELECT coalesce(max(id), 0) FROM {t})" for t in (
        "examples", "generations", "review_events"))))).fetchone()
    return int(e), int(g), int(r)
