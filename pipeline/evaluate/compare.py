"""`nlistral compare`: two evaluate runs side by side, and the examples where their answers differ."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db.predictions import paired_answers
from db.runs import get_run
from pipeline.evaluate.errors import EvaluationError
from pipeline.evaluate.runner import run_summary

METRIC_ROWS = ("accuracy", "precision", "recall", "f1", "macro_f1", "parse_failure_rate")


@dataclass(frozen=True)
class Difference:
    """One example both runs answered, differently (another label, or one failed to parse)."""

    example_id: int
    gold: int | None
    label_a: int | None  # None: failed to parse
    label_b: int | None
    hypothesis: str


@dataclass(frozen=True)
class Comparison:
    """Metrics of two runs and how their answers differ on the examples both evaluated."""

    run_a: int
    run_b: int
    model_a: str
    model_b: str
    prompt_a: str
    prompt_b: str
    metrics: list[tuple[str, float | None, float | None]]
    n_a: int
    n_b: int
    common: int
    only_a_right: int
    only_b_right: int
    differences: list[Difference]

    @property
    def mcnemar_p(self) -> float | None:
        """Exact two-sided McNemar p-value on the examples only one run got right (None when none)."""
        n, k = self.only_a_right + self.only_b_right, min(self.only_a_right, self.only_b_right)
        if n == 0:
            return None
        p: float = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n  # exact: integer true division
        return min(1.0, p)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_a": self.run_a, "run_b": self.run_b, "model_a": self.model_a, "model_b": self.model_b,
            "prompt_a": self.prompt_a, "prompt_b": self.prompt_b,
            "metrics": {name: {"a": a, "b": b} for name, a, b in self.metrics},
            "n_a": self.n_a, "n_b": self.n_b, "common": self.common,
            "only_a_right": self.only_a_right, "only_b_right": self.only_b_right, "mcnemar_p": self.mcnemar_p,
            "differences": [d.__dict__ for d in self.differences],
        }


def compare_runs(db: Database, run_a: int, run_b: int) -> Comparison:
    """Compare two evaluate runs (EvaluationError when either is missing or not an evaluate run)."""
    summaries = []
    for run_id in (run_a, run_b):
        try:
            summaries.append(run_summary(db, run_id))
        except KeyError:
            raise EvaluationError(f"no run {run_id} in this database; use a run id that `nlistral evaluate` "
                                  "printed") from None
    a, b = (s["metrics"] for s in summaries)
    pairs = paired_answers(db, run_a, run_b)
    differences, only_a, only_b = [], 0, 0
    for pair in pairs:
        gold = pair.gold
        la = None if pair.status_a == "failed" else pair.label_a
        lb = None if pair.status_b == "failed" else pair.label_b
        right_a, right_b = gold is not None and la == gold, gold is not None and lb == gold
        only_a += right_a and not right_b
        only_b += right_b and not right_a
        if la != lb:
            differences.append(Difference(pair.example_id, gold, la, lb, pair.hypothesis or ""))
    configs = [get_run(db, run_id).config for run_id in (run_a, run_b)]
    return Comparison(
        run_a, run_b, _model(configs[0]), _model(configs[1]), prompt_mode(configs[0]), prompt_mode(configs[1]),
        [(name, a.get(name), b.get(name)) for name in METRIC_ROWS],
        a.get("n", 0), b.get("n", 0), len(pairs), only_a, only_b, differences,
    )


def _model(config: dict[str, Any]) -> str:
    return str(config.get("adapter") or config.get("base") or config.get("model") or "?")  # model: a served run


def prompt_mode(config: dict[str, Any]) -> str:
    """How an evaluate run asked: for a thought and a label, for the label only, or after another example's thought."""
    if config.get("shuffle_thoughts"):
        return "another example's thought (--shuffle-thoughts)"
    if config.get("with_thought") is False:
        return "label only (--no-thought)"
    return "thought and label"
