"""Training dynamics (Dataset Cartography, Swayamdipta et al. 2020): every SQL statement about them.

A train run with cartography on stores, per training example, the probability of the gold label token
at each checkpoint (pipeline/train/cartography.py computes them) with their mean (confidence),
population standard deviation (variability) and the share of checkpoints at which gold outscored the
other label (correctness). Regions, from thresholds (settings [cartography]): ambiguous when
variability >= ambiguous_variability; otherwise hard_to_learn when confidence < hard_confidence;
otherwise easy. The region is computed here in SQL, one expression for every read, so the CLI, the
stats screen, the detail pane and the review queues always agree.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlite_utils import Database

from db.scope import by_ids
from db.tx import write_tx

REGIONS = ("easy", "ambiguous", "hard_to_learn")
# The latest train run that has dynamics: runs is small, and each EXISTS is a primary-key lookup.
LATEST_RUN_SQL = ("SELECT r.id FROM runs r WHERE r.kind = 'train' AND EXISTS "
                  "(SELECT 1 FROM training_dynamics d WHERE d.run_id = r.id) ORDER BY r.id DESC LIMIT 1")


class Thresholds(Protocol):
    """Where the regions are drawn (pipeline.settings.Cartography and Edges have these fields)."""

    @property
    def ambiguous_variability(self) -> float: ...

    @property
    def hard_confidence(self) -> float: ...


@dataclass(frozen=True)
class Edges:
    """Region edges as plain values (the defaults are settings [cartography]'s)."""

    ambiguous_variability: float = 0.2
    hard_confidence: float = 0.5


@dataclass(frozen=True)
class Dynamics:
    """One example's dynamics in one run, as written."""

    example_id: int
    gold_label: int  # the label the run trained on
    probabilities: tuple[float, ...]  # P(gold label token) at each checkpoint, in order
    confidence: float
    variability: float
    correctness: float


@dataclass(frozen=True)
class ExampleDynamics:
    """One example's dynamics in one run, with its region and the pair's text."""

    run_id: int
    example_id: int
    gold_label: int
    checkpoints: int
    confidence: float
    variability: float
    correctness: float
    region: str
    premise: str = ""
    hypothesis: str = ""


@dataclass(frozen=True)
class DynamicsSummary:
    """A run's dynamics at a glance: checkpoints, examples and the count in each region."""

    run_id: int
    status: str  # the run's status (runs table)
    method: str | None  # sft | label-only
    checkpoints: int
    examples: int
    regions: dict[str, int]  # every name in REGIONS, zero included


def region_case(thresholds: Thresholds, alias: str = "td") -> tuple[str, list[Any]]:
    """The SQL expression naming the region of a training_dynamics row (aliased `alias`), with its parameters."""
    case = (f"CASE WHEN {alias}.variability >= ? THEN 'ambiguous' WHEN {alias}.confidence < ? "
            "THEN 'hard_to_learn' ELSE 'easy' END")
    return case, [thresholds.ambiguous_variability, thresholds.hard_confidence]


def region_condition(region: str, thresholds: Thresholds, alias: str = "td") -> tuple[str, list[Any]]:
    """A condition on a training_dynamics row (aliased `alias`) that holds exactly in that region."""
    amb, hard = thresholds.ambiguous_variability, thresholds.hard_confidence
    if region == "ambiguous":
        return f"{alias}.variability >= ?", [amb]
    if region == "hard_to_learn":
        return f"{alias}.variability < ? AND {alias}.confidence < ?", [amb, hard]
    if region == "easy":
        return f"{alias}.variability < ? AND {alias}.confidence >= ?", [amb, hard]
    raise ValueError(f"unknown cartography region {region!r}; one of {', '.join(REGIONS)}")


def region_sql(region: str, run_id: int | None, thresholds: Thresholds) -> tuple[str, list[Any]]:
    """A WHERE condition over `examples e` selecting the examples in that region of that run (None: the
    latest train run with dynamics; no such run selects nothing), and its parameters."""
    condition, args = region_condition(region, thresholds)
    run, run_args = ("?", [run_id]) if run_id is not None else (f"({LATEST_RUN_SQL})", [])
    return (f"e.id IN (SELECT td.example_id FROM training_dynamics td WHERE td.run_id = {run} AND {condition})",
            [*run_args, *args])


def write_dynamics(db: Database, run_id: int, rows: Iterable[Dynamics]) -> int:
    """Store a run's dynamics (replacing any it had) in one transaction; returns the rows written."""
    values = [(run_id, r.example_id, r.gold_label, json.dumps(list(r.probabilities)), r.confidence, r.variability,
               r.correctness) for r in rows]
    with write_tx(db):
        db.execute("DELETE FROM training_dynamics WHERE run_id = ?", [run_id])
        db.conn.executemany("INSERT INTO training_dynamics (run_id, example_id, gold_label, probabilities, "
                            "confidence, variability, correctness) VALUES (?, ?, ?, ?, ?, ?, ?)", values)
    return len(values)


def known_example_ids(db: Database, ids: Iterable[int]) -> set[int]:
    """Those of ids that are examples in the store."""
    return {int(row[0]) for row in by_ids(db, "SELECT id FROM examples WHERE id IN ({ids})", ids)}


def latest_dynamics_run(db: Database) -> int | None:
    """The id of the latest train run that has dynamics, or None."""
    row = db.execute(LATEST_RUN_SQL).fetchone()
    return int(row[0]) if row else None


def dynamics_runs(db: Database) -> list[int]:
    """The train runs that have dynamics, newest first."""
    return [int(r[0]) for r in db.execute(LATEST_RUN_SQL.removesuffix(" LIMIT 1"))]


def region_counts(db: Database, run_id: int, thresholds: Thresholds) -> dict[str, int]:
    """How many of the run's examples fall in each region (every region named, zero included)."""
    case, args = region_case(thresholds)
    counts = dict.fromkeys(REGIONS, 0)
    for region, n in db.execute(f"SELECT {case} AS region, count(*) FROM training_dynamics td WHERE td.run_id = ? "
                                "GROUP BY region", [*args, run_id]):
        counts[str(region)] = int(n)
    return counts


def run_summary(db: Database, run_id: int, thresholds: Thresholds) -> DynamicsSummary | None:
    """The run's checkpoints, examples and region counts; None when it has no dynamics (or is no run)."""
    row = db.execute("SELECT r.status, json_extract(r.config, '$.method'), max(json_array_length(td.probabilities)), "
                     "count(td.example_id) FROM runs r JOIN training_dynamics td ON td.run_id = r.id WHERE r.id = ? "
                     "GROUP BY r.id", [run_id]).fetchone()
    if row is None:
        return None
    status, method, checkpoints, examples = row
    return DynamicsSummary(run_id, str(status), str(method) if method is not None else None, int(checkpoints),
                           int(examples), region_counts(db, run_id, thresholds))


_SELECT = ("SELECT td.run_id, td.example_id, td.gold_label, json_array_length(td.probabilities), td.confidence, "
           "td.variability, td.correctness, {case}, {text} "
           "FROM training_dynamics td JOIN examples e ON e.id = td.example_id")
_TEXT = {True: "e.premise, e.hypothesis", False: "'', ''"}
ORDERS = {
    "id": "td.example_id",
    # Low confidence first, then low variability: a consistent, confident miss is the classic mislabel signal.
    "mislabel": "td.confidence, td.variability, td.example_id",
}


def example_rows(db: Database, run_id: int, thresholds: Thresholds, *, region: str | None = None,
                 order: str = "id", limit: int | None = None, with_text: bool = True) -> list[ExampleDynamics]:
    """The run's examples with their dynamics and region (optionally one region), ordered by ORDERS[order];
    with_text=False leaves premise and hypothesis empty (a plot of every example needs only the numbers)."""
    case, args = region_case(thresholds)
    where, where_args = "td.run_id = ?", [run_id]
    if region is not None:
        condition, condition_args = region_condition(region, thresholds)
        where, where_args = f"{where} AND {condition}", [*where_args, *condition_args]
    sql = f"{_SELECT.format(case=case, text=_TEXT[with_text])} WHERE {where} ORDER BY {ORDERS[order]}"
    tail: list[Any] = []
    if limit is not None:
        sql, tail = sql + " LIMIT ?", [limit]
    return _rows(db.execute(sql, [*args, *where_args, *tail]).fetchall())


def example_dynamics(db: Database, example_id: int, thresholds: Thresholds) -> list[ExampleDynamics]:
    """Every run's dynamics of one example (its confidence, variability, correctness, region), newest run first."""
    case, args = region_case(thresholds)
    sql = f"{_SELECT.format(case=case, text=_TEXT[True])} WHERE td.example_id = ? ORDER BY td.run_id DESC"
    return _rows(db.execute(sql, [*args, example_id]).fetchall())


def _rows(rows: Sequence[Sequence[Any]]) -> list[ExampleDynamics]:
    return [ExampleDynamics(int(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5]), float(r[6]),
                            str(r[7]), str(r[8] or ""), str(r[9] or "")) for r in rows]
