"""The curated label is one rule: the stats screen's balance (SQL) agrees with what a curated export trains on."""
from __future__ import annotations

import pytest

from db import open_db
from db.curation import POLICIES, curated_label_sql
from db.review_stats import accepted_balance
from db.reviews import record
from db.scope import Scope
from exports.policy import block_decisions, settle
from exports.rules import sft_target
from exports.source import Source


def _curated_labels(db, policy: str = "unanimous") -> dict[int, tuple[str, int | None, int | None]]:
    """Each example's status, gold label and the label a curated export (default options but the policy) trains
    it on."""
    splits = tuple(r[0] for r in db.execute("SELECT DISTINCT split FROM examples"))
    out = {}
    rows = list(Source(Scope(splits=splits), reflections="reviewed", review=True).rows(db))
    team = block_decisions(db, rows)
    for row in rows:
        settled = settle(row, policy, team.get(row.id, ()))
        target = settled if isinstance(settled, str) else sft_target(settled, "curated")
        out[row.id] = (row.status or "pending", row.gold, None if isinstance(target, str) else target.label)
    return out


def _balance(labels: dict[int, tuple[str, int | None, int | None]]) -> dict[str, dict[str, int]]:
    """accepted_balance as the export's labels give it."""
    expected: dict[str, dict[str, int]] = {"gold": {}, "curated": {}}
    for status, g, curated in labels.values():
        if status in ("accepted", "edited"):
            for key, label in (("gold", g), ("curated", curated)):
                name = "none" if label is None else str(label)
                expected[key][name] = expected[key].get(name, 0) + 1
    return expected


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

    expected = _balance(labels)
    assert accepted_balance(db) == expected
    assert expected["curated"] == {"1": 1, "0": 3, "none": 5}  # 1, 2, 3, 15 kept; 4, 7, 10, 19, 39 left out

    # Row by row, whatever the status (rejected, flagged, undecided too), the SQL rule is the export's.
    sql = curated_label_sql()
    by_sql = dict(db.execute(f"SELECT e.id, {sql} FROM examples e LEFT JOIN review_state r ON r.example_id = e.id"))
    assert by_sql == {i: curated for i, (_, _, curated) in labels.items()}
    assert by_sql[2] == gold[2] and by_sql[5] is None and by_sql[9] == gold[9]


@pytest.mark.parametrize("policy", POLICIES)
def test_with_several_reviewers_the_sql_rule_agrees_with_the_export_under_each_policy(demo_db_path, policy):
    """Contested, adjudicated and unanimous examples: the stats screen's rule is the export's, policy by policy."""
    db = open_db(demo_db_path)
    gold = dict(db.execute("SELECT id, gold_label FROM examples").fetchall())
    record(db, "accept", [1, 2, 3, 9, 11, 12], reviewer="ada")
    record(db, "accept", [1, 3, 11, 12], reviewer="bob")
    record(db, "reject", [2, 9], reviewer="bob", payload={"reason": "gold is wrong"})  # contested, a tie
    record(db, "reject", [3], reviewer="cy")  # contested: two accept, one rejects
    record(db, "reject", [9], reviewer="cy", payload={"adjudication": True, "comment": "bob is right"})
    for reviewer, label in (("ada", gold[15]), ("bob", gold[15]), ("cy", 1 - gold[15])):
        record(db, "edit", [15], reviewer=reviewer, payload={"thought": f"{reviewer}'s", "label": label})
    record(db, "accept", [15], reviewer="cy")  # ada and bob edit (the latest edit, bob's, reaches gold)
    record(db, "edit", [16], reviewer="ada", payload={"thought": "Mine.", "label": gold[16]})
    record(db, "flag_bias", [16, 11], reviewer="bob", payload={"category": "gold_wrong"})
    record(db, "flag_bias", [11], reviewer="cy", payload={"category": "gold_wrong"})  # a majority flags 11
    labels = _curated_labels(db, policy)
    sql = curated_label_sql(policy=policy)
    by_sql = dict(db.execute(f"SELECT e.id, {sql} FROM examples e LEFT JOIN review_state r ON r.example_id = e.id"))
    assert by_sql == {i: curated for i, (_, _, curated) in labels.items()}
    assert accepted_balance(db, policy) == _balance(labels)
    assert by_sql[1] == gold[1] and by_sql[9] is None  # unanimous; adjudicated reject
    expected = {"unanimous": {2: None, 3: None, 15: None, 16: None, 11: None},
                "majority": {2: None, 3: by_sql[3], 15: gold[15], 16: None, 11: None},
                "latest": {2: None, 3: None, 15: by_sql[15], 16: None, 11: None}}[policy]
    assert {i: by_sql[i] for i in expected} == expected
    if policy == "majority":
        assert by_sql[3] is not None  # two accepts outvote a reject
    if policy == "unanimous":
        assert accepted_balance(db) == _balance(labels)  # the stats screen's default
