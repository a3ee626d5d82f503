"""`nlistral diff A B`: rows added, removed and changed between two exports, their label balance and selection
reasons, byte-stable JSON; on the original project's seed sample and on hand-made files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import open_db
from db.reviews import record
from pipeline.cli import app

runner = CliRunner()


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _export(db_path: Path, ablation: str, out: Path) -> None:
    _cli("export", "sft", "--ablation", ablation, "--out", str(out), "--db", str(db_path))


def test_reflected_against_correct_only_on_the_seed_sample(seed_db, db_path, tmp_path):
    _export(db_path, "reflected", tmp_path / "r.jsonl")
    _export(db_path, "correct-only", tmp_path / "c.jsonl")
    first = _cli("diff", "export:1", "export:2", "--json", "--db", str(db_path))
    assert _cli("diff", "export:1", "export:2", "--json", "--db", str(db_path)) == first  # byte-stable
    d = json.loads(first)
    assert (d["removed"]["count"], d["added"]["count"], d["changed"]["count"]) == (32, 0, 0)
    assert d["balance"]["a"]["rows"] == 99 and d["balance"]["b"]["rows"] == 67
    assert d["balance"]["a"]["by_label"] == {"0": 46, "1": 53} and d["balance"]["b"]["by_label"] == {"0": 44, "1": 23}
    assert d["balance"]["share_1_shift"] == pytest.approx(23 / 67 - 53 / 99, abs=1e-4)
    assert d["reasons"]["a"]["by_source"] == {"reflection": 32, "thought": 67}
    assert d["reasons"]["b"]["left_out"] == {"thought_not_gold": 33}
    assert [e["id"] for e in d["removed"]["examples"]] == sorted(e["id"] for e in d["removed"]["examples"])
    shown = _cli("diff", "export:1", "export:2", "--db", str(db_path))  # the tables
    assert "removed" in shown and "32" in shown and "rows from reflection" in shown


def test_a_changed_target_is_shown_on_both_sides_and_files_without_manifests_have_no_reasons(seed_db, db_path,
                                                                                              tmp_path):
    _export(db_path, "reflected", tmp_path / "r.jsonl")
    lines = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    before.write_text("".join(lines[:5]), encoding="utf-8")
    row = json.loads(lines[2])
    prompt, cut, target = row["text"].partition("[/INST]")  # the instruction quotes the JSON keys too
    row["text"] = prompt + cut + target.replace('{"thought_process": "', '{"thought_process": "\u202eedited. ')
    after.write_text("".join(lines[:2]) + json.dumps(row) + "\n" + "".join(lines[3:4]) + lines[6], encoding="utf-8")
    d = json.loads(_cli("diff", str(before), str(after), "--json", "--db", str(db_path)))
    assert (d["added"]["count"], d["removed"]["count"], d["changed"]["count"]) == (1, 1, 1)
    changed = d["changed"]["examples"][0]
    assert changed["id"] == row["id"] and "edited." in changed["text_b"] and "edited." not in changed["text_a"]
    assert d["reasons"] == {"a": None, "b": None}
    shown = _cli("diff", str(before), str(after), "--db", str(db_path))
    assert "\u202e" not in shown and "<U+202E>" in shown  # a bidi override is shown, never obeyed


def test_dpo_exports_compare_their_pairs(demo_db_path, tmp_path):
    db = open_db(demo_db_path)
    record(db, "accept", list(range(1, 46)), reviewer="ada")  # accepted reflections pair with their flawed thought
    db.conn.close()
    for name in ("d1.jsonl", "d2.jsonl"):
        _cli("export", "dpo", "--out", str(tmp_path / name), "--db", str(demo_db_path))
    d = json.loads(_cli("diff", "export:1", "export:2", "--json", "--db", str(demo_db_path)))
    assert d["a"]["kind"] == d["b"]["kind"] == "dpo" and d["balance"]["a"]["rows"] > 0
    assert (d["added"]["count"], d["removed"]["count"], d["changed"]["count"]) == (0, 0, 0)
    _cli("export", "sft", "--out", str(tmp_path / "s.jsonl"), "--db", str(demo_db_path))
    mixed = runner.invoke(app, ["diff", "export:1", "export:3", "--db", str(demo_db_path)])
    assert mixed.exit_code != 0 and "two SFT exports or two DPO exports" in mixed.output


def test_rows_without_ids_and_unknown_exports_say_what_to_do(demo_db_path, tmp_path):
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"text": "<s>[INST] Premise: a\nHypothesis: b [/INST] {} </s>"}) + "\n")
    result = runner.invoke(app, ["diff", str(bare), str(bare), "--db", str(demo_db_path)])
    assert result.exit_code != 0 and 'no "id"' in result.output
    result = runner.invoke(app, ["diff", "export:99", str(bare), "--db", str(demo_db_path)])
    assert result.exit_code != 0 and "export:99" in result.output
