"""Statistics over a database: data, the thought model against gold, reflections, review progress."""
from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from db import tallies
from db.tallies import LENGTH_BUCKETS, length_bucket_names, length_bucket_sql
from pipeline.metrics import BinaryMetrics

# The buckets' SQL lives with the other counts in db/tallies.py; these names stay importable from here.
__all__ = ["LENGTH_BUCKETS", "collect_stats", "length_bucket_names", "length_bucket_sql"]


def collect_stats(db: Database) -> dict[str, Any]:
    """Everything `nlistral stats` shows, as one JSON-ready dict."""
    examples = tallies.count_examples(db)
    by_data = [{"dataset": d, "split": s, "gold_label": g, "count": n} for d, s, g, n in tallies.examples_by_facet(db)]
    gen_counts = tallies.generations_by_kind(db)
    tally = tallies.thoughts_against_gold(db)
    thought = BinaryMetrics.from_counts(tally.overall)
    mismatched, reflected = tallies.mismatches(db)
    refl_failed, refl_not_gold = tallies.reflection_problems(db)
    review = tallies.review_progress(db, examples)
    buckets = [{"bucket": b, "thoughts": n, "accuracy": (c / n if n else None)}
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
        "review": {"status": review.status, "bias_flagged": review.bias_flagged,
                   "relabel_suggestions": review.relabel_suggestions},
        "thought_length_words": buckets,
    }
