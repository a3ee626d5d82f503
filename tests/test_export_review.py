"""A scripted review session on the seed sample, and the curated and DPO exports it produces."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from db.generations import add_generation
from db.paths import store_path
from db.reviews import log_position, record, undo
from exports import DpoOptions, SftOptions, plan, write_to

EDIT_4 = "Step 1: The premise says So. Step 2: \"So\" entails it. So: yes."
EDIT_3 = "Step 1: Same conclusion, Better Reasoning."
EDIT_7 = "Step 1: I think it follows."


@pytest.fixture
def session(seed_db):
    """accept, reject, edit (x3), flag, relabel, a second reflection version chosen away from, all by 'ana'.

    Example ids follow the seed files' order (id = source id + 1). Wrong thoughts with a reflection
    reaching gold: 1, 2, 4, 5, 6, 9; correct thoughts: 3, 7; source id 90 (example 91): its
    reflection says 0 where gold is 1.
    """
    db = seed_db
    thought_9, reflection_9 = db.execute("SELECT thought_id, reflection_id FROM examples WHERE id = 9").fetchone()
    newer = add_generation(db, example_id=9, kind="reflection", parent_id=thought_9, model="other-model",
                           backend="test", thought_process="a second, worse reflection", predicted_label=1,
                           parse_status="ok")
    record(db, "accept", [1], reviewer="ana")
    record(db, "reject", [2], reviewer="ana")
    base = db.execute("SELECT thought_process FROM generations WHERE id = (SELECT reflection_id FROM examples "
                      "WHERE id = 4)").fetchone()[0]
    record(db, "edit", [4], reviewer="ana", payload={"thought": EDIT_4, "label": 1, "base": base})
    record(db, "flag_bias", [5], reviewer="ana", payload={"category": "gold_wrong"})
    record(db, "relabel", [6], reviewer="ana", payload={"label": 0})
    record(db, "accept", [6], reviewer="ana")
    record(db, "choose_reflection", [9], reviewer="ana", payload={"generation_id": reflection_9})
    record(db, "accept", [9], reviewer="ana")
    record(db, "accept", [91], reviewer="ana")
    record(db, "edit", [3], reviewer="ana", payload={"thought": EDIT_3, "label": 1})
    record(db, "edit", [7], reviewer="ana", payload={"thought": EDIT_7, "label": 1})  # gold is 0
    return db, {"newer_9": newer.id, "reflection_9": reflection_9, "thought_9": thought_9}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _target(row: dict) -> dict:
    return json.loads(row["text"].rsplit(" [/INST] ", 1)[1].removesuffix(" </s>"))


def test_curated_applies_each_decision(session, tmp_path):
    db, ids = session
    out = tmp_path / "curated.jsonl"
    manifest = write_to(db, SftOptions(ablation="curated"), out=out)
    assert manifest.counts["left_out"] == {"bias": 1, "edit_not_gold": 1, "label_not_gold": 1, "rejected": 1}
    assert manifest.counts["left_out_ids"] == {"bias": [5], "edit_not_gold": [7], "label_not_gold": [91],
                                               "rejected": [2]}
    # Both edits are large (exports.routing): 4 rewrote most of its reflection, 3 did not record what it replaced.
    assert manifest.rows == 96 and manifest.counts["by_source"] == {"edit_large": 2, "reflection": 29, "thought": 65}
    rows = {r["id"]: _target(r) for r in _rows(out)}
    assert rows[4] == {"thought_process": EDIT_4, "predicted_label": 1}  # edited text exactly as edited
    assert rows[3] == {"thought_process": EDIT_3, "predicted_label": 1}
    chosen_9 = db.execute("SELECT thought_process FROM generations WHERE id = ?", [ids["reflection_9"]]).fetchone()[0]
    assert rows[9]["thought_process"] == chosen_9  # the chosen version, not the newer one
    assert rows[6]["predicted_label"] == 1  # the relabel is ignored without --use-relabels
    assert manifest.review_log_position == log_position(db) == 11
    assert manifest.counts == plan(db, SftOptions(ablation="curated")).as_dict()


def test_curated_options_include_bias_use_relabels_reviewed_only(session):
    db, _ = session
    with_bias = plan(db, SftOptions(ablation="curated", include_bias=True))
    assert with_bias.rows == 97 and "bias" not in with_bias.left_out
    relabelled = plan(db, SftOptions(ablation="curated", use_relabels=True))
    assert relabelled.rows == 96 and relabelled.by_label["0"] == plan(
        db, SftOptions(ablation="curated")).by_label["0"] + 1  # example 6 now trains on its thought, label 0
    reviewed = plan(db, SftOptions(ablation="curated", reviewed_only=True))
    assert reviewed.rows == 5 and reviewed.left_out["pending"] == 91  # 1, 3, 4, 6, 9 written


def test_dpo_pairs_come_from_the_decisions(session, tmp_path):
    db, ids = session
    out = tmp_path / "dpo.jsonl"
    manifest = write_to(db, DpoOptions(), out=out)
    pairs = [(r["id"], r["provenance"]["chosen_source"], r["provenance"]["rejected_source"],
              r["provenance"]["rejected_generation_id"]) for r in _rows(out)]
    thought = dict(db.execute("SELECT id, thought_id FROM examples").fetchall())
    reflection = dict(db.execute("SELECT id, reflection_id FROM examples").fetchall())
    assert pairs == [
        (1, "reflection", "thought", thought[1]),
        (3, "edit_large", "thought", thought[3]),
        (4, "edit_large", "thought", thought[4]),
        (4, "edit_large", "reflection", reflection[4]),
        (6, "reflection", "thought", thought[6]),
        (9, "reflection", "thought", ids["thought_9"]),
        (9, "reflection", "reflection_not_chosen", ids["newer_9"]),
    ]
    assert manifest.counts["left_out"] == {"edit_not_gold": 1, "label_not_gold": 1, "pending": 92, "rejected": 1}
    assert manifest.counts["by_source"] == {"edit_large>reflection": 1, "edit_large>thought": 2,
                                            "reflection>reflection_not_chosen": 1, "reflection>thought": 3}
    first = _rows(out)[0]
    assert json.loads(first["chosen"])["predicted_label"] == 1 and json.loads(first["rejected"])["predicted_label"] == 0
    assert first["provenance"]["reviewer"] == "ana" and first["provenance"]["review_status"] == "accepted"


def test_dpo_with_relabels_prefers_the_thought_over_the_reflection(session):
    db, _ = session
    planned = plan(db, DpoOptions(use_relabels=True))
    assert planned.by_source["thought>reflection"] == 1  # example 6: relabelled to 0, its thought says 0
    assert planned.rows == 7


def test_undo_changes_what_the_next_export_holds(session, tmp_path):
    db, _ = session
    before = write_to(db, SftOptions(ablation="curated"), out=tmp_path / "a.jsonl")
    undo(db, reviewer="ana")  # the edit of example 7 (edit_not_gold) is undone: 7 trains on its thought again
    after = write_to(db, SftOptions(ablation="curated"), out=tmp_path / "b.jsonl")
    assert after.rows == before.rows + 1 and after.review_log_position == before.review_log_position + 1
    assert after.sha256 != before.sha256


def test_the_session_files_and_manifests_are_pinned(session, tmp_path):
    """Regression pins for the whole files (the tests above say why each row is there)."""
    db, _ = session
    sft = write_to(db, SftOptions(ablation="curated"), out=tmp_path / "curated.jsonl")
    dpo = write_to(db, DpoOptions(), out=tmp_path / "dpo.jsonl")
    for manifest in (sft, dpo):
        assert hashlib.sha256(Path(manifest.path).read_bytes()).hexdigest() == manifest.sha256
        on_disk = json.loads(Path(manifest.manifest).read_text(encoding="utf-8"))
        assert on_disk == json.loads(json.dumps(manifest.as_dict()))
        assert on_disk["review_log_position"] == 11 and on_disk["database"] == str(db_file(db))
    assert sft.sha256 == SFT_SHA256
    assert dpo.sha256 == DPO_SHA256
    # Every row names its dataset and its id in the user's file; without those two fields the files are
    # byte for byte what they were before the fields were added.
    for manifest, before in ((sft, SFT_SHA256_WITHOUT_SOURCE), (dpo, DPO_SHA256_WITHOUT_SOURCE)):
        rows = _rows(Path(manifest.path))
        assert all(list(row)[:3] == ["id", "dataset", "source_id"] and row["dataset"] == "sample" for row in rows)
        for row in rows:  # and without the reviewers' decisions behind each pair (issue 14)
            if "provenance" in row:
                assert row["provenance"].pop("decisions")[0]["reviewer"] == "ana"
                if row["provenance"]["chosen_source"] == "edit_large":  # and before edit routing named it
                    row["provenance"]["chosen_source"] = "edit"
        stripped = "".join(json.dumps({k: v for k, v in row.items() if k not in ("dataset", "source_id")},
                                      ensure_ascii=False) + "\n" for row in rows)
        assert hashlib.sha256(stripped.encode("utf-8")).hexdigest() == before
    source_ids = dict(db.execute("SELECT id, source_id FROM examples").fetchall())
    assert all(row["source_id"] == source_ids[row["id"]] for row in _rows(Path(sft.path)))


def db_file(db) -> Path:
    return store_path(db)


SFT_SHA256 = "892e89a63d6993e03947bb1661bb74680de90e01166ea693a3151ac5af2035ff"
# With provenance's decisions; since edit routing the chosen source of a large edit is "edit_large" (with "edit"
# there the file hashed dd6459b7..., the pin before routing).
DPO_SHA256 = "5909e8ec9692c571d1a0d08783e0f8eea014b3d07a57299ce998c91097262cd3"
SFT_SHA256_WITHOUT_SOURCE = "3e81e684458716d3038c089eccd335aff35c108049b9a6ae238697c87b937b4a"
DPO_SHA256_WITHOUT_SOURCE = "46cfcf5ea211fe2ca8f67333352ce6ae71c4dd6fc3802a6ad4ff3914d10cdecb"
