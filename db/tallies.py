"""Counts over the whole store: what `nlistral stats`, the review app's stats screen and the demo read.

Each function is one question answered by one or two queries; pipeline/stats.py turns the answers into
metrics. Thought lengths are counted in words (a word is about 1.3 Mistral tokens).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

# Thought length buckets, in words: (lowest, highest), the last one open.
LENGTH_BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 50), (51, 100), (101, 150), (151, 200), (201, None))
# The words of a thought (over `generations g`), as the stats buckets and the words filter count them.
WORDS_SQL = "(length(trim(g.thought_process)) - length(replace(trim(g.thought_process), ' ', '')) + 1)"

# (gold label, predicted label or None when the answer did not parse) -> count
LabelCounts = dict[tuple[int, "int | None"], int]


def length_bucket_sql() -> str:
    """The SQL expression (over a generations row aliased `g`) naming its thought's word-length bucket."""
    cases = " ".join(
        f"WHEN {WORDS_SQL} <= {hi} THEN '{lo}-{hi}'" for lo, hi in LENGTH_BUCKETS if hi is not None
    )
    last = LENGTH_BUCKETS[-1][0]
    return f"CASE {cases} ELSE '{last}+' END"


def length_bucket_names() -> list[str]:
    """The bucket names in order, e.g. ['0-50', ..., '201+']."""
    return [f"{lo}-{hi}" if hi else f"{lo}+" for lo, hi in LENGTH_BUCKETS]


def count_examples(db: Database) -> int:
    """How many examples the store holds."""
    return int(db.execute("SELECT count(*) FROM examples").fetchone()[0])


def examples_outside(db: Database, dataset: str) -> int:
    """How many examples belong to a dataset other than this one."""
    return int(db.execute("SELECT count(*) FROM examples WHERE dataset != ?", [dataset]).fetchone()[0])


def examples_by_facet(db: Database) -> list[tuple[str, str, int | None, int]]:
    """(dataset, split, gold label, count) for every combination present."""
    return db.execute("SELECT dataset, split, gold_label, count(*) FROM examples GROUP BY 1, 2, 3").fetchall()


def generations_by_kind(db: Database) -> dict[str, int]:
    """How many generations of each kind are stored (kinds with none are absent)."""
    return dict(db.execute("SELECT kind, count(*) FROM generations GROUP BY kind").fetchall())


@dataclass(frozen=True)
class ThoughtTally:
    """The current thought of each labelled example against gold: overall and per thought model."""

    overall: LabelCounts
    per_model: dict[str, LabelCounts]


def thoughts_against_gold(db: Database) -> ThoughtTally:
    """(gold, thought label) counts of the examples that have both a current thought and a gold label."""
    rows = db.execute(
        "SELECT thought_model, gold_label, thought_label, count(*) FROM examples "
        "WHERE thought_id IS NOT NULL AND gold_label IS NOT NULL GROUP BY 1, 2, 3"
    ).fetchall()
    overall: LabelCounts = {}
    per_model: dict[str, LabelCounts] = {}
    for model, gold, pred, n in rows:
        overall[(gold, pred)] = overall.get((gold, pred), 0) + n
        per_model.setdefault(model, {})[(gold, pred)] = n
    return ThoughtTally(overall, per_model)


def mismatches(db: Database) -> tuple[int, int]:
    """(examples whose thought's label differs from gold, how many of them have a reflection)."""
    total, reflected = db.execute(
        "SELECT count(*), count(reflection_id) FROM examples "
        "WHERE thought_label IS NOT NULL AND gold_label IS NOT NULL AND thought_label != gold_label"
    ).fetchone()
    return total, reflected


