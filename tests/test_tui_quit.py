"""No decision shown as made is lost: keys in a burst before q, and a quit, kill -9 or closed terminal while
another process holds the store's write lock. Real processes: the app on a pseudo-terminal, a real lock holder."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from app_process import AppProcess, LockHolder

from db import open_db
from db.journal import journal_folder

pytestmark = pytest.mark.timeout(120)
TEN = b"ar0ar0ar0ar0ar0"  # five accepts and five rejects (r asks why: 0 is no reason)


def _decisions(db_path: Path) -> list[tuple[int, str]]:
    db = open_db(db_path)  # opening applies journals that ended sessions left
    try:
        return db.execute("SELECT example_id, action FROM review_events WHERE action IN ('accept', 'reject') "
                          "ORDER BY id").fetchall()
    finally:
        db.conn.close()


def _journaled(db_path: Path) -> int:
    lines = [line for path in journal_folder(db_path).glob("*.jsonl") for line in path.read_text().splitlines()]
    return sum(json.loads(line)["op"] == "record" for line in lines if line.strip())


def _wait_journaled(db_path: Path, n: int, app: AppProcess, timeout: float = 60.0) -> None:  # CI once took >30 s
    deadline = time.monotonic() + timeout
    while _journaled(db_path) < n:
        assert time.monotonic() < deadline, (f"only {_journaled(db_path)} of {n} decisions reached the journal; "
                                             f"the screen's last output: {bytes(app.output[-6000:])!r}")
        time.sleep(0.05)


@pytest.fixture
def app_on_demo(demo_db_path):
    app = AppProcess(demo_db_path)
    yield app
    app.close()


def _shown(app: AppProcess) -> None:
    """Wait until the app shows an example, and a moment more for it to read the next ones ahead: a reject asks
    why in a dialog, and a key typed at a row whose details are still loading finds no example to decide on."""
    app.wait_for_text(b"PREMISE")
    time.sleep(1.0)


def test_keys_sent_in_one_burst_before_q_are_all_saved(demo_db_path, app_on_demo):
    _shown(app_on_demo)
    app_on_demo.keys(TEN + b"q")
    assert app_on_demo.wait(30) == 0, app_on_demo.stderr()
    decided = _decisions(demo_db_path)
    assert [a for _, a in decided] == ["accept", "reject"] * 5 and len({i for i, _ in decided}) == 10
    assert not journal_folder(demo_db_path).exists()  # everything stored: the journal is gone


@pytest.mark.parametrize("end", ["quit", "kill -9", "terminal closed"])
def test_decisions_made_while_another_process_holds_the_lock_survive(demo_db_path, app_on_demo, end):
    _shown(app_on_demo)
    holder = LockHolder(demo_db_path)  # a large import, say: one long transaction
    try:
        app_on_demo.keys(TEN)
        _wait_journaled(demo_db_path, 10, app_on_demo)
        started = time.monotonic()
        if end == "quit":
            app_on_demo.keys(b"q")
            assert app_on_demo.wait(20) == 0
            assert time.monotonic() - started < 10, "quitting waited for the other process"
            message = app_on_demo.stderr()
            assert "10 review steps could not be stored yet" in message and ".decisions" in message
        elif end == "kill -9":
            app_on_demo.kill()
            app_on_demo.wait(10)
        else:
            app_on_demo.hang_up()
            app_on_demo.wait(20)
        assert _decisions(demo_db_path) == []  # still locked: nothing could be stored, nothing is lost
        assert _journaled(demo_db_path) == 10
    finally:
        holder.release()
    decided = _decisions(demo_db_path)
    assert [a for _, a in decided] == ["accept", "reject"] * 5 and len({i for i, _ in decided}) == 10
    assert _decisions(demo_db_path) == decided  # replayed once, never twice
    assert not journal_folder(demo_db_path).exists()
