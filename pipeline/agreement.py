"""Agreement between reviewers (`nlistral agreement`, the review app's stats screen).

For every pair of reviewers who both rated some examples: how many they share, their raw agreement and
Cohen's kappa (scikit-learn); over all reviewers, Krippendorff's alpha, nominal (the krippendorff
package). Three ratings are compared (db/agreement_reads.py): the standing decision (accept, reject,
edit, flag), the bias flag (its category, or none) and the suggested relabel (0, 1, or none). Kappa is
undefined (None) when both reviewers of a pair used one and the same category only; alpha is undefined
when no example has two ratings or every rating is the same value.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

from sqlite_utils import Database

from db.agreement_reads import Ratings, reviewer_ratings
from db.review_stats import review_pace
from db.tallies import decisions_by_reviewer


@dataclass(frozen=True)
class PairAgreement:
    """Two reviewers on the examples both rated: how many, the share they agree on, Cohen's kappa (None: undefined)."""

    a: str
    b: str
    shared: int
    agreement: float
    kappa: float | None


@dataclass(frozen=True)
class Agreement:
    """One rating compared: every pair of reviewers with shared examples, and Krippendorff's alpha over all."""

    pairs: list[PairAgreement]
    alpha: float | None


@dataclass(frozen=True)
class ReviewerSummary:
    """One reviewer: standing decisions, median seconds per decision (None: untimed), share of accepts."""

    reviewer: str
    decisions: int
    median_seconds: float | None
    accept_rate: float | None


@dataclass(frozen=True)
class AgreementReport:
    """Agreement on decisions, bias flags and relabels, and each reviewer's pace."""

    decisions: Agreement
    flags: Agreement
    relabels: Agreement
    reviewers: list[ReviewerSummary]

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `nlistral agreement --json`: the decisions' pairs and alpha at the top level."""
        return {**asdict(self.decisions), "flags": asdict(self.flags), "relabels": asdict(self.relabels),
                "reviewers": [asdict(r) for r in self.reviewers]}


def agreement_report(db: Database) -> AgreementReport:
    """Agreement between the store's reviewers, and their pace (reads the whole review log)."""
    ratings = reviewer_ratings(db)
    counts = decisions_by_reviewer(db)
    timed = {reviewer: med for reviewer, _, med in review_pace(db).by_reviewer}
    reviewers = [ReviewerSummary(r, sum(c.values()), timed.get(r), c.get("accept", 0) / sum(c.values()))
                 for r, c in counts.items()]
    reviewers += [ReviewerSummary(r, 0, med, None) for r, med in sorted(timed.items()) if r not in counts]
    return AgreementReport(compare(ratings.decisions), compare(ratings.flags), compare(ratings.relabels), reviewers)


def compare(ratings: Ratings) -> Agreement:
    """Pairs (by name) with their shared examples, agreement and kappa, and alpha over all reviewers."""
    by_example: dict[int, dict[str, str]] = {}
    for (reviewer, example_id), value in ratings.items():
        by_example.setdefault(example_id, {})[reviewer] = value
    units = {e: rs for e, rs in by_example.items() if len(rs) > 1}  # an example rated once pairs with nothing
    paired: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for rated in units.values():
        for a, b in combinations(sorted(rated), 2):
            left, right = paired.setdefault((a, b), ([], []))
            left.append(rated[a])
            right.append(rated[b])
    pairs = [PairAgreement(a, b, len(x), sum(u == v for u, v in zip(x, y, strict=True)) / len(x), kappa(x, y))
             for (a, b), (x, y) in sorted(paired.items())]
    return Agreement(pairs, alpha(units))


def kappa(x: list[str], y: list[str]) -> float | None:
    """Cohen's kappa of two raters over the same items (None when both used one and the same category only)."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(x) | set(y)) < 2:
        return None  # expected agreement is 1: kappa is 0/0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(x, y))
    return None if math.isnan(value) else value


def alpha(units: dict[int, dict[str, str]]) -> float | None:
    """Krippendorff's alpha (nominal) over units rated by two or more reviewers (None: undefined)."""
    import numpy as np

    values = sorted({v for rated in units.values() for v in rated.values()})
    if len(values) < 2:
        return None  # no disagreement is even possible: alpha is 0/0
    import krippendorff

    reviewers = sorted({r for rated in units.values() for r in rated})
    code = {v: float(i) for i, v in enumerate(values)}
    data = np.full((len(reviewers), len(units)), np.nan)
    row = {r: i for i, r in enumerate(reviewers)}
    for j, rated in enumerate(units.values()):
        for reviewer, value in rated.items():
            data[row[reviewer], j] = code[value]
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
