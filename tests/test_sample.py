"""`nlistral sample`: random and stratified audit samples, stored under a name."""
from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from db import open_db
from db.queues import QueueFilter
from db.samples import sample_sizes, strata
from pipeline.cli import app
from pipeline.sample import allocate

runner = CliRunner()


@pytest.mark.parametrize(("sizes", "n", "expected"), [
    ([50, 30, 20], 10, [5, 3, 2]),  # proportional
    ([90, 9, 1], 10, [8, 1, 1]),  # at least one from each stratum
    ([90, 9, 1], 2, [2, 0, 0]),  # fewer than the strata: no minimum, proportional (1.8, 0.18, 0.02)
    ([3, 0, 2], 9, [3, 0, 2]),  # n covers all
    ([1, 1, 1, 97], 4, [1, 1, 1, 1]),
    ([60, 40], 7, [4, 3]),  # largest remainder: 4.2, 2.8
])
def test_allocation(sizes, n, expected):
    assert allocate(sizes, n) == expected and sum(expected) == min(n, sum(sizes))


def _sampled(path, name: str) -> list[int]:
    db = open_db(path)
    ids = [r[0] for r in db.execute("SELECT example_id FROM samples WHERE name = ? ORDER BY example_id", [name])]
    db.conn.close()
    return ids


def test_stratified_sample_by_gold_and_primary_queue(demo_db_path):
    db = open_db(demo_db_path)
    # one disagreement without a reflection: its primary queue is needs_reflection
    lonely = db.execute("SELECT id FROM examples WHERE thought_label != gold_label ORDER BY id").fetchone()[0]
    db.execute("UPDATE examples SET reflection_id = NULL WHERE id = ?", [lonely])
    db.conn.commit()
    values = dict(strata(db, QueueFilter(), ["gold", "queue"]))
    db.conn.close()
    assert values[lonely][1] == "needs_reflection"
    sizes = Counter(values.values())
    result = runner.invoke(app, ["sample", "--n", "12", "--stratify", "gold,queue", "--seed", "5",
                                 "--db", str(demo_db_path)])
    assert result.exit_code == 0, result.output
    ids = _sampled(demo_db_path, "audit")
    assert len(ids) == 12 and "Sample 'audit': 12 examples" in result.output
    taken = Counter(values[i] for i in ids)
    assert set(taken) == set(sizes)  # every stratum, the single needs_reflection one too
    assert taken == dict(zip(sorted(sizes), allocate([sizes[k] for k in sorted(sizes)], 12), strict=True))
    assert "needs_reflection" in result.output


def test_random_sample_is_seeded_and_names_are_not_overwritten(demo_db_path):
    db = ["--db", str(demo_db_path)]
    assert runner.invoke(app, ["sample", "--n", "10", "--name", "a", "--seed", "1", *db]).exit_code == 0
    assert runner.invoke(app, ["sample", "--n", "10", "--name", "b", "--seed", "1", *db]).exit_code == 0
    assert _sampled(demo_db_path, "a") == _sampled(demo_db_path, "b") and len(_sampled(demo_db_path, "a")) == 10
    taken = runner.invoke(app, ["sample", "--n", "5", "--name", "a", *db])
    assert taken.exit_code == 2 and "already exists (10 examples)" in taken.output and "--replace" in taken.output
    replaced = runner.invoke(app, ["sample", "--n", "5", "--name", "a", "--replace", "--seed", "2", *db])
    assert replaced.exit_code == 0 and "Replaced the sample 'a' (10 examples)" in replaced.output
    store = open_db(demo_db_path)
    assert sample_sizes(store) == {"a": 5, "b": 10}
    store.conn.close()


def test_sample_of_a_queue_and_errors(demo_db_path):
    db = ["--db", str(demo_db_path)]
    result = runner.invoke(app, ["sample", "--n", "100", "--queue", "disagreements", *db])
    assert result.exit_code == 0, result.output
    store = open_db(demo_db_path)
    disagreements = [r[0] for r in store.execute("SELECT id FROM examples WHERE thought_label != gold_label ORDER BY id")]
    store.conn.close()
    assert _sampled(demo_db_path, "audit") == disagreements  # fewer than n: all of them
    bad = runner.invoke(app, ["sample", "--n", "5", "--stratify", "gold,mood", "--name", "x", *db])
    assert bad.exit_code == 2 and "gold, queue, dataset, split" in bad.output
    none = runner.invoke(app, ["sample", "--n", "5", "--dataset", "nope", "--name", "x", *db])
    assert none.exit_code == 2 and "No examples match" in none.output
    zero = runner.invoke(app, ["sample", "--n", "0", "--name", "x", *db])
    assert zero.exit_code == 2 and "at least one example" in zero.output
    assert "x" not in sample_sizes(open_db(demo_db_path))
