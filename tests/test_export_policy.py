"""Exports under several reviewers: adjudications, unanimous decisions, and --policy for the contested rest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import write_tx
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generations
from db.reviews import record
from db.staging import stage_rows
from exports import DpoOptions, ExportOptionError, SftOptions, plan, write_to
from pipeline.cli import app
from pipeline.views.export import plan_view

runner = CliRunner()
GOLD = "gold is wrong"


def _reject(db, ids, reviewer, reason=None, **payload):
    record(db, "reject", ids, reviewer=reviewer, payload={**({"reason": reason} if reason else {}), **payload})


def _edit(db, example_id, reviewer, text):
    record(db, "edit", [example_id], reviewer=reviewer, payload={"thought": text, "label": 1})


def _examples(db) -> None:
    """Eight examples, gold 1, each with a wrong thought and a reflection reaching gold."""
    rows = [NewExample(i, "team", "train", str(i), f"premise {i}", f"hypothesis {i}", 1) for i in range(8)]
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(r) for r in rows])])
    add_generations(db, [{"example_id": i, "kind": "thought", "model": "m", "backend": "test",
                          "thought_process": f"wrong {i}", "predicted_label": 0, "parse_status": "ok",
                          "dedupe_key": f"t{i}"} for i in range(1, 9)])
    thoughts = dict(db.execute("SELECT id, thought_id FROM examples").fetchall())
    add_generations(db, [{"example_id": i, "kind": "reflection", "parent_id": thoughts[i], "model": "r",
                          "backend": "test", "thought_process": f"reflected {i}", "predicted_label": 1,
                          "parse_status": "ok", "dedupe_key": f"r{i}"} for i in range(1, 9)])


@pytest.fixture
def team_db(db):
    """Eight examples (gold 1; a wrong thought, a reflection reaching gold), decided by ada and bob, cy too.

    1: both accept. 2: ada accepts, bob rejects (a reason, a comment): a tie. 3: ada rejects, bob accepts,
    cy adjudicates accept. 4: ada and bob accept, cy rejects. 5: ada and bob edit (no conflict: both
    edit). 6: ada and bob edit, cy edits then accepts (so review_state's edit is cy's). 7: ada and bob
    flag bias, cy accepts. 8: ada alone rejects, with a reason.
    """
    _examples(db)
    record(db, "accept", [1, 2, 4], reviewer="ada")
    record(db, "accept", [1, 3, 4], reviewer="bob")
    _reject(db, [2], "bob", GOLD, comment="the premise says never")
    _reject(db, [3], "ada", "ambiguous pair")
    record(db, "accept", [3], reviewer="cy", payload={"adjudication": True, "comment": "the reflection holds"})
    _reject(db, [4], "cy", "formatting")
    _edit(db, 5, "ada", "Ada's edit 5")
    _edit(db, 5, "bob", "Bob's edit 5")
    _edit(db, 6, "ada", "Ada's edit 6")
    _edit(db, 6, "bob", "Bob's edit 6")
    _edit(db, 6, "cy", "Cy's edit 6")
    record(db, "accept", [6], reviewer="cy")
    record(db, "flag_bias", [7], reviewer="ada", payload={"category": "gold_wrong", "reason": GOLD})
    record(db, "flag_bias", [7], reviewer="bob", payload={"category": "gold_wrong"})
    record(db, "accept", [7], reviewer="cy")
    _reject(db, [8], "ada", "wrong reading of the premise")
    return db


def _written(path: Path) -> dict[int, str]:
    """example id -> the thought each row trains on."""
    out = {}
    for row in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
        out[row["id"]] = json.loads(row["text"].rsplit(" [/INST] ", 1)[1].removesuffix(" </s>"))["thought_process"]
    return out


EXPECTED = {  # policy -> (written: id -> thought, left out by reason, reasons by outcome)
    "unanimous": ({1: "reflected 1", 3: "reflected 3", 5: "Bob's edit 5"},
                  {"contested": [2, 4, 6, 7], "rejected": [8]},
                  {"written": {"ambiguous pair": 1}, "contested": {"formatting": 1, GOLD: 2},
                   "rejected": {"wrong reading of the premise": 1}}),
    "majority": ({1: "reflected 1", 3: "reflected 3", 4: "reflected 4", 5: "Bob's edit 5", 6: "Bob's edit 6"},
                 {"contested": [2], "bias": [7], "rejected": [8]},
                 {"written": {"ambiguous pair": 1, "formatting": 1}, "contested": {GOLD: 1}, "bias": {GOLD: 1},
                  "rejected": {"wrong reading of the premise": 1}}),
    "latest": ({1: "reflected 1", 3: "reflected 3", 5: "Bob's edit 5", 6: "reflected 6"},
               {"rejected": [2, 4, 8], "bias": [7]},
               {"written": {"ambiguous pair": 1}, "rejected": {GOLD: 1, "formatting": 1,
                                                               "wrong reading of the premise": 1},
                "bias": {GOLD: 1}}),
}


@pytest.mark.parametrize("policy", list(EXPECTED))
def test_each_policy_writes_settled_examples_and_counts_the_contested(team_db, tmp_path, policy):
    written, left_out, reasons = EXPECTED[policy]
    out = tmp_path / f"{policy}.jsonl"
    manifest = write_to(team_db, SftOptions(ablation="curated", policy=policy), out=out)
    assert _written(out) == written
    assert manifest.counts["left_out_ids"] == left_out
    assert manifest.counts["left_out"] == {k: len(v) for k, v in left_out.items()}
    assert manifest.counts["reasons"] == reasons
    assert manifest.options["policy"] == policy and f"policy {policy}" in manifest.rule_text
    on_disk = json.loads(Path(manifest.manifest).read_text(encoding="utf-8"))
    assert on_disk["options"]["policy"] == policy and on_disk["counts"]["reasons"] == reasons
    assert plan(team_db, SftOptions(ablation="curated", policy=policy)).as_dict() == manifest.counts


def test_the_default_policy_is_unanimous(team_db):
    assert SftOptions(ablation="curated").policy == DpoOptions().policy == "unanimous"
    assert plan(team_db, SftOptions(ablation="curated")).left_out["contested"] == 4


def test_a_policy_is_checked_and_belongs_to_curated_exports():
    with pytest.raises(ExportOptionError, match="--policy must be one of unanimous, majority, latest"):
        DpoOptions(policy="loudest")
    with pytest.raises(ExportOptionError, match="--policy: only for review decisions"):
        SftOptions(ablation="reflected", policy="majority")


def test_the_cli_takes_the_policy_and_prints_the_reasons(team_db, tmp_path):
    path = str(tmp_path / "test.db")
    assert "--policy" in runner.invoke(app, ["export", "sft", "--help"]).output
    for policy, (written, left_out, reasons) in EXPECTED.items():
        out = tmp_path / f"cli-{policy}.jsonl"
        result = runner.invoke(app, ["export", "sft", "--db", path, "--ablation", "curated", "--policy", policy,
                                     "--out", str(out), "--json"])
        assert result.exit_code == 0, result.output
        manifest = json.loads(result.output)
        assert manifest["options"]["policy"] == policy and manifest["counts"]["reasons"] == reasons
        assert manifest["counts"]["left_out_ids"] == left_out and set(_written(out)) == set(written)
    shown = runner.invoke(app, ["export", "sft", "--db", path, "--ablation", "curated", "--dry-run"],
                          env={"COLUMNS": "160"})
    assert shown.exit_code == 0 and "left out: contested" in shown.output
    assert "reason given (contested): gold is wrong" in shown.output
    bad = runner.invoke(app, ["export", "dpo", "--db", path, "--policy", "loudest", "--dry-run"])
    assert bad.exit_code == 2 and "--policy must be one of" in bad.output


def test_dpo_pairs_carry_the_decisions_behind_them(team_db, tmp_path):
    out = tmp_path / "dpo.jsonl"
    manifest = write_to(team_db, DpoOptions(), out=out)
    pairs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted({p["id"] for p in pairs}) == [1, 3, 5] and manifest.counts["left_out_ids"]["contested"] == [2, 4, 6, 7]
    (adjudicated,) = [p["provenance"] for p in pairs if p["id"] == 3]
    assert adjudicated["decisions"] == [
        {"reviewer": "bob", "decision": "accept", "reason": None, "comment": None, "adjudication": False},
        {"reviewer": "ada", "decision": "reject", "reason": "ambiguous pair", "comment": None, "adjudication": False},
        {"reviewer": "cy", "decision": "accept", "reason": None, "comment": "the reflection holds",
         "adjudication": True},
    ]
    assert adjudicated["review_status"] == "accepted" and adjudicated["reviewer"] == "cy"
    majority = write_to(team_db, DpoOptions(policy="majority"), out=tmp_path / "m.jsonl")
    chosen = {json.loads(line)["id"]: json.loads(json.loads(line)["chosen"])["thought_process"]
              for line in Path(majority.path).read_text(encoding="utf-8").splitlines()}
    assert chosen[6] == "Bob's edit 6" and chosen[4] == "reflected 4" and 2 not in chosen


def test_a_dpo_dataset_folder_keeps_the_decisions(team_db, tmp_path):
    from datasets import load_from_disk

    write_to(team_db, DpoOptions(), out=tmp_path / "d.jsonl")
    write_to(team_db, DpoOptions(), hf_dir=tmp_path / "d_ds")
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()]
    assert load_from_disk(str(tmp_path / "d_ds")).to_list() == rows
    assert any(d["comment"] == "the reflection holds" for row in rows for d in row["provenance"]["decisions"])


def test_the_plan_view_shows_the_reason_counts_as_text(team_db):
    record(team_db, "reject", [1], reviewer="dan", payload={"reason": "[bold]x[/bold] \x1b[2J"})
    counts = plan(team_db, SftOptions(ablation="curated"))
    assert counts.reasons["contested"]["[bold]x[/bold] \x1b[2J"] == 1
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(plan_view(counts))
    text = console.export_text()
    assert "reason given (contested): [bold]x[/bold] ␛[2J" in text and "\x1b[2J" not in text


def test_a_single_reviewer_store_is_exported_as_before_under_every_policy(db, tmp_path):
    """One reviewer: nothing is contested, so every policy writes the same file, the latest decisions."""
    _examples(db)
    record(db, "accept", [1, 2], reviewer="ada")
    _reject(db, [2], "ada", GOLD)
    _edit(db, 5, "ada", "Ada's edit 5")
    record(db, "flag_bias", [6], reviewer="ada", payload={"category": "gold_wrong"})
    files = [write_to(db, SftOptions(ablation="curated", policy=p), out=tmp_path / f"{p}.jsonl") for p in EXPECTED]
    assert len({m.sha256 for m in files}) == 1 and _written(Path(files[0].path))[5] == "Ada's edit 5"
    assert all(m.counts["left_out"] == {"rejected": 1, "bias": 1} for m in files)
    assert all(m.counts["reasons"] == {"rejected": {GOLD: 1}} for m in files)
