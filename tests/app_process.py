"""The review app as a real process on a pseudo-terminal (keys in, kill, hang-up), and a real lock holder."""
from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class AppProcess:
    """`nlistral tui --db PATH` on its own pseudo-terminal (its controlling terminal, as in a real one)."""

    def __init__(self, db_path: Path, size: tuple[int, int] = (120, 30), reviewer: str = "proc"):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = {**os.environ, "NLISTRAL_REVIEWER": reviewer, "TERM": "xterm-256color", "COLUMNS": str(size[0]),
               "LINES": str(size[1])}
        env.pop("MISTRAL_API_KEY", None)

        def controlling_terminal() -> None:  # after setsid (start_new_session): the pty becomes ours
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from pipeline.cli import main; main()", "tui", "--db", str(db_path)],
            stdin=slave, stdout=slave, stderr=slave,  # Textual paints on stderr
            cwd=ROOT, env=env, start_new_session=True,
            preexec_fn=controlling_terminal,
        )
        os.close(slave)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def wait_for_text(self, text: bytes, timeout: float = 30.0) -> None:
        """Wait until the app has painted text (AssertionError with the tail of the output if not)."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the app never showed {text!r}; exit {self.proc.poll()}; "
                                     f"stderr {self.stderr()!r}; output tail {bytes(self.output[-400:])!r}")
            time.sleep(0.05)

    def keys(self, data: bytes) -> None:
        """Type these bytes into the terminal, all in one write."""
        os.write(self.master, data)

    def hang_up(self) -> None:
        """Close the terminal (what closing a terminal window does: the app gets SIGHUP)."""
        os.close(self.master)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        self.proc.send_signal(signal.SIGKILL)

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status, waiting at most timeout seconds."""
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        """The last of what the terminal showed (the app paints on stderr; messages after it exits follow)."""
        time.sleep(0.2)  # let the reader take the last bytes
        return bytes(self.output[-2000:]).decode(errors="replace")

    def close(self) -> None:
        """Make sure the process is gone."""
        if self.proc.poll() is None:
            self.kill()
            self.proc.wait(10)
        for fd in (self.master,):
            try:
                os.close(fd)
            except OSError:
                pass


class LockHolder:
    """Another process holding the store's write lock (BEGIN IMMEDIATE) until release()."""

    def __init__(self, db_path: Path):
        code = ("import sqlite3, sys\n"
                f"c = sqlite3.connect({str(db_path)!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('held', flush=True)\n"
                "sys.stdin.readline()\n"
                "c.execute('ROLLBACK')\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        """Roll back and end the holder."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
