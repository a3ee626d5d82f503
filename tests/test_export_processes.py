"""Exports against real processes: kill -9 between the renames, another process holding the write lock,
and a disk that fills up (a real file-size limit) midway."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import open_db
from db.runs import list_runs
from exports import DpoOptions, EmptyExportError, SftOptions, list_exports, plan, write_to
from pipeline.cli import app

ROOT = Path(__file__).resolve().parent.parent

# `nlistral export ...` in a child process that SIGKILLs itself at one point of putting an export in place
# (exports.lineage, module docstring): argv[1] is the point, the rest the command line.
KILL_AT = r"""
import os, signal, sys
from exports.sink import JsonlSink

point = sys.argv[1]
die = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
commit = JsonlSink.commit
if point == "before-data-rename":  # the old manifest is already removed
    JsonlSink.commit = die
elif point == "after-data-rename":  # the data is in place, the store not yet committed
    JsonlSink.commit = lambda self: (commit(self), die())
elif point == "before-manifest-rename":  # the store is committed, the manifest still has its temporary name
    JsonlSink.cleanup = die
from pipeline.cli import main
sys.argv = ["nlistral", *sys.argv[2:]]
main()
"""

# Holds the write lock of a store: each line "lock SECONDS" on stdin takes it (BEGIN IMMEDIATE), says
# "locked", and lets it go after SECONDS.
HOLDER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
for line in sys.stdin:
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(line.split()[1]))
    conn.execute("ROLLBACK")
"""

# `nlistral export ...` with the size of any file it writes limited to argv[1] bytes (RLIMIT_FSIZE; Python
# ignores SIGXFSZ, so a write past it fails with EFBIG as on a full disk).
LIMITED = r"""
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from pipeline.cli import main
sys.argv = ["nlistral", *sys.argv[2:]]
main()
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _raw(db_path: Path, sql: str) -> list[tuple]:
    """Read the store without opening it as the app does (which may sweep interrupted runs)."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("point", ["before-data-rename", "after-data-rename", "before-manifest-rename"])
