"""Statistics over a database: data, the thought model against gold, reflections, review progress."""
from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from pipeline.metrics import BinaryMetrics

# Thought length buckets, in words (a word is about 1.3 Mistral tokens).
LENGTH_BUCKETS = ((0, 50), (51, 100), (101, 150), (151, 200), (201, None))
_WORDS = "(length(trim(g.thought_process)) - length(replace(trim(g.thought_process), ' ', '')) + 1)"


def length_bucket_sql() -> str:
    """The SQL expression (over a generations row aliased `g`) naming its thought's word-length bucket."""
    cases = " ".join(
        f"WHEN {_WORDS} <= {hi} THEN '{lo}-{hi}'" for lo, hi in LENGTH_BUCKETS if hi is not None
    )
    last = LENGTH_BUCKETS[-1][0]
    return f"CASE {cases} ELSE '{last}+' END"


def length_bucket_names() -> list[str]:
    """The bucket names in order, e.g. ['0-50', ..., '201+']."""
    return [f"{lo}-{hi}" if hi else f"{lo}+" for lo, hi in LENGTH_BUCKETS]


def collect_stats(db: Database) -> dict[str, Any]:
    """Everything `nlistral stats` shows, as one JSON-ready dict."""
    q = lambda sql, args=(): db.execute(sql, list(args)).fetchall()  # noqa: E731
    examples = q("SELECT count(*) FROM examples")[0][0]
    by_data = [
        {"dataset": d, "split": s, "gold_label": g, "count": n}
        for d, s, g, n in q("SELECT dataset, split, gold_label, count(*) FROM examples GROUP BY 1, 2, 3")
    ]
    gen_counts = dict(q("SELECT kind, count(*) FROM generations GROUP BY kind"))
    # The current thought of each labelled example against gold, overall and per model.
    rows = q(
        "SELECT thought_model, gold_label, thought_label, count(*) FROM examples "
        "WHERE thought_id IS NOT NULL AND gold_label IS NOT NULL GROUP BY 1, 2, 3"
    )
    overall: dict[tuple[int, int | None], int] = {}
    per_model: dict[str, dict[tuple[int, int | None], int]] = {}
    for model, gold, pred, n in rows:
        overall[(gold, pred)] = overall.get((gold, pred), 0) + n
        per_model.setdefault(model, {})[(gold, pred)] = n
    thought = BinaryMetrics.from_counts(overall)
    mismatch_rows = q(
        "SELECT count(*), count(reflection_id) FROM examples "
        "WHERE thought_label IS NOT NULL AND gold_label IS NOT NULL AND thought_label != gold_label"
    )[0]
    refl = q(
        "SELECT count(*), sum(parse_status = 'failed'), sum(flags LIKE '%label_not_gold%') "
        "FROM generations WHERE kind = 'reflection'"
    )[0]
    review = dict(q("SELECT status, count(*) FROM review_state GROUP BY status"))
    review["pending"] = examples - sum(n for s, n in review.items() if s != "pending")
    flagged, relabelled = q(
        "SELECT count(bias_category), count(suggested_label) FROM review_state"
    )[0]
    buckets = [
        {"bucket": b, "thoughts": n, "accuracy": (c / n if n else None)}
        for b, n, c in q(
            f"SELECT {length_bucket_sql()} AS b, count(*), sum(coalesce(g.predicted_label = e.gold_label, 0)) "
            "FROM examples e JOIN generations g ON g.id = e.thought_id "
            "WHERE g.thought_process IS NOT NULL AND e.gold_label IS NOT NULL GROUP BY b"
        )
    ]
    order = {name: i for i, name in enumerate(length_bucket_names())}
    buckets.sort(key=lambda b: order[b["bucket"]])
    return {
        "examples": examples,
        "thoughts": gen_counts.get("thought", 0),
        "reflections": gen_counts.get("reflection", 0),
        "predictions": gen_counts.get("prediction", 0),
        "judgements": gen_counts.get("judge", 0),
        "mismatches": mismatch_rows[0],
        "mismatches_with_reflection": mismatch_rows[1],
        "reflection_coverage": (mismatch_rows[1] / mismatch_rows[0]) if mismatch_rows[0] else None,
        "reflection_parse_failures": refl[1] or 0,
        "reflections_label_not_gold": refl[2] or 0,
        "thought_accuracy": thought.accuracy,
        "thought_precision": thought.precision,
        "thought_recall": thought.recall,
        "thought_f1": thought.f1,
        "thought_parse_failures": thought.failed,
        "thought_confusion": thought.confusion(),
        "thought_by_model": {m: BinaryMetrics.from_counts(c).as_dict() for m, c in sorted(per_model.items())},
        "by_dataset": by_data,
        "review": {"status": review, "bias_flagged": flagged, "relabel_suggestions": relabelled},
        "thought_length_words": buckets,
    }
