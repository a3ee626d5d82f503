"""The predictions of evaluate runs (generations of kind 'prediction'): read to score, resume and compare runs."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlite_utils import Database

from db.tallies import length_bucket_sql

_OF_RUN = "g.run_id = ? AND g.kind = 'prediction'"
_LABELLED = f"FROM generations g JOIN examples e ON e.id = g.example_id WHERE {_OF_RUN} AND e.gold_label IS NOT NULL"


@dataclass(frozen=True)
class Totals:
    """How many predictions a run stored, and their tokens and decoding time summed."""

    predictions: int
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: float | None


@dataclass(frozen=True)
class PairedAnswer:
    """One example two runs both answered: gold, each run's label and parse status, the hypothesis' start."""

    example_id: int
    gold: int | None
    label_a: int | None
    status_a: str
    label_b: int | None
    status_b: str
    hypothesis: str | None


def predicted_ids(db: Database, run_id: int) -> set[int]:
    """The examples the run has stored a prediction for."""
    return {int(r[0]) for r in db.execute(f"SELECT g.example_id FROM generations g WHERE {_OF_RUN}", [run_id])}


def outcomes(db: Database, run_id: int) -> list[tuple[int, int | None, str]]:
    """(gold, predicted label, parse status) of each prediction of the run on a labelled example."""
    return [(int(gold), label, str(status)) for gold, label, status in db.execute(
        f"SELECT e.gold_label, g.predicted_label, g.parse_status {_LABELLED}", [run_id])]


def accuracy_by_thought_length(db: Database, run_id: int, empty: str) -> list[tuple[str, int, int]]:
    """(bucket, predictions, right ones) over the run's labelled predictions, by their thought's word length.

    The buckets are db.tallies' (length_bucket_sql); a prediction without a thought is in bucket `empty`.
    A prediction that failed to parse counts as wrong.
    """
    rows = db.execute(
        "SELECT CASE WHEN g.thought_process IS NULL OR trim(g.thought_process) = '' THEN ? "
        f"ELSE {length_bucket_sql()} END AS b, count(*), "
        f"sum(g.parse_status != 'failed' AND g.predicted_label = e.gold_label) {_LABELLED} GROUP BY b",
        [empty, run_id]).fetchall()
    return [(str(b), int(n), int(right or 0)) for b, n, right in rows]


def parse_counts(db: Database, run_id: int) -> dict[str, int]:
    """Predictions of the run by parse status."""
    return {str(s): int(n) for s, n in db.execute(
        f"SELECT g.parse_status, count(*) FROM generations g WHERE {_OF_RUN} GROUP BY 1", [run_id])}


def stop_counts(db: Database, run_id: int) -> dict[str, int]:
    """Predictions of the run by why decoding stopped (params.stop; 'unknown' where it is not recorded)."""
    return {str(s): int(n) for s, n in db.execute(
        "SELECT coalesce(json_extract(g.params, '$.stop'), 'unknown'), count(*) FROM generations g "
        f"WHERE {_OF_RUN} GROUP BY 1", [run_id])}


def totals(db: Database, run_id: int) -> Totals:
    """The run's prediction count, summed prompt and answer tokens, and summed decoding time."""
    n, tokens_in, tokens_out, ms = db.execute(
        f"SELECT count(*), sum(g.tokens_in), sum(g.tokens_out), sum(g.latency_ms) FROM generations g WHERE {_OF_RUN}",
        [run_id]).fetchone()
    return Totals(int(n), tokens_in, tokens_out, ms)


def paired_answers(db: Database, run_a: int, run_b: int) -> list[PairedAnswer]:
    """The examples both runs answered, by id, with both answers (hypothesis cut to 200 characters)."""
    rows = db.execute(
        """
        SELECT e.id, e.gold_label, pa.predicted_label, pa.parse_status, pb.predicted_label, pb.parse_status,
               substr(e.hypothesis, 1, 200)
        FROM generations pa JOIN generations pb ON pb.example_id = pa.example_id
        JOIN examples e ON e.id = pa.example_id
        WHERE pa.run_id = ? AND pa.kind = 'prediction' AND pb.run_id = ? AND pb.kind = 'prediction'
        ORDER BY e.id
        """, [run_a, run_b]).fetchall()
    return [PairedAnswer(*row) for row in rows]


def thoughts(db: Database, run_id: int) -> Iterator[tuple[int, str]]:
    """(example id, thought) of each prediction of the run that has a non-blank thought."""
    for example_id, thought in db.execute(
            f"SELECT g.example_id, g.thought_process FROM generations g WHERE {_OF_RUN} "
            "AND g.thought_process IS NOT NULL AND trim(g.thought_process) != ''", [run_id]):
        yield int(example_id), str(thought)
