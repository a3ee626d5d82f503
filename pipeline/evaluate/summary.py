"""The metrics of one evaluate run, computed from its stored predictions (so a resumed run counts all).

A summary travels as a typed dict (EvalSummary): the same object is written to the metrics JSON,
stored as the run's metrics and shown by `nlistral evaluate`, so its keys are the JSON's keys.
"""
from __future__ import annotations

from typing import Any, TypedDict

from sqlite_utils import Database

from db import predictions
from db.tallies import length_bucket_names
from pipeline.metrics import BinaryMetrics

NO_THOUGHT = "no thought"


class LengthBucket(TypedDict):
    """Accuracy on the predictions whose thought is of one word-length bucket."""

    bucket: str
    examples: int
    accuracy: float | None


class Speed(TypedDict):
    """Tokens and decoding time of a run's predictions."""

    prompt_tokens: int
    generated_tokens: int
    generation_seconds: float
    generated_tokens_per_s: float | None
    examples_per_s: float | None


class EvalSummary(TypedDict):
    """What summarize computes from a run's predictions."""

    predictions: int
    metrics: dict[str, Any]  # BinaryMetrics.as_dict()
    parse_status: dict[str, int]  # ok, repaired, failed
    stop_reasons: dict[str, int]
    by_thought_length: list[LengthBucket]
    speed: Speed


class RunSummary(EvalSummary, total=False):
    """A finished evaluate call's summary: the metrics plus what was run, and what to know about it."""

    run_id: int
    model: str
    config: dict[str, Any]  # EvalOptions.identity()
    warnings: list[str]
    notes: list[str]
    unlabelled_left_out: int


def prediction_pairs(db: Database, run_id: int) -> list[tuple[int, int | None]]:
    """(gold, predicted) for each labelled example of the run; predicted None where parsing failed."""
    return [(gold, None if status == "failed" else label) for gold, label, status in predictions.outcomes(db, run_id)]


def by_thought_length(db: Database, run_id: int) -> list[LengthBucket]:
    """Accuracy by the word length of the model's own thought (db.tallies' buckets; failed = wrong)."""
    order = {name: i for i, name in enumerate([*length_bucket_names(), NO_THOUGHT])}
    rows = predictions.accuracy_by_thought_length(db, run_id, NO_THOUGHT)
    return sorted((LengthBucket(bucket=b, examples=n, accuracy=right / n if n else None) for b, n, right in rows),
                  key=lambda r: order[r["bucket"]])


def summarize(db: Database, run_id: int) -> EvalSummary:
    """Metrics, confusion, parse accounting, accuracy by thought length and speed of one run."""
    metrics = BinaryMetrics.from_pairs(prediction_pairs(db, run_id))
    parse = predictions.parse_counts(db, run_id)
    totals = predictions.totals(db, run_id)
    n, tokens_out = totals.predictions, totals.tokens_out
    seconds = (totals.latency_ms or 0) / 1000
    return EvalSummary(
        predictions=n,
        metrics=metrics.as_dict(),
        parse_status={s: parse.get(s, 0) for s in ("ok", "repaired", "failed")},
        stop_reasons=predictions.stop_counts(db, run_id),
        by_thought_length=by_thought_length(db, run_id),
        speed=Speed(
            prompt_tokens=totals.tokens_in or 0,
            generated_tokens=tokens_out or 0,
            generation_seconds=round(seconds, 3),
            generated_tokens_per_s=round(tokens_out / seconds, 1) if seconds and tokens_out else None,
            examples_per_s=round(n / seconds, 3) if seconds else None,
        ),
    )
