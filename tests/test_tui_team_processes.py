"""Two reviewers on one store, each in a real app process on its own terminal: overlapping decisions, with reasons
typed ahead in one burst, both kept; `nlistral agreement --json` then gives the kappa worked out by hand."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from app_process import ROOT, AppProcess

from db import open_db
from db.queues import QueueFilter, ids

pytestmark = pytest.mark.timeout(120)


def _standing(db_path: Path) -> dict[tuple[str, int], tuple[str, str | None]]:
    db = open_db(db_path)
    try:
        return {(r, i): (d, reason) for i, r, d, reason in db.execute(
            "SELECT example_id, reviewer, decision, reason FROM review_decisions")}
    finally:
        db.conn.close()


def _wait_for(db_path: Path, n: int, timeout: float = 60.0) -> dict[tuple[str, int], tuple[str, str | None]]:
    deadline = time.monotonic() + timeout
    while len(found := _standing(db_path)) < n:
        assert time.monotonic() < deadline, f"only {len(found)} of {n} decisions were stored: {found}"
        time.sleep(0.1)
    return found


def test_two_reviewers_in_two_processes_then_agreement(demo_db_path):
    """ada: accept, accept, reject, reject; bob: accept, reject, reject, reject on the same four examples.
    Observed agreement 3/4; chance 0.5 x 0.25 + 0.5 x 0.75 = 0.5; kappa (0.75 - 0.5) / (1 - 0.5) = 0.5."""
    db = open_db(demo_db_path)
    first = ids(db, QueueFilter(queue="disagreements"))[:4]
    db.conn.close()
    ada, bob = AppProcess(demo_db_path, reviewer="ada"), AppProcess(demo_db_path, reviewer="bob")
    try:
        ada.wait_for_text(b"PREMISE")
        bob.wait_for_text(b"PREMISE")
        # One decision at a time, the two reviewers interleaved; r and its reason in one write: a reason typed
        # ahead of its dialog is the dialog's.
        for n, (mine, theirs) in enumerate(zip((b"a", b"a", b"r1", b"r2"), (b"a", b"r4", b"r0", b"r3"),
                                               strict=True)):
            ada.keys(mine)
            bob.keys(theirs)
            found = _wait_for(demo_db_path, 2 * n + 2)
        ada.keys(b"q")
        bob.keys(b"q")
        assert ada.wait(30) == 0 and bob.wait(30) == 0
    finally:
        ada.close()
        bob.close()
    assert [found["ada", i] for i in first] == [("accept", None), ("accept", None),
                                                ("reject", "reflection rationalises gold"),
                                                ("reject", "wrong reading of the premise")]
    assert [found["bob", i] for i in first] == [("accept", None), ("reject", "gold is wrong"), ("reject", None),
                                                ("reject", "thought and label disagree")]
    out = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "agreement", "--json",
                          "--db", str(demo_db_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["pairs"] == [{"a": "ada", "b": "bob", "shared": 4, "agreement": 0.75, "kappa": 0.5}]
