"""The issue's acceptance numbers on the original pipeline's seed sample (100 thoughts, 33 reflections)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from exports import SftOptions, plan, write_to


@pytest.mark.parametrize("ablation, rows, by_source, left_out", [
    ("reflected", 99, {"reflection": 32, "thought": 67}, {"label_not_gold": 1}),
    ("correct-only", 67, {"thought": 67}, {"thought_not_gold": 33}),
    ("unmodified", 100, {"thought": 100}, {}),
    ("curated", 99, {"reflection": 32, "thought": 67}, {"label_not_gold": 1}),  # nothing reviewed yet
])
def test_seed_sample_ablation_counts(seed_db, ablation, rows, by_source, left_out):
    planned = plan(seed_db, SftOptions(ablation=ablation))
    assert (planned.considered, planned.rows, planned.by_source, planned.left_out) == (100, rows, by_source, left_out)
    assert sum(planned.by_label.values()) == rows and set(planned.by_label) == {"0", "1"}
    assert planned.considered == planned.rows + sum(planned.left_out.values())
    assert not planned.cross_split


def test_the_reflection_arguing_the_other_label_is_left_out_and_reported(seed_db, tmp_path):
    """Source id 90: gold 1, its reflection says 0. The original pipeline forced it to 1; we leave it out."""
    (example_id,) = seed_db.execute("SELECT id FROM examples WHERE source_id = '90'").fetchone()
    manifest = write_to(seed_db, SftOptions(ablation="reflected"), out=tmp_path / "reflected.jsonl")
    assert manifest.counts["left_out_ids"] == {"label_not_gold": [example_id]}
    rows = [json.loads(line) for line in (tmp_path / "reflected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 99 and example_id not in {r["id"] for r in rows}


def test_every_written_label_equals_gold_except_in_unmodified(seed_db, tmp_path):
    gold = dict(seed_db.execute("SELECT id, gold_label FROM examples").fetchall())
    for ablation in ("reflected", "correct-only", "unmodified"):
        out = tmp_path / f"{ablation}.jsonl"
        write_to(seed_db, SftOptions(ablation=ablation), out=out)
        labels = {r["id"]: json.loads(r["text"].rsplit(" [/INST] ", 1)[1].removesuffix(" </s>"))["predicted_label"]
                  for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
        wrong = {i for i, label in labels.items() if label != gold[i]}
        assert (len(wrong) == 33) if ablation == "unmodified" else not wrong, ablation


def test_label_balance_is_reported(seed_db, tmp_path):
    manifest = write_to(seed_db, SftOptions(ablation="reflected"), out=tmp_path / "r.jsonl")
    assert manifest.counts["by_label"] == {"0": 46, "1": 53}
    assert manifest.counts["label_balance"] == {"0": round(46 / 99, 4), "1": round(53 / 99, 4)}


def test_text_keeps_its_original_casing(seed_db, tmp_path):
    """The seed thoughts are lowercase (the original cleaner's doing); premises keep their capitals."""
    write_to(seed_db, SftOptions(ablation="unmodified"), out=tmp_path / "u.jsonl")
    first = json.loads((tmp_path / "u.jsonl").read_text(encoding="utf-8").splitlines()[0])
    premise = seed_db.execute("SELECT premise FROM examples WHERE id = ?", [first["id"]]).fetchone()[0]
    assert premise != premise.lower() and f"Premise: {premise}\n" in first["text"]


def test_the_seed_sample_fits_the_default_length_by_the_estimate(seed_db):
    """No seed row is near 512 tokens (the longest is ~403 by Mistral's tokenizer): none is left out."""
    assert "too_long" not in plan(seed_db, SftOptions(ablation="unmodified")).left_out
    short = plan(seed_db, SftOptions(ablation="unmodified", max_tokens=300))
    assert 0 < short.left_out["too_long"] < 100 and short.rows == 100 - short.left_out["too_long"]


def test_both_sft_formats_hold_the_same_rows(seed_db, tmp_path: Path):
    inst = write_to(seed_db, SftOptions(ablation="reflected"), out=tmp_path / "i.jsonl")
    chat = write_to(seed_db, SftOptions(ablation="reflected", fmt="messages"), out=tmp_path / "m.jsonl")
    assert inst.counts == {**chat.counts}
    ids = [[json.loads(line)["id"] for line in (tmp_path / n).read_text(encoding="utf-8").splitlines()]
           for n in ("i.jsonl", "m.jsonl")]
    assert ids[0] == ids[1] == sorted(ids[0])
