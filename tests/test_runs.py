"""Runs whose process is gone read as interrupted at the next open; live runs, and runs of other hosts, do not.

Every owner here is a real process: one that started a run and was killed with SIGKILL, one that is
still sleeping, a zombie, and a real `nlistral generate` killed mid-run.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_mistral import FakeMistral, toy_pairs
from kill import sigkill_when, stored_count

from db import open_db
from db.owner import Owner, liveness, this_process
from db.runs import Run, get_run, reopen_run, start_run
from pipeline.evaluate.earlier_runs import resumable_run
from pipeline.importing import import_file

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kills real processes and reads /proc")

KEY = "sk-test-runs-5f0c2a"
OWNER = """
import json, sys, time
from db import open_db
from db.runs import start_run
db = open_db(sys.argv[1])
print(start_run(db, sys.argv[2], json.loads(sys.argv[3])), flush=True)
time.sleep(120)
"""


def _owner_process(path: Path, kind: str = "generate", config: dict | None = None) -> tuple[subprocess.Popen, int]:
    """A real process that opens the store, starts a run and sleeps; returns it and the run id."""
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(path), kind, json.dumps(config or {})],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"the owner process did not start a run: {line!r}"
    return proc, int(line)


def _killed_run(path: Path, kind: str = "generate", config: dict | None = None) -> int:
    proc, run_id = _owner_process(path, kind, config)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return run_id


def _status(path: Path, run_id: int, told: list[str] | None = None) -> Run:
    db = open_db(path, notify=None if told is None else told.append)
    try:
        return get_run(db, run_id)
    finally:
        db.conn.close()


def test_a_killed_owner_reads_as_interrupted_and_a_live_one_as_running(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    open_db(path).conn.close()
    live, live_id = _owner_process(path, "evaluate")
    try:
        dead_id = _killed_run(path, "train")
        told: list[str] = []
        dead, alive = _status(path, dead_id, told), _status(path, live_id, told)
        assert told == [f"Run {dead_id} (train) was {dead.error}"]  # said once, by the open that found it
        assert dead.status == "interrupted" and dead.finished_at
        assert f"pid {json.loads(dead.owner)['pid']} on {socket.gethostname()}" in dead.error
        assert "--resume" in dead.error  # what to do next, for a train run
        assert alive.status == "running" and alive.error is None
        assert json.loads(alive.owner)["pid"] == live.pid
    finally:
        live.kill()
        live.wait(10)
    assert _status(path, live_id).status == "interrupted"  # once it is gone


def test_liveness_tells_a_reused_pid_a_zombie_a_reboot_another_host_and_a_container_apart(tmp_path: Path) -> None:
    me = this_process()
    assert me.pid == os.getpid() and me.started is not None and me.boot_id
    assert liveness(me) == "alive"
    assert liveness(Owner(me.host, me.pid, me.started + 1, me.boot_id)) == "gone"  # the pid, another process
    assert liveness(Owner(me.host, me.pid, me.started, "another-boot")) == "gone"  # the machine restarted
    assert liveness(Owner("another-host", me.pid, me.started, me.boot_id)) == "elsewhere"
    assert me.pid_ns and liveness(Owner(me.host, 1, 1, me.boot_id, "pid:[1]")) == "elsewhere"  # a container
    assert Owner.from_json(me.to_json()) == me and Owner.from_json("not json") is None
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stat = (Path("/proc") / str(child.pid) / "stat").read_text()
        started = int(stat[stat.rfind(")") + 1:].split()[19])
        owner = Owner(me.host, child.pid, started, me.boot_id)
        assert liveness(owner) == "alive"
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (Path("/proc") / str(child.pid) / "stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert liveness(owner) == "gone"  # killed, not yet reaped: a zombie
    finally:
        child.kill()
        child.wait(10)
    assert liveness(owner) == "gone"


def test_runs_of_other_hosts_and_legacy_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    db = open_db(path)
    elsewhere, legacy = start_run(db, "generate", {}), start_run(db, "evaluate", {})
    other = Owner("another-host", 1, 1, "boot").to_json()
    db.execute("UPDATE runs SET owner = ? WHERE id = ?", [other, elsewhere])
    db.execute("UPDATE runs SET owner = NULL WHERE id = ?", [legacy])  # as recorded before m006
    db.conn.commit()
    db.conn.close()
    assert _status(path, elsewhere).status == "running"  # cannot be checked from here: left alone
    run = _status(path, legacy)
    assert run.status == "interrupted" and "did not record its process" in run.error


def test_a_locked_store_opens_at_once_and_is_swept_later(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    open_db(path).conn.close()
    run_id = _killed_run(path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); sys.stdin.readline(); c.execute('COMMIT')"),
        str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        run = _status(path, run_id)  # the busy timeout is 15 s: the sweep must not wait for it
        assert time.monotonic() - started < 2 and run.status == "running"
    finally:
        holder.stdin.write("release\n")
        holder.stdin.close()
        holder.wait(10)
    assert _status(path, run_id).status == "interrupted"


def test_an_interrupted_export_loses_its_temporaries_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    open_db(path).conn.close()
    temp_file, temp_dir = tmp_path / ".train.jsonl.1a2b.tmp", tmp_path / ".train_ds.3c4d.tmp"
    temp_file.write_text("half an export")
    (temp_dir / "data").mkdir(parents=True)
    (temp_dir / "data" / "shard.arrow").write_text("x")
    precious = tmp_path / "train.jsonl"
    precious.write_text("the previous export")
    outside = tmp_path / "keep"
    outside.mkdir()
    (outside / "x").write_text("kept")
    (tmp_path / ".link.tmp").symlink_to(outside)  # a temporary that is a link: the link goes, never its target
    config = {"temporaries": [str(temp_file), str(temp_dir), str(precious), ".relative.tmp",
                              str(tmp_path / ".link.tmp"), str(tmp_path / ".already-gone.tmp")]}
    run_id = _killed_run(path, "export", config)
    run = _status(path, run_id)
    assert run.status == "interrupted" and "run the export again" in run.error
    assert not temp_file.exists() and not temp_dir.exists() and not (tmp_path / ".link.tmp").exists()
    assert precious.read_text() == "the previous export" and (outside / "x").read_text() == "kept"
    assert f"Left {str(precious)!r} in place" in run.error and "'.relative.tmp'" in run.error


def test_an_interrupted_run_can_be_resumed_and_a_live_one_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    open_db(path).conn.close()
    identity = {"adapter": "a", "base": "b"}
    live, live_id = _owner_process(path, "evaluate", identity)
    try:
        db = open_db(path)
        assert resumable_run(db, identity) is None  # another process is running it
        db.conn.close()
    finally:
        live.kill()
        live.wait(10)
    db = open_db(path)
    try:
        assert get_run(db, live_id).status == "interrupted"
        assert resumable_run(db, identity) == live_id
        reopen_run(db, live_id)
        run = get_run(db, live_id)
        assert run.status == "running" and run.error is None
        assert Owner.from_json(run.owner) == this_process()  # now ours: the next open leaves it alone
    finally:
        db.conn.close()
    assert _status(path, live_id).status == "running"


def test_a_generate_killed_mid_run_is_interrupted_and_a_rerun_completes(tmp_path: Path) -> None:
    data = tmp_path / "toy_train.csv"
    with data.open("w", newline="") as fh:
        csv.writer(fh).writerows([("premise", "hypothesis", "label"), *toy_pairs(40)])
    path = tmp_path / "kill.db"
    store = open_db(path)
    import_file(store, data)
    store.conn.close()
    env = {**os.environ, "MISTRAL_API_KEY": KEY, "NLISTRAL_CONFIG": str(tmp_path / "none.toml")}
    with FakeMistral(api_key=KEY, latency_s=0.1) as fake:
        command = [sys.executable, "-c", "from pipeline.cli import main; main()", "generate", "--db", str(path),
                   "--server-url", fake.url, "--rps", "40", "--max-concurrency", "4"]
        first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sigkill_when(first, lambda: stored_count(path, "thought") >= 5, "the first run stored fewer than 5 answers")
        db = open_db(path)
        (killed,) = [r for r in db.query("SELECT * FROM runs WHERE kind = 'generate'")]
        db.conn.close()
        assert killed["status"] == "interrupted" and f"pid {first.pid}" in killed["error"]
        assert "re-run the same command" in killed["error"]
        second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
    db = open_db(path)
    statuses = [r["status"] for r in db.query("SELECT status FROM runs WHERE kind = 'generate' ORDER BY id")]
    db.conn.close()
    assert statuses == ["interrupted", "completed"] and stored_count(path, "thought") == 40
