"""Statistics over a database: data, the thought model against gold, reflections, review progress.

They travel as a typed dict (StoreStats): the same object is printed by `nlistral stats --json`, so its
keys are the JSON's keys.
"""
from __future__ import annotations

from typing import Any, TypedDict

from sqlite_utils import Database

from db import attributions, tallies
from pipeline.metrics import BinaryMetrics


class DatasetCount(TypedDict):
    """Examples of one dataset, split and gold label (None: unlabelled)."""

    dataset: str
    split: str
    gold_label: int | None
    count: int


class ReviewProgress(TypedDict):
    """Review decisions so far: examples by review status, bias flags, relabel suggestions."""

    status: dict[str, int]
    bias_flagged: int
    relabel_suggestions: int


class ThoughtLength(TypedDict):
    """The current thoughts of one word-length bucket, and how often their label is gold (None: none)."""

    bucket: str
    thoughts: int
    accuracy: float | None


class ReviewerDecisions(TypedDict):
    """One reviewer's standing decisions (one per example they decided), in all and by decision."""

    reviewer: str
    decisions: int
    accept: int
    reject: int
    edit: int
    flag: int


class StoreStats(TypedDict):
    """Everything `nlistral stats` shows (rates are None where nothing was counted)."""

    examples: int
    thoughts: int
    reflections: int
    predictions: int
    judgements: int
    mismatches: int
    mismatches_with_reflection: int
    reflection_coverage: float | None
    reflection_parse_failures: int
    reflections_label_not_gold: int
    thought_accuracy: float | None
    thought_precision: float | None
    thought_recall: float | None
    thought_f1: float | None
    thought_parse_failures: int
    thought_confusion: dict[str, dict[str, int]]
    thought_by_model: dict[str, dict[str, Any]]  # model -> BinaryMetrics.as_dict()
    by_dataset: list[DatasetCount]
    review: ReviewProgress
    thought_length_words: list[ThoughtLength]
    reasons: dict[str, int]  # standing decisions by the reason given
    reviewers: list[ReviewerDecisions]
    flags: dict[str, int]  # flag name -> examples whose current thought or reflection carries it
    attribution: list[dict[str, Any]]  # per attribute run: examples and mean shares (pipeline.attribute_run)


def collect_stats(db: Database) -> StoreStats:
    """Everything `nlistral stats` shows, as one JSON-ready dict."""
    examples = tallies.count_examples(db)
    by_data = [DatasetCount(dataset=d, split=s, gold_label=g, count=n) for d, s, g, n in tallies.examples_by_facet(db)]
    gen_counts = tallies.generations_by_kind(db)
    tally = tallies.thoughts_against_gold(db)
    thought = BinaryMetrics.from_counts(tally.overall)
    mismatched, reflected = tallies.mismatches(db)
    refl_failed, refl_not_gold = tallies.reflection_problems(db)
    review = tallies.review_progress(db, examples)
    buckets = [ThoughtLength(bucket=b, thoughts=n, accuracy=(c / n if n else None))
               for b, n, c in tallies.thought_lengths(db)]
    return {
        "examples": examples,
        "thoughts": gen_counts.get("thought", 0),
        "reflections": gen_counts.get("reflection", 0),
        "predictions": gen_counts.get("prediction", 0),
        "judgements": gen_counts.get("judge", 0),
        "mismatches": mismatched,
        "mismatches_with_reflection": reflected,
        "reflection_coverage": (reflected / mismatched) if mismatched else None,
        "reflection_parse_failures": refl_failed,
        "reflections_label_not_gold": refl_not_gold,
        "thought_accuracy": thought.accuracy,
        "thought_precision": thought.precision,
        "thought_recall": thought.recall,
        "thought_f1": thought.f1,
        "thought_parse_failures": thought.failed,
        "thought_confusion": thought.confusion(),
        "thought_by_model": {m: BinaryMetrics.from_counts(c).as_dict() for m, c in sorted(tally.per_model.items())},
        "by_dataset": by_data,
        "review": ReviewProgress(status=review.status, bias_flagged=review.bias_flagged,
                                 relabel_suggestions=review.relabel_suggestions),
        "thought_length_words": buckets,
        "reasons": tallies.decisions_by_reason(db),
        "reviewers": reviewer_decisions(db),
        "flags": tallies.flags_by_example(db),
        "attribution": [r.as_dict() for r in attributions.run_shares(db)],
    }


def reviewer_decisions(db: Database) -> list[ReviewerDecisions]:
    """Each reviewer's standing decisions, by name."""
    return [ReviewerDecisions(reviewer=r, decisions=sum(c.values()), accept=c.get("accept", 0),
                              reject=c.get("reject", 0), edit=c.get("edit", 0), flag=c.get("flag", 0))
            for r, c in tallies.decisions_by_reviewer(db).items()]
