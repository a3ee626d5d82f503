"""The gold-suspicion score: how strongly the store's signals say an example's gold label may be wrong.

Each signal an example shows adds its weight (settings [suspicion]; 0 turns a signal off), times a
strength from 0 to 1 where the signal has one:

- thought_disagrees: the current thought's label is not gold (strength 1);
- reflection_not_gold: the current reflection, written after being shown gold, still reaches the other label;
- blind_disagrees: the latest blind reflection of the current thought (not shown gold) reaches the other label;
- label_inconsistent: the current thought or reflection carries that flag (its label contradicts its text);
- judge_low: the latest judge score is 2 or lower of 5;
- reviewer_flag: a reviewer flagged the example for bias or suggested a label other than gold;
- adapter_wrong: the share of evaluate runs whose latest parsed prediction for the example is not gold;
- hard_to_learn: in the latest train run with training dynamics for it, the example is hard-to-learn
  (settings [cartography]); strength 1 - its mean confidence in gold.

The score ranks examples for a person to look at; it is not a probability that gold is wrong, and a
score of 0 says only that no signal fired. `refresh` stores the ranking (the suspect-gold queue reads it
in rank order); `reasons_for` computes one example's reasons as they are now.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db.cartography import Edges, Thresholds, region_condition
from db.clock import now
from db.scope import Scope, by_ids
from db.tx import write_tx

DEFAULT_EDGES = Edges()
JUDGE_LOW = 2.0  # a judge score at or below this (of 5) counts as low
LABEL_NAMES = {1: "entailment", 0: "no entailment"}
_HIGH_WATER = ("examples", "generations", "review_events", "runs")


@dataclass(frozen=True)
class Reason:
    """One signal an example shows: its name, the weight it has, the points it adds and what it saw."""

    signal: str
    weight: float
    points: float
    detail: str


@dataclass(frozen=True)
class Suspect:
    """An example's score (the sum of its reasons' points) and the reasons, strongest first."""

    example_id: int
    score: float
    reasons: tuple[Reason, ...]

    def summary(self) -> str:
        """The reasons in one line, e.g. 'blind reflection says entailment; 2 of 3 adapter runs wrong'."""
        return "; ".join(r.detail for r in self.reasons)


def _label(value: Any) -> str:
    return LABEL_NAMES.get(value, "no label")


# Each signal: SQL over `examples e` (filtered by {scope}) giving example_id, a strength (0..1) and the values
# its detail is written from.
_SIGNALS: dict[str, str] = {
    "thought_disagrees": (
        "SELECT e.id, 1.0, e.thought_label FROM examples e WHERE {scope} AND e.gold_label IS NOT NULL "
        "AND e.thought_label IS NOT NULL AND e.thought_label != e.gold_label"),
    "reflection_not_gold": (
        "SELECT e.id, 1.0, e.reflection_label FROM examples e WHERE {scope} AND e.gold_label IS NOT NULL "
        "AND e.reflection_label IS NOT NULL AND e.reflection_label != e.gold_label"),
    "blind_disagrees": (
        "SELECT e.id, 1.0, b.predicted_label FROM examples e JOIN generations b INDEXED BY generations_blind "
        "ON b.example_id = e.id AND b.kind = 'blind_reflection' WHERE {scope} AND e.gold_label IS NOT NULL "
        "AND b.id = (SELECT max(x.id) FROM generations x INDEXED BY generations_blind WHERE x.example_id = e.id "
        "AND x.kind = 'blind_reflection' AND x.parent_id = e.thought_id) "
        "AND b.predicted_label IS NOT NULL AND b.predicted_label != e.gold_label"),
    "label_inconsistent": (
        "SELECT e.id, 1.0, group_concat(g.kind) FROM examples e JOIN generations g INDEXED BY generations_flagged "
        "ON g.example_id = e.id AND g.flags != '[]' WHERE {scope} AND g.flags LIKE '%\"label_inconsistent\"%' "
        "AND g.id IN (e.thought_id, e.reflection_id) GROUP BY e.id"),
    "judge_low": (
        f"SELECT e.id, 1.0, j.score FROM examples e JOIN generations j INDEXED BY generations_judged "
        f"ON j.example_id = e.id AND j.kind = 'judge' WHERE {{scope}} AND j.id = (SELECT max(x.id) FROM generations x "
        f"INDEXED BY generations_judged WHERE x.example_id = e.id AND x.kind = 'judge') AND j.score <= {JUDGE_LOW}"),
    "reviewer_flag": (
        "SELECT e.id, 1.0, r.bias_category, r.suggested_label FROM examples e JOIN review_state r "
        "ON r.example_id = e.id WHERE {scope} AND (r.bias_category IS NOT NULL OR (r.suggested_label IS NOT NULL "
        "AND e.gold_label IS NOT NULL AND r.suggested_label != e.gold_label))"),
    "adapter_wrong": (
        "SELECT e.id, avg(p.predicted_label != e.gold_label), sum(p.predicted_label != e.gold_label), count(*) "
        "FROM (SELECT example_id, run_id, max(id) AS id FROM generations INDEXED BY generations_predictions "
        "WHERE kind = 'prediction' GROUP BY example_id, run_id) latest "
        "JOIN generations p ON p.id = latest.id JOIN examples e ON e.id = latest.example_id "
        "WHERE {scope} AND e.gold_label IS NOT NULL AND p.predicted_label IS NOT NULL AND p.parse_status != 'failed' "
        "GROUP BY e.id HAVING sum(p.predicted_label != e.gold_label) > 0"),
    "hard_to_learn": (
        "SELECT e.id, 1.0 - d.confidence, d.run_id, d.confidence, d.variability FROM examples e "
        "JOIN training_dynamics d ON d.example_id = e.id WHERE {scope} "
        "AND d.run_id = (SELECT max(x.run_id) FROM training_dynamics x WHERE x.example_id = e.id) "
        "AND {hard_to_learn}"),
}
SIGNALS = tuple(_SIGNALS)


def _detail(signal: str, values: tuple[Any, ...]) -> str:
    if signal == "thought_disagrees":
        return f"the thought says {_label(values[0])}"
    if signal == "reflection_not_gold":
        return f"shown gold, the reflection still says {_label(values[0])}"
    if signal == "blind_disagrees":
        return f"the blind reflection says {_label(values[0])}"
    if signal == "label_inconsistent":
        kinds = sorted(set(str(values[0]).split(",")))
        return f"the {' and the '.join(kinds)}'s label contradicts its reasoning"
    if signal == "judge_low":
        return f"judge score {values[0]:g} of 5"
    if signal == "reviewer_flag":
        bias, suggested = values
        parts = [f"flagged by a reviewer ({bias})"] if bias is not None else []
        parts += [f"a reviewer suggests {_label(suggested)}"] if suggested is not None else []
        return "; ".join(parts) if parts else "flagged by a reviewer"
    if signal == "adapter_wrong":
        wrong, runs = values
        return f"{wrong} of {runs} adapter run{'s' if runs != 1 else ''} wrong"
    run, confidence, variability = values
    return f"hard-to-learn in run {run} (confidence {confidence:.2f}, variability {variability:.2f})"


def _signal_rows(db: Database, signal: str, scope: Scope,
                 thresholds: Thresholds) -> Iterable[tuple[int, float, tuple[Any, ...]]]:
    where, args = scope.where("e")
    hard, hard_args = region_condition("hard_to_learn", thresholds, "d")
    if signal == "hard_to_learn":
        args = [*args, *hard_args]
    for row in db.execute(_SIGNALS[signal].format(scope=where, hard_to_learn=hard), args):
        yield int(row[0]), float(row[1]), tuple(row[2:])


def suspects(db: Database, weights: Mapping[str, float], thresholds: Thresholds = DEFAULT_EDGES,
             scope: Scope | None = None) -> list[Suspect]:
    """Every example in scope (its limit aside) with a score above 0, most suspect first (ties: lower id)."""
    unknown = set(weights) - set(SIGNALS)
    if unknown:
        raise ValueError(f"unknown suspicion signals {sorted(unknown)}; expected some of {', '.join(SIGNALS)}")
    reasons: dict[int, list[Reason]] = {}
    for signal in SIGNALS:
        weight = float(weights.get(signal, 0.0))
        if weight <= 0:
            continue
        for example_id, strength, values in _signal_rows(db, signal, scope or Scope(), thresholds):
            if strength > 0:
                reasons.setdefault(example_id, []).append(
                    Reason(signal, weight, round(weight * strength, 6), _detail(signal, values)))
    out = [Suspect(i, round(sum(r.points for r in rs), 6), tuple(sorted(rs, key=lambda r: -r.points)))
           for i, rs in reasons.items()]
    out.sort(key=lambda s: (-s.score, s.example_id))
    return out


def reasons_for(db: Database, example_id: int, weights: Mapping[str, float],
                thresholds: Thresholds = DEFAULT_EDGES) -> Suspect:
    """One example's score and reasons as the store stands now (score 0 and no reasons: no signal fired)."""
    found = suspects(db, weights, thresholds, Scope(ids=(example_id,)))
    return found[0] if found else Suspect(example_id, 0.0, ())