def test_a_kill_while_an_export_is_put_in_place_never_leaves_a_manifest_that_lies(demo_db_path, tmp_path, point):
    """A kill between the data rename and the manifest rename used to leave new data beside the old manifest."""
    out = tmp_path / "train.jsonl"
    manifest = tmp_path / "train.jsonl.manifest.json"
    db = open_db(demo_db_path)
    first = write_to(db, SftOptions(ablation="reflected"), out=out)
    db.conn.close()
    child = subprocess.run([sys.executable, "-c", KILL_AT, point, "export", "sft", "--db", str(demo_db_path),
                            "--ablation", "correct-only", "--out", str(out), "--overwrite"],
                           env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr

    # What the killed run left behind is named in its config, so the sweep of interrupted runs can remove it.
    ((config,),) = _raw(demo_db_path, "SELECT config FROM runs WHERE kind = 'export' ORDER BY id DESC LIMIT 1")
    left = {str(p) for p in tmp_path.iterdir() if p.name.endswith(".tmp")}
    assert left and left <= set(json.loads(config)["temporaries"])

    # A manifest on disk always describes the data beside it and names a recorded export.
    rows = {r[0]: r for r in _raw(demo_db_path, "SELECT id, path, sha256, superseded_by FROM exports")}
    data = _sha(out)
    if manifest.exists():
        on_disk = json.loads(manifest.read_text(encoding="utf-8"))
        assert on_disk["sha256"] == data and rows[on_disk["export_id"]][2] == data
    # And `nlistral exports` tells which export, if any, the file holds.
    listed = {r["id"]: r for r in json.loads(CliRunner().invoke(app, ["exports", "--db", str(demo_db_path),
                                                                      "--json"]).stdout)}
    for r in listed.values():
        assert (r["state"] == "ok") == (r["sha256"] == data), r
    current = [r for r in listed.values() if r["superseded_by"] is None]
    assert len(current) == 1 and not current[0]["manifest_present"]
    expected = {"before-data-rename": (first.export_id, "ok"), "after-data-rename": (first.export_id, "changed"),
                "before-manifest-rename": (first.export_id + 1, "ok")}[point]
    assert (current[0]["id"], current[0]["state"]) == expected
    # Opening the store (as `exports` just did) swept the killed run: interrupted, its temporaries gone.
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert _raw(demo_db_path, "SELECT status FROM runs WHERE kind = 'export' ORDER BY id DESC LIMIT 1") == [
        ("interrupted",)]


class Holder:
    """Another process that holds the store's write lock when told to."""

    def __init__(self, db_path: Path):
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def lock(self, seconds: float) -> None:
        """Take the lock (returns once it is held) and let it go after seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"lock {seconds}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "locked"

    def close(self) -> None:
        """Stop the holder (after its current hold)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def holder(demo_db_path, monkeypatch):
    """A lock holder on the demo store, and a short busy timeout so that the export's writes wait in turns."""
    monkeypatch.setattr("db.connection.BUSY_TIMEOUT_MS", 300)
    started = Holder(demo_db_path)
    yield started
    started.close()


def test_export_waits_for_another_writer_and_says_so(demo_db_path, tmp_path, holder):
    """With another process holding the lock past the busy timeout, export used to exit with a traceback."""
    out = tmp_path / "train.jsonl"
    holder.lock(2.0)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["export", "sft", "--db", str(demo_db_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started > 1.5  # it waited for the lock
    assert f"waiting: another process is writing to {demo_db_path}" in result.stderr
    assert "Traceback" not in result.output and out.exists()


def test_recording_an_export_waits_for_another_writer(demo_db_path, tmp_path, holder):
    out = tmp_path / "train.jsonl"
    db = open_db(demo_db_path)
    locked: list[bool] = []
    waits: list[bool] = []

    def progress(done: int, total: int) -> None:  # the run is started: the next write is record_export's
        if not locked:
            locked.append(True)
            holder.lock(2.0)

    manifest = write_to(db, SftOptions(), out=out, progress=progress, on_wait=lambda: waits.append(True))
    assert waits and [r.id for r in list_exports(db)] == [manifest.export_id]
    assert list_runs(db, "export")[0].status == "completed" and _sha(out) == manifest.sha256
    db.conn.close()


def test_a_failed_export_is_marked_failed_after_waiting_for_another_writer(demo_db_path, tmp_path, holder):
    db = open_db(demo_db_path)
    locked: list[bool] = []

    def progress(done: int, total: int) -> None:
        if not locked:
            locked.append(True)
            holder.lock(2.0)

    with pytest.raises(EmptyExportError):  # no review decisions: no pairs; the run is failed once the lock is free
        write_to(db, DpoOptions(), out=tmp_path / "pairs.jsonl", progress=progress)
    assert locked and list_runs(db, "export")[0].status == "failed"
    db.conn.close()


def test_a_large_export_waits_for_the_lock_its_workers_need(demo_db_path, holder, monkeypatch):
    """A large export takes the write lock for a moment so its worker processes read one snapshot (even for its
    counts, as `--dry-run` shows them): it waits for another writer too, where it can say so."""
    from exports.fast import pool as parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_EXAMPLES", 0)  # workers for these 45 examples
    monkeypatch.setattr(parallel, "usable_cpus", lambda: 2)
    monkeypatch.setattr(parallel, "BUSY_TIMEOUT_MS", 300)
    db = open_db(demo_db_path)
    alone = plan(db, SftOptions())
    holder.lock(2.0)
    waits: list[bool] = []
    assert plan(db, SftOptions(), on_wait=lambda: waits.append(True)) == alone and waits
    db.conn.close()


@pytest.fixture
def large_db(db_path, tmp_path):
    """1,000 examples with a thought each: an export of about 450 KB."""
    from pipeline.importing import import_file

    n = 1000
    (tmp_path / "many.csv").write_text("id,premise,hypothesis,label\n" + "".join(f"{i},P{i},H{i},1\n" for i in range(n)))
    (tmp_path / "many_thoughts.jsonl").write_text("".join(json.dumps(
        {"id": i, "premise": f"P{i}", "hypothesis": f"H{i}", "true_label": 1, "thought_process": "It follows.",
         "predicted_label": 1}) + "\n" for i in range(n)))
    db = open_db(db_path)
    import_file(db, tmp_path / "many.csv")
    import_file(db, tmp_path / "many_thoughts.jsonl", model="m")
    db.conn.close()
    return db_path


def test_a_full_disk_is_a_message_and_leaves_nothing_half_written(large_db, tmp_path):
    """A write that fails for lack of space (here: a real file-size limit) used to end in a traceback."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "train.jsonl"
    child = subprocess.run([sys.executable, "-c", LIMITED, str(256 * 1024), "export", "sft", "--db", str(large_db),
                            "--ablation", "unmodified", "--out", str(out)],
                           env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 1, child.stderr
    assert "Traceback" not in child.stderr and f"Writing {out} failed: File too large" in child.stderr
    assert "is full" in child.stderr and "Nothing was kept" in child.stderr
    assert list(out_dir.iterdir()) == []  # no file, no manifest, no temporary
    assert _raw(large_db, "SELECT status FROM runs WHERE kind = 'export'") == [("failed",)]
    assert _raw(large_db, "SELECT count(*) FROM exports") == [(0,)]
