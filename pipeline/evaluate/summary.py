"""The metrics of one evaluate run, computed from its stored predictions (so a resumed run counts all)."""
from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from pipeline.metrics import BinaryMetrics
from pipeline.stats import length_bucket_names, length_bucket_sql

NO_THOUGHT = "no thought"


def prediction_pairs(db: Database, run_id: int) -> list[tuple[int, int | None]]:
    """(gold, predicted) for each labelled example of the run; predicted None where parsing failed."""
    return [
        (gold, None if status == "failed" else label)
        for gold, label, status in db.execute(
            "SELECT e.gold_label, g.predicted_label, g.parse_status FROM generations g "
            "JOIN examples e ON e.id = g.example_id "
            "WHERE g.run_id = ? AND g.kind = 'prediction' AND e.gold_label IS NOT NULL", [run_id])
    ]


def by_thought_length(db: Database, run_id: int) -> list[dict[str, Any]]:
    """Accuracy by the word length of the model's own thought (pipeline.stats buckets; failed = wrong)."""
    rows = db.execute(
        f"SELECT CASE WHEN g.thought_process IS NULL OR trim(g.thought_process) = '' THEN '{NO_THOUGHT}' "
        f"ELSE {length_bucket_sql()} END AS b, count(*), "
        "sum(g.parse_status != 'failed' AND g.predicted_label = e.gold_label) "
        "FROM generations g JOIN examples e ON e.id = g.example_id "
        "WHERE g.run_id = ? AND g.kind = 'prediction' AND e.gold_label IS NOT NULL GROUP BY b", [run_id]
    ).fetchall()
    order = {name: i for i, name in enumerate([*length_bucket_names(), NO_THOUGHT])}
    return sorted(
        ({"bucket": b, "examples": n, "accuracy": (c or 0) / n if n else None} for b, n, c in rows),
        key=lambda r: order[r["bucket"]],
    )


def summarize(db: Database, run_id: int) -> dict[str, Any]:
    """Metrics, confusion, parse accounting, accuracy by thought length and speed of one run."""
    metrics = BinaryMetrics.from_pairs(prediction_pairs(db, run_id))
    parse = dict(db.execute(
        "SELECT parse_status, count(*) FROM generations WHERE run_id = ? AND kind = 'prediction' GROUP BY 1",
        [run_id]).fetchall())
    stops = dict(db.execute(
        "SELECT coalesce(json_extract(params, '$.stop'), 'unknown'), count(*) FROM generations "
        "WHERE run_id = ? AND kind = 'prediction' GROUP BY 1", [run_id]).fetchall())
    n, tokens_in, tokens_out, ms = db.execute(
        "SELECT count(*), sum(tokens_in), sum(tokens_out), sum(latency_ms) FROM generations "
        "WHERE run_id = ? AND kind = 'prediction'", [run_id]).fetchone()
    seconds = (ms or 0) / 1000
    return {
        "predictions": n,
        "metrics": metrics.as_dict(),
        "parse_status": {s: parse.get(s, 0) for s in ("ok", "repaired", "failed")},
        "stop_reasons": stops,
        "by_thought_length": by_thought_length(db, run_id),
        "speed": {
            "prompt_tokens": tokens_in or 0,
            "generated_tokens": tokens_out or 0,
            "generation_seconds": round(seconds, 3),
            "generated_tokens_per_s": round(tokens_out / seconds, 1) if seconds and tokens_out else None,
            "examples_per_s": round(n / seconds, 3) if seconds else None,
        },
    }
