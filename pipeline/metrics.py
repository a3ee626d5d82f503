"""Binary classification metrics where an unparseable answer is a wrong answer, never a default label."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class BinaryMetrics:
    """Counts and rates for label 1 (entailment) against gold; `failed` answers count as wrong."""

    n: int
    tp: int
    fp: int
    tn: int
    fn: int
    failed_pos: int  # gold 1, answer unparseable
    failed_neg: int  # gold 0, answer unparseable

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int | None]]) -> BinaryMetrics:
        """From (gold, predicted) pairs; predicted None means the answer did not parse."""
        counts: dict[tuple[int, int | None], int] = {}
        for pair in pairs:
            counts[pair] = counts.get(pair, 0) + 1
        return cls.from_counts(counts)

    @classmethod
    def from_counts(cls, counts: dict[tuple[int, int | None], int]) -> BinaryMetrics:
        """From a {(gold, predicted): count} table (predicted None: did not parse)."""
        def c(gold: int, predicted: int | None) -> int:
            return counts.get((gold, predicted), 0)

        return cls(n=sum(counts.values()), tp=c(1, 1), fp=c(0, 1), tn=c(0, 0), fn=c(1, 0),
                   failed_pos=c(1, None), failed_neg=c(0, None))

    @property
    def failed(self) -> int:
        return self.failed_pos + self.failed_neg

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.n)

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn + self.failed_pos)

    @property
    def f1(self) -> float | None:
        return _f1(self.precision, self.recall)

    @property
    def f1_negative(self) -> float | None:
        return _f1(_ratio(self.tn, self.tn + self.fn), _ratio(self.tn, self.tn + self.fp + self.failed_neg))

    @property
    def macro_f1(self) -> float | None:
        if self.f1 is None or self.f1_negative is None:
            return None
        return (self.f1 + self.f1_negative) / 2

    @property
    def mismatches(self) -> int:
        """Parsed answers that differ from gold."""
        return self.fp + self.fn

    @property
    def parse_failure_rate(self) -> float | None:
        return _ratio(self.failed, self.n)

    def confusion(self) -> dict[str, dict[str, int]]:
        """Rows gold label, columns predicted label (or failed)."""
        return {
            "gold_1": {"pred_1": self.tp, "pred_0": self.fn, "failed": self.failed_pos},
            "gold_0": {"pred_1": self.fp, "pred_0": self.tn, "failed": self.failed_neg},
        }

    def as_dict(self) -> dict[str, Any]:
        """Counts, rates and the confusion matrix, ready for JSON."""
        rates = {k: getattr(self, k) for k in ("accuracy", "precision", "recall", "f1", "macro_f1",
                                                 "parse_failure_rate")}
        return {**asdict(self), **rates, "failed": self.failed, "mismatches": self.mismatches,
                "confusion": self.confusion()}
