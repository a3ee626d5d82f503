"""Killing a real process at a chosen moment, for the tests of what a kill -9 leaves behind."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def sigkill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str,
                 timeout_s: float = 60) -> None:
    """SIGKILL the process once ready() holds (it must still be running then), and wait until it is gone."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, f"{what} in {timeout_s:g} s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL


def stored_count(db: Path, kind: str) -> int:
    """How many generations of this kind a store holds (0 before its tables exist), read as another process."""
    conn = sqlite3.connect(db, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM generations WHERE kind = ?", [kind]).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def generation_process(command: str, db: Path, url: str, key: str, tmp_path: Path, concurrency: int,
                       *extra: str) -> subprocess.Popen[bytes]:
    """`nlistral COMMAND` (generate, reflect, ...) against a fake server, as a real process with stderr piped."""
    env = {**os.environ, "MISTRAL_API_KEY": key, "NLISTRAL_CONFIG": str(tmp_path / "none.toml")}
    argv = [sys.executable, "-c", "from pipeline.cli import main; main()", command, *extra, "--db", str(db),
            "--server-url", url, "--rps", "40", "--max-concurrency", str(concurrency)]
    return subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
