"""The curated label is one rule: the stats screen's balance (SQL) agrees with what a curated export trains on."""
from __future__ import annotations

from db import open_db
from db.curation import curated_label_sql
from db.review_stats import accepted_balance
from db.reviews import record
from db.scope import Scope
from exports.rules import sft_target
from exports.source import Source


def _curated_labels(db) -> dict[int, tuple[str, int | None, int | None]]:
    """Each example's status, gold label and the label a curated export (default options) trains it on."""
    splits = tuple(r[0] for r in db.execute("SELECT DISTINCT split FROM examples"))
    out = {}
    for row in Source(Scope(splits=splits), reflections="reviewed", review=True).rows(db):
        target = sft_target(row, "curated")
        out[row.id] = (row.status or "pending", row.gold, None if isinstance(target, str) else target.label)
    return out


def test_the_stats_balance_equals_the_curated_labels_of_an_export(demo_db_path):
    db = open_db(demo_db_path)
    gold = dict(db.execute("SELECT id, gold_label FROM examples").fetchall())
    record(db, "accept", [1, 2, 19, 39], reviewer="r")  # right thought; reflection right; reflection wrong; unparsed
    record(db, "edit", [3, 15], reviewer="r", payload={"thought": "Mine.", "label": 0})  # gold 0: kept
    record(db, "edit", [4], reviewer="r", payload={"thought": "Mine.", "label": 0})  # gold 1: edit_not_gold
    record(db, "reject", [5, 6], reviewer="r")
    record(db, "flag_bias", [7, 8, 10], reviewer="r", payload={"category": "gold_wrong", "note": ""})
    record(db, "accept", [7], reviewer="r")  # accepted but flagged: left out
    record(db, "edit", [10], reviewer="r", payload={"thought": "Mine.", "label": 1})  # edited but flagged
    record(db, "relabel", [13], reviewer="r", payload={"label": 0})  # undecided with a suggestion
    labels = _curated_labels(db)
    assert {s for s, _, _ in labels.values()} == {"accepted", "rejected", "edited", "pending"}

    expected: dict[str, dict[str, int]] = {"gold": {}, "curated": {}}
    for status, g, curated in labels.values():
        if status in ("accepted", "edited"):
            for key, label in (("gold", g), ("curated", curated)):
                name = "none" if label is None else str(label)
                expected[key][name] = expected[key].get(name, 0) + 1
    assert accepted_balance(db) == expected
    assert expected["curated"] == {"1": 1, "0": 3, "none": 5}  # 1, 2, 3, 15 kept; 4, 7, 10, 19, 39 left out

    # Row by row, whatever the status (rejected, flagged, undecided too), the SQL rule is the export's.
    sql = curated_label_sql()
    by_sql = dict(db.execute(f"SELECT e.id, {sql} FROM examples e LEFT JOIN review_state r ON r.example_id = e.id"))
    assert by_sql == {i: curated for i, (_, _, curated) in labels.items()}
    assert by_sql[2] == gold[2] and by_sql[5] is None and by_sql[9] == gold[9]
