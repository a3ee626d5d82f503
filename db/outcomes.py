"""Outcome cells: where each example stands, as thought × reflection × latest prediction against gold.

Each axis takes one value per example:

- thought (the current thought, examples.thought_id): `right` (its label is gold), `wrong` (the
  disagreements queue's condition), `unparsed` (a thought without a label: it failed to parse), `none`
  (no thought yet), `no_gold` (a label, but the example has no gold label).
- reflection (the current reflection, examples.reflection_id): `gold` (reaches gold), `not_gold`,
  `unparsed` (a reflection without a label: kept apart, since it neither fixes nor misses), `none`,
  `no_gold`. Where a blind reflection of the current thought exists (the latest generation of kind
  'blind_reflection' whose parent is examples.thought_id, with a label: `nlistral reflect --blind`), a
  reflection with a label says more: `robust` (both reach gold), `rationalised` (the reflection shown gold
  reaches it, the blind one does not: it may only have argued its way there), `doubts_gold` (neither
  reaches gold). A blind reflection that failed to parse changes nothing.
- prediction (the example's latest prediction of any evaluate run, as the model_errors queue reads it):
  `right`, `wrong`, `unparsed` (failed to parse, or no label), `none` (never predicted), `no_gold`.

The model_errors queue holds the examples whose prediction is `wrong` or `unparsed`. THOUGHT_SQL,
REFLECTION_SQL and PREDICTION_SQL are each axis as an SQL expression over `examples e` alone, and
cell_condition(name) the WHERE condition of a named cell (for a review queue of it).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from db.queues import LATEST_PREDICTIONS, queue_sql
from db.scope import Scope

AXES = ("thought", "reflection", "prediction")
REACHES_GOLD = ("gold", "robust", "rationalised")  # the reflection values whose reflection reaches gold

Want = str | tuple[str, ...] | None  # an axis' wanted value(s) in a named cell (None: any)


def _values(want: str | tuple[str, ...]) -> tuple[str, ...]:
    return (want,) if isinstance(want, str) else want


@dataclass(frozen=True)
class Cell:
    """A named cell: a meaning, and the value (or any of the values) each axis must have (None: any)."""

    meaning: str
    thought: Want = None
    reflection: Want = None
    prediction: Want = None

    def wants(self) -> dict[str, tuple[str, ...]]:
        """The axes this cell constrains, each with the values it accepts."""
        return {axis: _values(want) for axis, want in zip(AXES, (self.thought, self.reflection, self.prediction))
                if want is not None}

    def holds(self, thought: str, reflection: str, prediction: str) -> bool:
        """Whether an example with these axis values is in this cell."""
        got = dict(zip(AXES, (thought, reflection, prediction)))
        return all(got[axis] in values for axis, values in self.wants().items())


CELLS = {  # the named cells, in the order they are shown
    "thought_right": Cell("the thought reaches gold", thought="right"),
    "fixed_by_reflection": Cell("the thought is wrong; its reflection reaches gold (so does the blind one, where "
                                "there is one)", "wrong", ("gold", "robust")),
    "reflection_not_gold": Cell("the thought is wrong; its reflection reaches another label", "wrong",
                                ("not_gold", "doubts_gold")),
    "reflection_unparsed": Cell("the thought is wrong; its reflection failed to parse", "wrong", "unparsed"),
    "needs_reflection": Cell("the thought is wrong and has no reflection (the needs_reflection queue)",
                             "wrong", "none"),
    "reflection_rationalises": Cell("the thought is wrong; its reflection reaches gold once shown it, the blind "
                                    "reflection (not shown gold) does not", "wrong", "rationalised"),
    "reflections_doubt_gold": Cell("the thought is wrong; neither its reflection nor the blind one reaches gold",
                                   "wrong", "doubts_gold"),
    "thought_unparsed": Cell("the thought failed to parse", thought="unparsed"),
    "adapter_still_wrong_after_reflection": Cell("the reflection reaches gold; the latest prediction is wrong",
                                                 reflection=REACHES_GOLD, prediction="wrong"),
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
    """The SQL CASE giving one axis' value; `present` is NULL when the example has no such answer; right and
    wrong are SQL expressions (a quoted value, or a CASE that says more)."""
    return (f"CASE WHEN {present} IS NULL THEN 'none' WHEN {failed} THEN 'unparsed' "
            f"WHEN e.gold_label IS NULL THEN 'no_gold' WHEN {differs} THEN {wrong} "
            f"WHEN {agrees} THEN {right} END")


# The label of the latest blind reflection of the current thought (NULL: none, or it did not parse).
BLIND_LABEL_SQL = (
    "(SELECT b.predicted_label FROM generations b WHERE b.id = (SELECT max(x.id) FROM generations x "
    "WHERE x.example_id = e.id AND x.kind = 'blind_reflection' AND x.parent_id = e.thought_id))"
)
_BLIND_AT_GOLD = f"CASE {BLIND_LABEL_SQL} = e.gold_label"  # 1, 0, or NULL without a blind label

THOUGHT_SQL = _verdict("e.thought_id", "e.thought_label IS NULL", str(queue_sql("disagreements")[0]),
                       "e.thought_label = e.gold_label", "'right'", "'wrong'")
REFLECTION_SQL = _verdict(
    "e.reflection_id", "e.reflection_label IS NULL", "e.reflection_label != e.gold_label",
    "e.reflection_label = e.gold_label",
    f"{_BLIND_AT_GOLD} WHEN 1 THEN 'robust' WHEN 0 THEN 'rationalised' ELSE 'gold' END",
    f"{_BLIND_AT_GOLD} WHEN 0 THEN 'doubts_gold' ELSE 'not_gold' END")
# The prediction axis over `p`, the latest prediction (outcomes joins it once; PREDICTION_SQL looks it up per row).
_PREDICTION_OF_P = _verdict("p.id", "p.parse_status = 'failed' OR p.predicted_label IS NULL",
                            "p.predicted_label != e.gold_label", "p.predicted_label = e.gold_label",
                            "'right'", "'wrong'")
PREDICTION_SQL = (
    f"coalesce((SELECT {_PREDICTION_OF_P} FROM generations p WHERE p.id = (SELECT max(x.id) FROM generations x "
    "WHERE x.example_id = e.id AND x.kind = 'prediction')), 'none')"
)
AXIS_SQL = {"thought": THOUGHT_SQL, "reflection": REFLECTION_SQL, "prediction": PREDICTION_SQL}
# Plain conditions equal to an axis value, which the partial indexes serve (examples_disagree for wrong thoughts).
_PLAIN: dict[tuple[str, tuple[str, ...]], str] = {("thought", ("wrong",)): str(queue_sql("disagreements")[0]),
          ("thought", ("right",)): "e.thought_label = e.gold_label"}


def cell_condition(name: str) -> str:
    """The WHERE condition over `examples e` (no parameters) selecting the examples of the named cell (CELLS)."""
    if name not in CELLS:
        raise KeyError(f"unknown outcome cell {name!r}; expected one of {', '.join(CELLS)}")
    terms = []
    for axis, values in CELLS[name].wants().items():
        plain = _PLAIN.get((axis, values))
        terms.append(plain or f"({AXIS_SQL[axis]}) IN ({', '.join(repr(v) for v in values)})")
    return " AND ".join(terms) or "1"


def outcomes(db: Database, scope: Scope | None = None) -> Outcomes:
    """Every example in scope (its limit aside) counted into its full cell, and the named cells' counts."""
    where, args = (scope or Scope()).where("e")
    rows = db.execute(
        f"SELECT {THOUGHT_SQL} AS t, {REFLECTION_SQL} AS r, {_PREDICTION_OF_P} AS p, count(*) "
        f"FROM examples e LEFT JOIN ({LATEST_PREDICTIONS.format(run='')}) latest ON latest.example_id = e.id "
        f"LEFT JOIN generations p ON p.id = latest.id WHERE {where} GROUP BY t, r, p ORDER BY count(*) DESC, t, r, p",
        args).fetchall()
    grid = tuple(GridRow(str(t), str(r), str(p), int(n)) for t, r, p, n in rows)
    cells = {name: sum(g.count for g in grid if cell.holds(g.thought, g.reflection, g.prediction))
             for name, cell in CELLS.items()}
    return Outcomes(grid, cells)


def reflection_value(gold: int | None, reflection: int | None, blind: int | None) -> str:
    """The reflection axis for an example with a current reflection, from its label and the latest blind
    reflection's label of the same thought (None: no label), as REFLECTION_SQL gives it."""
    if reflection is None:
        return "unparsed"
    if gold is None:
        return "no_gold"
    if reflection == gold:
        return "gold" if blind is None else "robust" if blind == gold else "rationalised"
    return "doubts_gold" if blind is not None and blind != gold else "not_gold"
