"""A real non-Mistral model end to end on CPU: SmolLM2-135M-Instruct (ChatML) trains label-only on a small
export through its own chat template, then `nlistral evaluate` prompts the adapter the same way."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import open_db
from pipeline.cli import app
from pipeline.evaluate.prompts import prompt_version
from pipeline.evaluate.teacher_forced import check_run

pytestmark = pytest.mark.slow


def test_smollm2_trains_and_evaluates_through_its_chat_template(smollm2_dir: Path, demo_db_path: Path,
                                                                 tmp_path: Path):
    runner = CliRunner()
    full = tmp_path / "all.jsonl"
    exported = runner.invoke(app, ["--db", str(demo_db_path), "export", "sft", "--out", str(full)])
    assert exported.exit_code == 0, exported.output
    small = tmp_path / "sft12.jsonl"  # a ~12-example export: the first rows of the store's export
    small.write_text("".join(full.read_text(encoding="utf-8").splitlines(keepends=True)[:12]), encoding="utf-8")

    out = tmp_path / "run"
    sets = [f"base_model={smollm2_dir}", f"data={small}", f"output_dir={out}", "quantization=none", "max_steps=6",
            "micro_batch_size=4", "batch_size=4", "eval_fraction=0", "early_stopping_patience=0", "warmup_steps=1",
            "gradient_checkpointing=none"]
    trained = runner.invoke(app, ["train", "--config", "label_only", "--db", str(demo_db_path),
                                  *[arg for s in sets for arg in ("--set", s)]])
    assert trained.exit_code == 0, trained.output
    adapter = out / "adapter"
    assert (adapter / "adapter_model.safetensors").exists()

    summary_path = tmp_path / "eval.json"
    evaluated = runner.invoke(app, ["evaluate", "--adapter", str(adapter), "--base", str(smollm2_dir), "--db",
                                    str(demo_db_path), "--no-thought", "--limit", "4", "--max-new-tokens", "12",
                                    "--json", str(summary_path)])
    assert evaluated.exit_code == 0, evaluated.output
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["predictions"] == 4
    rows = list(open_db(demo_db_path).query("SELECT * FROM generations WHERE kind = 'prediction' AND run_id = ?",
                                            [summary["run_id"]]))
    assert len(rows) == 4
    for row in rows:
        assert row["tokens_out"] <= 12 and "<|im_start|>" not in row["raw_response"]
        assert (row["predicted_label"] is None) == (row["parse_status"] == "failed")
    config = json.loads(open_db(demo_db_path).execute("SELECT config FROM runs WHERE id = ?",
                                                      [summary["run_id"]]).fetchone()[0])
    assert {row["prompt_version"] for row in rows} == {config["prompt_version"]}  # the run names its prompt
    assert config["prompt_version"] != prompt_version(with_thought=False, shuffle_thoughts=False)  # not [INST]'s

    # The same adapter teacher-forced on the same base: the label it prefers where the answer's label goes is
    # the label greedy decoding wrote, example by example, so the accuracies are equal.
    check = check_run(open_db(demo_db_path), summary["run_id"])
    assert check.example_ids == sorted(r["example_id"] for r in rows) and not check.unscorable
    assert all(label is not None for label in check.greedy)
    assert check.greedy == check.forced and check.greedy_accuracy == check.forced_accuracy
    assert summary["metrics"]["accuracy"] == pytest.approx(check.forced_accuracy)