def high_water(db: Database) -> list[int]:
    """The largest id of each table the signals read: when any moved, the stored ranking may be stale."""
    return [int(db.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0]) for t in _HIGH_WATER]


@dataclass(frozen=True)
class RankingState:
    """When the stored ranking was computed, with which weights, and whether the store moved since."""

    computed_at: str
    weights: dict[str, float]
    stale: bool
    suspects: int


def refresh(db: Database, weights: Mapping[str, float], thresholds: Thresholds = DEFAULT_EDGES) -> list[Suspect]:
    """Compute every example's score and store the ranking (replacing the last one) in one transaction."""
    ranked = suspects(db, weights, thresholds)
    with write_tx(db):
        db.execute("DELETE FROM suspicion")
        db.conn.executemany(
            "INSERT INTO suspicion (example_id, rank, score, reasons) VALUES (?, ?, ?, ?)",
            ((s.example_id, rank, s.score, json.dumps([[r.signal, r.weight, r.points, r.detail] for r in s.reasons]))
             for rank, s in enumerate(ranked, 1)))
        db.execute("INSERT OR REPLACE INTO suspicion_state (id, computed_at, weights, high_water) VALUES (1, ?, ?, ?)",
                   [now(), json.dumps(dict(weights), sort_keys=True), json.dumps(high_water(db))])
    return ranked


