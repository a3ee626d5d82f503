"""`nlistral export sft|dpo` and `nlistral exports`: thin commands, clear errors, JSON output."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def test_export_commands_are_registered_with_help():
    result = runner.invoke(app, ["export", "sft", "--help"])
    assert result.exit_code == 0
    for words in ("correct-only", "reflected", "unmodified", "curated", "--include-bias", "--use-relabels",
                  "never forced to gold", "--shuffle-seed", "--hf"):
        assert words in result.output, words
    assert runner.invoke(app, ["export", "dpo", "--help"]).exit_code == 0
    assert "exports" in runner.invoke(app, ["--help"]).output


def test_dry_run_prints_counts_and_writes_nothing(demo_db_path, tmp_path):
    result = runner.invoke(app, ["export", "sft", "--db", str(demo_db_path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["considered"] == 45 and counts["left_out"]["parse_failed"] == 1
    assert counts["rows"] == 45 - sum(counts["left_out"].values())
    assert not list(tmp_path.glob("*.jsonl")) and not list(tmp_path.glob("*.manifest.json"))
    shown = runner.invoke(app, ["export", "sft", "--db", str(demo_db_path), "--dry-run"])
    assert shown.exit_code == 0 and "left out: parse_failed" in shown.output and "nothing written" in shown.output


def test_write_then_list(demo_db_path, tmp_path):
    out = tmp_path / "curated.jsonl"
    result = runner.invoke(app, ["export", "sft", "--db", str(demo_db_path), "--ablation", "curated", "--format",
                                 "messages", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["path"] == str(out) and out.exists() and manifest["format"] == "messages"
    listed = runner.invoke(app, ["exports", "--db", str(demo_db_path), "--json"])
    (record,) = json.loads(listed.output)
    assert record["id"] == manifest["export_id"] and record["present"] and record["sha256"] == manifest["sha256"]
    table = runner.invoke(app, ["exports", "--db", str(demo_db_path)])
    assert table.exit_code == 0 and "rule curated" in table.output
    assert f"    {out}" in table.output.splitlines()  # the whole path, on a line of its own
    out.unlink()
    assert f"    {out} (missing)" in runner.invoke(app, ["exports", "--db", str(demo_db_path)]).output


def test_errors_say_what_to_fix(demo_db_path, tmp_path):
    db = ["--db", str(demo_db_path)]
    bad = runner.invoke(app, ["export", "sft", *db, "--ablation", "reflected", "--use-relabels", "--out",
                              str(tmp_path / "x.jsonl")])
    assert bad.exit_code == 2 and "--ablation curated" in bad.output
    neither = runner.invoke(app, ["export", "sft", *db])
    assert neither.exit_code == 2 and "--out" in neither.output
    nosplit = runner.invoke(app, ["export", "sft", *db, "--split", "dev", "--out", str(tmp_path / "x.jsonl")])
    assert nosplit.exit_code == 1 and "demo/train (45)" in nosplit.output
    empty = runner.invoke(app, ["export", "dpo", *db, "--out", str(tmp_path / "d.jsonl")])
    assert empty.exit_code == 1 and "Review some examples first" in empty.output
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "d.jsonl").exists()
