"""An imported thought or reflection is stored as the parser would store the same answer from a model:
a failed one carries no label (issue 12 item 9, follow-up), so `reflect` and the export treat an imported
failed answer exactly as a generated one. Mirrors tests/test_parsing_generate.py, through real files,
the fake server and the CLI."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fake_mistral import FakeMistral, client_settings, toy_pairs
from typer.testing import CliRunner

from db import open_db
from exports import SftOptions, plan
from pipeline.cli import app
from pipeline.generate import Selection, run_stage, stage_options
from pipeline.importing import import_file

STEPS = "Step 1: the premise is about a park. Step 2: the hypothesis adds nothing new."
WRONG = "{wrong}"  # replaced by the label that is not the example's gold

# The fields of one answer (JSON text, the label written as given) and the status both ways store it with.
ANSWERS: list[tuple[str, str, bool]] = [
    (f'"thought_process": "{STEPS}", "predicted_label": {WRONG}', "ok", True),
    (f'"predicted_label": {WRONG}', "failed", False),  # a label with no thought: was imported with its label
    (f'"thought_process": "  ", "predicted_label": {WRONG}', "failed", False),
    (f'"thought_process": "{STEPS}", "predicted_label": 0.99999999999999999', "failed", False),
    (f'"thought_process": "{STEPS}", "predicted_label": "{WRONG}"', "repaired", True),
]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("api_env")










def _answer(fields: str, gold: int) -> str:
    return "{" + fields.replace(WRONG, str(1 - gold)) + "}"


def _seed(i: int, pair: tuple[str, str, int], fields: str) -> str:
    """A stage-1 (or, with error_analysis in fields, stage-3) record: the pair, then the answer's fields as written."""
    head = json.dumps({"id": i, "premise": pair[0], "hypothesis": pair[1], "true_label": pair[2]})[:-1]
    return f"{head}, {_answer(fields, pair[2])[1:]}"


def _stored(path: Path, kind: str) -> dict[int, tuple[str, int | None]]:
    db = open_db(path)
    try:
        return {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT example_id, parse_status, predicted_label FROM generations WHERE kind = ?", [kind])}
    finally:
        db.conn.close()


def _parse_failed_ids(path: Path, ablation: str) -> set[int]:
    db = open_db(path)
    try:
        return set(plan(db, SftOptions(ablation=ablation, splits=("train",))).left_out_ids.get("parse_failed", []))
    finally:
        db.conn.close()


def test_imported_answers_are_stored_reflected_and_exported_as_generated_ones(fake: FakeMistral, tmp_path: Path) -> None:
    n = len(ANSWERS)
    off = n + n % 2  # examples 1..n: generated answers; off+1..off+n: the same answers imported (same golds)
    pairs = toy_pairs(off + n)
    with (tmp_path / "toy_train.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([("premise", "hypothesis", "label"), *pairs])
    path = tmp_path / "s.db"
    db = open_db(path)
    import_file(db, tmp_path / "toy_train.csv")
    lines = [_seed(off + k, pairs[off + k], fields) for k, (fields, _, _) in enumerate(ANSWERS)]
    (tmp_path / "toy_thoughts.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    import_file(db, tmp_path / "toy_thoughts.jsonl", dataset="toy", split="train")
    db.conn.close()
    fake.script_replies({("thought", pairs[k][0]): _answer(fields, pairs[k][2])
                            for k, (fields, _, _) in enumerate(ANSWERS)})
    run_stage(path, stage_options("thought", client_settings(fake.url, max_concurrency=4, max_retries=1)), Selection(ids=tuple(range(1, n + 1))))

    thoughts = _stored(path, "thought")
    for k, (fields, status, has_label) in enumerate(ANSWERS):
        generated, imported = thoughts[k + 1], thoughts[off + k + 1]
        assert imported == generated, fields
        assert generated == (status, 1 - pairs[k][2] if has_label else None), fields
    failed = {eid for eid, (status, _) in thoughts.items() if status == "failed"}
    assert _parse_failed_ids(path, "unmodified") == failed  # the store and the export say the same
    # `reflect` asks only about parsed thoughts that disagree with gold: a failed thought has no label to correct.
    result = runner.invoke(app, ["reflect", "--dry-run", "--json", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["requests"] == 2 * sum(has_label for _, _, has_label in ANSWERS)

    # Reflections of the wrong parsed thoughts (answers 0 and 4): one with a label but no improved thought
    # (failed, no label), one with no error analysis (its label kept, noted), generated or imported alike.
    reflections = {0: '"error_analysis": "It missed the place.", "predicted_label": %d',
                   4: f'"improved_thought_process": "{STEPS} So it follows.", "predicted_label": %d'}
    fake.script_replies({("reflection", pairs[k][0]): "{" + fields % pairs[k][2] + "}"
                            for k, fields in reflections.items()})
    run_stage(path, stage_options("reflection", client_settings(fake.url, max_concurrency=4, max_retries=1)), Selection(ids=(1, 5)))
    lines = [_seed(off + k, pairs[off + k], f'"thought_process": "{STEPS}", ' + fields % pairs[off + k][2])
             for k, fields in reflections.items()]
    (tmp_path / "toy_reflections.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    db = open_db(path)
    assert import_file(db, tmp_path / "toy_reflections.jsonl", dataset="toy", split="train").generations_added == 2
    db.conn.close()
    stored = _stored(path, "reflection")
    assert stored == {1: ("failed", None), off + 1: ("failed", None),
                      5: ("repaired", pairs[4][2]), off + 5: ("repaired", pairs[4][2])}
    left_out = _parse_failed_ids(path, "reflected")
    assert {1, off + 1} <= left_out and not {5, off + 5} & left_out
