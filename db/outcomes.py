"""Outcome cells: where each example stands, as thought × reflection × latest prediction against gold.

Each axis takes one value per example:

- thought (the current thought, examples.thought_id): `right` (its label is gold), `wrong` (the
  disagreements queue's condition), `unparsed` (a thought without a label: it failed to parse), `none`
  (no thought yet), `no_gold` (a label, but the example has no gold label).
- reflection (the current reflection, examples.reflection_id): `gold` (reaches gold), `not_gold`,
  `unparsed` (a reflection without a label: kept apart, since it neither fixes nor misses), `none`,
  `no_gold`.
- prediction (the example's latest prediction of any evaluate run, as the model_errors queue reads it):
  `right`, `wrong`, `unparsed` (failed to parse, or no label), `none` (never predicted), `no_gold`.

The model_errors queue holds the examples whose prediction is `wrong` or `unparsed`.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from db.queues import LATEST_PREDICTIONS, queue_sql
from db.scope import Scope

AXES = ("thought", "reflection", "prediction")


@dataclass(frozen=True)
class Cell:
    """A named cell: a meaning, and the value each axis must have (None: any)."""

    meaning: str
    thought: str | None = None
    reflection: str | None = None
    prediction: str | None = None

    def holds(self, thought: str, reflection: str, prediction: str) -> bool:
        """Whether an example with these axis values is in this cell."""
        return all(want is None or want == got for want, got in
                   zip((self.thought, self.reflection, self.prediction), (thought, reflection, prediction)))


CELLS = {  # the named cells, in the order they are shown
    "thought_right": Cell("the thought reaches gold", thought="right"),
    "fixed_by_reflection": Cell("the thought is wrong; its reflection reaches gold", "wrong", "gold"),
    "reflection_not_gold": Cell("the thought is wrong; its reflection reaches another label", "wrong", "not_gold"),
    "reflection_unparsed": Cell("the thought is wrong; its reflection failed to parse", "wrong", "unparsed"),
    "needs_reflection": Cell("the thought is wrong and has no reflection (the needs_reflection queue)",
                             "wrong", "none"),
    "thought_unparsed": Cell("the thought failed to parse", thought="unparsed"),
    "adapter_still_wrong_after_reflection": Cell("the reflection reaches gold; the latest prediction is wrong",
                                                 reflection="gold", prediction="wrong"),
    "both_models_disagree_with_gold": Cell("the thought and the latest prediction are both wrong",
                                           "wrong", prediction="wrong"),
    "adapter_regressed": Cell("the thought is right; the latest prediction is wrong", "right",
                              prediction="wrong"),
}


@dataclass(frozen=True)
class GridRow:
    """One full cell (thought, reflection, prediction) and how many examples are in it."""

    thought: str
    reflection: str
    prediction: str
    count: int


@dataclass(frozen=True)
class Outcomes:
    """The full cells with examples in them, and the count of each named cell (CELLS)."""

    grid: tuple[GridRow, ...]
    cells: dict[str, int]


def _verdict(present: str, failed: str, differs: str, agrees: str, right: str, wrong: str) -> str:
    """The SQL CASE giving one axis' value; `present` is NULL when the example has no such answer."""
    return (f"CASE WHEN {present} IS NULL THEN 'none' WHEN {failed} THEN 'unparsed' "
            f"WHEN e.gold_label IS NULL THEN 'no_gold' WHEN {differs} THEN '{wrong}' "
            f"WHEN {agrees} THEN '{right}' END")


_THOUGHT = _verdict("e.thought_id", "e.thought_label IS NULL", str(queue_sql("disagreements")[0]),
                    "e.thought_label = e.gold_label", "right", "wrong")
_REFLECTION = _verdict("e.reflection_id", "e.reflection_label IS NULL", "e.reflection_label != e.gold_label",
                       "e.reflection_label = e.gold_label", "gold", "not_gold")
_PREDICTION = _verdict("p.id", "p.parse_status = 'failed' OR p.predicted_label IS NULL",
                       "p.predicted_label != e.gold_label", "p.predicted_label = e.gold_label", "right", "wrong")


def outcomes(db: Database, scope: Scope | None = None) -> Outcomes:
    """Every example in scope (its limit aside) counted into its full cell, and the named cells' counts."""
    where, args = (scope or Scope()).where("e")
    rows = db.execute(
        f"SELECT {_THOUGHT} AS t, {_REFLECTION} AS r, {_PREDICTION} AS p, count(*) FROM examples e "
        f"LEFT JOIN ({LATEST_PREDICTIONS.format(run='')}) latest ON latest.example_id = e.id "
        f"LEFT JOIN generations p ON p.id = latest.id WHERE {where} GROUP BY t, r, p ORDER BY count(*) DESC, t, r, p",
        args).fetchall()
    grid = tuple(GridRow(str(t), str(r), str(p), int(n)) for t, r, p, n in rows)
    cells = {name: sum(g.count for g in grid if cell.holds(g.thought, g.reflection, g.prediction))
             for name, cell in CELLS.items()}
    return Outcomes(grid, cells)
