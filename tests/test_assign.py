"""`nlistral assign`: a seeded split of examples over reviewers, the overlap to two, kept or replaced."""
from __future__ import annotations

from collections import Counter
from itertools import combinations

import pytest
from typer.testing import CliRunner

from db import open_db
from db.assignments import AssignmentError, split
from pipeline.cli import app

runner = CliRunner()


def _assignments(path) -> dict[int, list[str]]:
    db = open_db(path)
    out: dict[int, list[str]] = {}
    for reviewer, example_id in db.execute("SELECT reviewer, example_id FROM assignments ORDER BY reviewer"):
        out.setdefault(example_id, []).append(reviewer)
    db.conn.close()
    return out


def test_split_is_seeded_round_robin_with_the_overlap_shared_by_every_pair():
    ids = list(range(1, 101))
    pairs = split(ids, ["ada", "bob", "cy", "dee"], 0.2, seed=7)
    by_example: dict[int, list[str]] = {}
    for reviewer, example_id in pairs:
        by_example.setdefault(example_id, []).append(reviewer)
    assert sorted(by_example) == ids
    doubled = [sorted(rs) for rs in by_example.values() if len(rs) == 2]
    assert len(doubled) == 20 and all(len(rs) in (1, 2) for rs in by_example.values())
    assert all(a != b for a, b in doubled)
    assert set(map(tuple, doubled)) == set(combinations(["ada", "bob", "cy", "dee"], 2))  # every pair shares some
    per = Counter(r for r, _ in pairs)
    assert max(per.values()) - min(per.values()) <= 2  # an even deal
    assert split(ids, ["ada", "bob", "cy", "dee"], 0.2, seed=7) == pairs
    assert split(ids, ["ada", "bob", "cy", "dee"], 0.2, seed=8) != pairs
    assert len(split(ids, ["ada"], 0.0, seed=0)) == 100


@pytest.mark.parametrize(("reviewers", "overlap", "message"), [
    (["ada"], 0.2, "at least two reviewers"),
    (["ada", "b b"], 0.0, "'b b' is not valid"),
    (["ada", "ada"], 0.0, "named twice"),
    (["ada", "bob"], 1.5, "outside 0 to 1"),
    (["ada", "bob"], -0.1, "outside 0 to 1"),
    ([], 0.0, "No reviewers given"),
])
def test_bad_reviewers_and_overlaps_are_refused(reviewers, overlap, message):
    with pytest.raises(AssignmentError, match=message):
        split([1, 2, 3], reviewers, overlap, seed=0)


def test_assign_command_writes_keeps_and_replaces(demo_db_path):
    db = ["--db", str(demo_db_path)]
    result = runner.invoke(app, ["assign", "--reviewers", "ada,bob,cy", "--overlap", "0.2", "--seed", "3", *db])
    assert result.exit_code == 0, result.output
    first = _assignments(demo_db_path)
    assert len(first) == 45 and sum(len(rs) == 2 for rs in first.values()) == 9  # round(0.2 * 45)
    assert "45 examples chosen; 45 assigned now." in result.output
    for name in ("ada", "bob", "cy"):
        assert sum(name in rs for rs in first.values()) == 18
    assert "Shared by two reviewers" in result.output

    again = runner.invoke(app, ["assign", "--reviewers", "dee,eve", *db])
    assert "45 already assigned were kept" in again.output and _assignments(demo_db_path) == first

    queue = runner.invoke(app, ["assign", "--reviewers", "dee,eve", "--queue", "disagreements", "--replace", *db])
    assert queue.exit_code == 0, queue.output
    after = _assignments(demo_db_path)
    check = open_db(demo_db_path)
    disagreements = {r[0] for r in check.execute("SELECT id FROM examples WHERE thought_label != gold_label")}
    check.conn.close()
    assert {i for i, rs in after.items() if set(rs) <= {"dee", "eve"}} == disagreements
    assert all(after[i] == first[i] for i in after if i not in disagreements)
    assert f"{len(disagreements)} examples chosen" in queue.output and "earlier assignments replaced" in queue.output


def test_assign_command_errors_say_what_to_fix(demo_db_path):
    db = ["--db", str(demo_db_path)]
    one = runner.invoke(app, ["assign", "--reviewers", "ada", "--overlap", "0.2", *db])
    assert one.exit_code == 2 and "name more reviewers or use --overlap 0" in one.output
    bad = runner.invoke(app, ["assign", "--reviewers", "ada,[x]", *db])
    assert bad.exit_code == 2 and "'[x]' is not valid" in bad.output
    queue = runner.invoke(app, ["assign", "--reviewers", "ada,bob", "--queue", "nope", *db])
    assert queue.exit_code == 2 and "unknown queue 'nope'" in queue.output
    assert _assignments(demo_db_path) == {}


@pytest.mark.parametrize("command", [["assign", "--reviewers", "ada,bob", "--overlap", "0.2"],
                                     ["sample", "--n", "5", "--name", "audit"]])
def test_assign_and_sample_wait_for_another_writer_and_say_so(demo_db_path, monkeypatch, command):
    """With another process holding the write lock past the busy timeout, both exited with a traceback."""
    import threading
    import time

    from app_process import LockHolder

    monkeypatch.setattr("db.connection.BUSY_TIMEOUT_MS", 300)
    holder = LockHolder(demo_db_path)
    timer = threading.Timer(2.0, holder.release)
    timer.start()
    started = time.monotonic()
    try:
        result = runner.invoke(app, [*command, "--db", str(demo_db_path)])
    finally:
        timer.join()
        holder.release()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started > 1.5  # it waited for the lock
    assert f"waiting: another process is writing to {demo_db_path}" in " ".join(result.stderr.split())
    table = "assignments" if command[0] == "assign" else "samples"
    db = open_db(demo_db_path)
    assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
    db.conn.close()
