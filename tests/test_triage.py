"""Outcome cells (db/outcomes.py) and `nlistral triage`: a hand-built store, the queues, the CLI, the seed sample."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from db import write_tx
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generation
from db.outcomes import CELLS, outcomes
from db.queue_counts import count
from db.queues import QueueFilter
from db.runs import start_run
from db.scope import Scope
from db.staging import stage_rows
from pipeline.cli import app

runner = CliRunner()

# source id: (dataset, gold, thought label, reflection label, predictions oldest first); "x" = failed to parse,
# "-" = no such generation. The comment is the full cell each lands in.
STORE = {
    1: ("a", 1, 1, "-", ()),  # right / none / none
    2: ("a", 0, 0, "-", (1,)),  # right / none / wrong: adapter_regressed
    3: ("a", 1, 1, "-", (0, 1)),  # right / none / right (the later prediction counts)
    4: ("a", 1, 0, 1, (0,)),  # wrong / gold / wrong: fixed, adapter still wrong, both models wrong
    5: ("a", 0, 1, 0, (0,)),  # wrong / gold / right: fixed_by_reflection
    6: ("a", 1, 0, 0, ()),  # wrong / not_gold / none: reflection_not_gold
    7: ("a", 1, 0, "x", ()),  # wrong / unparsed / none: reflection_unparsed
    8: ("a", 0, 1, "-", ("x",)),  # wrong / none / unparsed: needs_reflection
    9: ("a", 0, 1, "-", (0, 1)),  # wrong / none / wrong: needs_reflection, both models wrong
    10: ("a", 1, "x", "-", ()),  # unparsed / none / none: thought_unparsed
    11: ("a", 1, "-", "-", ()),  # none / none / none
    12: ("a", None, 1, "-", ()),  # no_gold / none / none
    13: ("b", 1, 0, "-", ()),  # wrong / none / none: needs_reflection (dataset b)
}
GRID = {
    ("right", "none", "none"): 1, ("right", "none", "wrong"): 1, ("right", "none", "right"): 1,
    ("wrong", "gold", "wrong"): 1, ("wrong", "gold", "right"): 1, ("wrong", "not_gold", "none"): 1,
    ("wrong", "unparsed", "none"): 1, ("wrong", "none", "unparsed"): 1, ("wrong", "none", "wrong"): 1,
    ("unparsed", "none", "none"): 1, ("none", "none", "none"): 1, ("no_gold", "none", "none"): 1,
    ("wrong", "none", "none"): 1,
}
NAMED = {
    "thought_right": 3, "fixed_by_reflection": 2, "reflection_not_gold": 1, "reflection_unparsed": 1,
    "needs_reflection": 3, "thought_unparsed": 1, "adapter_still_wrong_after_reflection": 1,
    "both_models_disagree_with_gold": 2, "adapter_regressed": 1,
    "reflection_rationalises": 0, "reflections_doubt_gold": 0,  # no blind reflections here: test_blind_reflection.py
}


def _answer(label: object) -> dict[str, object]:
    return {"predicted_label": None, "parse_status": "failed"} if label == "x" else {
        "predicted_label": label, "parse_status": "ok"}


@pytest.fixture
def store(db):
    """The examples of STORE with their thoughts, reflections and predictions (over two evaluate runs)."""
    rows = [NewExample(i, d, "train", str(i), f"premise {i}", f"hypothesis {i}", gold)
            for i, (d, gold, *_) in STORE.items()]
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(r) for r in rows])])
    ids = dict(db.execute("SELECT source_id, id FROM examples").fetchall())
    runs = (start_run(db, "evaluate", {}), start_run(db, "evaluate", {}))
    for i, (_, _, thought, reflection, predictions) in STORE.items():
        eid = ids[str(i)]
        if thought != "-":
            t = add_generation(db, example_id=eid, kind="thought", model="m", backend="test",
                               thought_process=f"thought {i}", dedupe_key=f"t{i}", **_answer(thought))
            if reflection != "-":
                add_generation(db, example_id=eid, kind="reflection", parent_id=t.id, model="r", backend="test",
                               thought_process=f"reflection {i}", dedupe_key=f"r{i}", **_answer(reflection))
        for run, label in zip(runs, predictions):
            add_generation(db, example_id=eid, kind="prediction", model="a", backend="local", run_id=run,
                           dedupe_key=f"p{i}-{run}", **_answer(label))
    return db


def test_every_example_is_in_its_hand_counted_cell(store):
    got = outcomes(store)
    assert {(g.thought, g.reflection, g.prediction): g.count for g in got.grid} == GRID
    assert sum(g.count for g in got.grid) == len(STORE)
    assert got.cells == NAMED
    assert list(got.cells) == list(CELLS)


def test_cells_agree_with_the_review_queues(store):
    result = outcomes(store)
    got = result.cells
    assert got["needs_reflection"] == count(store, QueueFilter(queue="needs_reflection")) == 3
    wrong = sum(got[c] for c in ("fixed_by_reflection", "reflection_not_gold", "reflection_unparsed",
                                 "needs_reflection"))
    assert wrong == count(store, QueueFilter(queue="disagreements"))
    assert sum(g.count for g in result.grid if g.prediction in ("wrong", "unparsed")) == count(
        store, QueueFilter(queue="model_errors"))


def test_a_scope_counts_only_its_examples(store):
    only_b = outcomes(store, Scope(datasets=("b",)))
    assert [(g.thought, g.reflection, g.prediction, g.count) for g in only_b.grid] == [("wrong", "none", "none", 1)]
    assert only_b.cells["needs_reflection"] == 1 and only_b.cells["thought_right"] == 0
    only_a = outcomes(store, Scope(datasets=("a",), splits=("train",)))
    assert only_a.cells["needs_reflection"] == count(store, QueueFilter(queue="needs_reflection", dataset="a")) == 2


def test_triage_json_and_tables(store, db_path):
    result = runner.invoke(app, ["triage", "--json", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload) == {"cells", "grid", "suspects", "weights"}
    assert payload["cells"] == NAMED
    suspects = payload["suspects"]  # wrong thoughts, wrong reflections, adapter errors: db/suspicion.py's own tests
    assert suspects and [s["score"] for s in suspects] == sorted((s["score"] for s in suspects), reverse=True)
    assert all(set(s) == {"id", "dataset", "split", "source_id", "gold", "score", "reasons"} for s in suspects)
    assert all(s["score"] == pytest.approx(sum(r["points"] for r in s["reasons"])) for s in suspects)
    top = json.loads(runner.invoke(app, ["triage", "--json", "--top", "1", "--db", str(db_path)]).output)["suspects"]
    assert top == suspects[:1]
    assert {(g["thought"], g["reflection"], g["prediction"]): g["count"] for g in payload["grid"]} == GRID
    assert all(set(g) == {"thought", "reflection", "prediction", "count"} for g in payload["grid"])
    scoped = json.loads(runner.invoke(app, ["triage", "--json", "--dataset", "b", "--db", str(db_path)]).output)
    assert scoped["cells"]["needs_reflection"] == 1 and sum(g["count"] for g in scoped["grid"]) == 1
    tables = runner.invoke(app, ["triage", "--db", str(db_path)])
    assert tables.exit_code == 0, tables.output
    assert all(name in tables.output for name in CELLS)
    assert "suspicion score" in runner.invoke(app, ["triage", "--help"]).output


def test_seed_sample_cells(tmp_path, shared_data):
    """The original pipeline's files imported as README's "Importing" section says: pairs, thoughts, reflections."""
    db = str(tmp_path / "seed.db")
    seed = shared_data / "seed_sample"
    for args in (["sample.csv"], ["sample_thoughts.json", "--model", "open-mistral-7b"],
                 ["sample_reflections.json", "--model", "open-mistral-nemo"]):
        done = runner.invoke(app, ["import", str(seed / args[0]), "--dataset", "seed", *args[1:], "--db", db])
        assert done.exit_code == 0, done.output
    result = runner.invoke(app, ["triage", "--json", "--db", db])
    assert result.exit_code == 0, result.output
    cells = json.loads(result.output)["cells"]
    assert (cells["thought_right"], cells["fixed_by_reflection"], cells["reflection_not_gold"],
            cells["needs_reflection"]) == (67, 32, 1, 0)