def ranking_state(db: Database) -> RankingState | None:
    """The stored ranking's state; None when it was never computed."""
    row = db.execute("SELECT computed_at, weights, high_water FROM suspicion_state WHERE id = 1").fetchone()
    if row is None:
        return None
    count = int(db.execute("SELECT count(*) FROM suspicion").fetchone()[0])
    return RankingState(str(row[0]), json.loads(row[1]), json.loads(row[2]) != high_water(db), count)


@dataclass(frozen=True)
class Ranked:
    """An example's place in the stored ranking: its rank (1 = most suspect), its score and reasons then."""

    rank: int
    suspect: Suspect


def _suspect(example_id: Any, score: Any, reasons: str) -> Suspect:
    return Suspect(int(example_id), float(score), tuple(Reason(s, float(w), float(p), d)
                                                        for s, w, p, d in json.loads(reasons)))


def stored_for(db: Database, ids: Iterable[int]) -> dict[int, Ranked]:
    """The stored ranking's entries of these examples (those not ranked are left out)."""
    sql = "SELECT example_id, rank, score, reasons FROM suspicion WHERE example_id IN ({ids})"
    return {int(i): Ranked(int(rank), _suspect(i, score, reasons)) for i, rank, score, reasons in by_ids(db, sql, ids)}


def stored_top(db: Database, limit: int) -> list[Suspect]:
    """The first `limit` examples of the stored ranking, with the reasons stored with them."""
    rows = db.execute("SELECT example_id, score, reasons FROM suspicion ORDER BY rank LIMIT ?", [limit]).fetchall()
    return [_suspect(i, score, reasons) for i, score, reasons in rows]