def flags_by_example(db: Database) -> dict[str, int]:
    """Flag name -> how many examples' current thought or reflection carries it (the flag filters' rule), from
    the partial index of flagged generations."""
    per_example: dict[int, set[str]] = {}
    for example_id, flags in db.execute(
            "SELECT g.example_id, g.flags FROM generations g INDEXED BY generations_flagged WHERE g.flags != '[]' "
            "AND g.id IN (SELECT x.thought_id FROM examples x WHERE x.id = g.example_id "
            "UNION ALL SELECT x.reflection_id FROM examples x WHERE x.id = g.example_id)"):
        per_example.setdefault(example_id, set()).update(json.loads(flags))
    counts: dict[str, int] = {}
    for names in per_example.values():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def reflection_problems(db: Database) -> tuple[int, int]:
    """(reflections that failed to parse, reflections whose label is not gold)."""
    failed, not_gold = db.execute(
        "SELECT sum(parse_status = 'failed'), sum(flags LIKE '%label_not_gold%') "
        "FROM generations WHERE kind = 'reflection'"
    ).fetchone()
    return failed or 0, not_gold or 0


@dataclass(frozen=True)
class ReviewTally:
    """Review progress: examples by review status (pending counted from the total), flags and suggestions."""

    status: dict[str, int]
    bias_flagged: int
    relabel_suggestions: int


def review_progress(db: Database, examples: int) -> ReviewTally:
    """The review state of the store's `examples` examples (every one without a state is pending)."""
    status = dict(db.execute("SELECT status, count(*) FROM review_state GROUP BY status").fetchall())
    status["pending"] = examples - sum(n for s, n in status.items() if s != "pending")
    flagged, relabelled = db.execute(
        "SELECT count(bias_category), count(suggested_label) FROM review_state"
    ).fetchone()
    return ReviewTally(status, flagged, relabelled)


def thought_lengths(db: Database) -> list[tuple[str, int, int]]:
    """(bucket, current thoughts of labelled examples in it, how many are right), in bucket order."""
    rows = db.execute(
        f"SELECT {length_bucket_sql()} AS b, count(*), sum(coalesce(g.predicted_label = e.gold_label, 0)) "
        "FROM examples e JOIN generations g ON g.id = e.thought_id "
        "WHERE g.thought_process IS NOT NULL AND e.gold_label IS NOT NULL GROUP BY b"
    ).fetchall()
    order = {name: i for i, name in enumerate(length_bucket_names())}
    return sorted(rows, key=lambda row: order[row[0]])


def added_work(db: Database) -> dict[str, int]:
    """What a store holds beyond its imported data: review decisions (one per example a step decided;
    undo and redo not counted), examples decided now, export records, runs other than imports, and
    generations not imported."""
    def q(sql: str) -> int:
        return int(db.execute(sql).fetchone()[0])

    return {
        "review decisions": q("SELECT count(*) FROM review_events WHERE example_id IS NOT NULL"),
        "examples decided": q("SELECT count(*) FROM review_state WHERE status != 'pending' "
                              "OR bias_category IS NOT NULL OR suggested_label IS NOT NULL OR note IS NOT NULL"),
        "export records": q("SELECT count(*) FROM exports"),
        "runs": q("SELECT count(*) FROM runs WHERE kind != 'import'"),
        "generations added": q("SELECT count(*) FROM generations WHERE backend != 'import'"),
    }


def decisions_by_reason(db: Database) -> dict[str, int]:
    """Standing decisions (db/team.py: one per reviewer and example) by the reason given, most frequent first."""
    return dict(db.execute("SELECT reason, count(*) FROM review_decisions WHERE reason IS NOT NULL "
                           "GROUP BY reason ORDER BY 2 DESC, 1").fetchall())


def decisions_by_reviewer(db: Database) -> dict[str, dict[str, int]]:
    """Each reviewer's standing decisions, by decision (accept, reject, edit, flag; those with none absent)."""
    out: dict[str, dict[str, int]] = {}
    for reviewer, decision, n in db.execute(
            "SELECT reviewer, decision, count(*) FROM review_decisions GROUP BY 1, 2 ORDER BY 1, 2"):
        out.setdefault(reviewer, {})[decision] = n
    return out
