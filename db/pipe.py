"""Messages between a process and a child it starts for part of its work: one protocol for the parser
of a large import (pipeline.importing.parallel) and the workers of a large export (exports.fast.pool).

The parent starts the child (Child.start, usually `python -m MODULE`), writes one pickled job on its
stdin and closes it (Child.send_job). The child takes the job and its message stream with
`job_and_stream` and sends messages up stdout through a Sender, whose thread writes while the child
goes on working and which holds at most `ahead` messages. A message is the length of a pickle (8
bytes, little-endian) and the pickle: (kind, payload), or (kind, payload, size) followed by size
bytes of raw data (an export's lines: never pickled, joined or copied whole). The parent reads
them with `receive`: ("gone", None, b"") when the child stopped without a whole message. Anything a library
prints in the child goes to stderr, never into the messages; the parent may keep the child's
stderr in a file for the tail of an error message. Imports nothing of the project: both layers use it.
"""
from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder that holds the project's packages
_OUT_BUFFER = 1 << 20
_LENGTH = struct.Struct("<Q")
GONE = "gone"  # the kind receive returns when the child stopped without a word


class Child(NamedTuple):
    """A child process started with -m (pipes to its stdin and stdout), and its stderr file when kept."""

    process: subprocess.Popen[bytes]
    errors: IO[bytes] | None

    @classmethod
    def start(cls, command: Sequence[str], *, keep_stderr: bool = False) -> Child:
        """Start the command (python_module: it imports while the caller prepares its job)."""
        errors = tempfile.TemporaryFile() if keep_stderr else None  # noqa: SIM115  (closed by stop)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
        process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                   env=env)
        return cls(process, errors)

    def send_job(self, job: Any) -> None:
        """Write the job on the child's stdin and close it (a child that stopped already says how when read)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
            self.process.stdin.close()
        except BrokenPipeError:
            pass

    def receive(self) -> tuple[str, Any, bytes]:
        """The child's next message (module docstring)."""
        assert self.process.stdout is not None
        return receive(self.process.stdout)

    def stderr_tail(self, lines: int = 3) -> str:
        """The last lines the child wrote to stderr, joined with ' | ' (empty when not kept or none)."""
        if self.errors is None:
            return ""
        self.errors.seek(0)
        return " | ".join(self.errors.read().decode(errors="replace").strip().splitlines()[-lines:])

    def stop(self, wait_s: float = 0) -> None:
        """Wait up to wait_s for the child to exit, else kill it; close the pipes and the stderr file."""
        try:
            self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.errors):
            if stream is not None:
                stream.close()


def python_module(name: str) -> list[str]:
    """The command that runs a module of the project with this interpreter."""
    return [sys.executable, "-m", name]


def receive(stream: IO[bytes]) -> tuple[str, Any, bytes]:
    """The next (kind, payload, data) on stream, or (GONE, None, b"") when it ends before a whole message."""
    head = stream.read(_LENGTH.size)
    length = _LENGTH.unpack(head)[0] if len(head) == _LENGTH.size else 0
    body = stream.read(length) if length else b""
    if not length or len(body) != length:
        return GONE, None, b""
    kind, payload, *sized = pickle.loads(body)
    size = sized[0] if sized else 0
    data = stream.read(size) if size else b""
    if len(data) != size:
        return GONE, None, b""
    return kind, payload, data


class Sender:
    """Messages up a pipe from a thread of their own (at most `ahead` wait), so the child works on meanwhile."""

    def __init__(self, stream: IO[bytes], ahead: int = 2):
        self._stream = stream
        self._queue: queue.Queue[tuple[bytes, Sequence[bytes]] | None] = queue.Queue(maxsize=ahead)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            head, data = message
            try:
                self._stream.write(head)
                self._stream.writelines(data)
                self._stream.flush()
            except OSError:  # the parent is gone: nobody reads any more
                os._exit(1)

    def send(self, kind: str, payload: Any = None, data: Sequence[bytes] = ()) -> None:
        """Queue a message with its raw data (waits while `ahead` are queued)."""
        size = sum(map(len, data))
        body = pickle.dumps((kind, payload, size) if size else (kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
        self._queue.put((_LENGTH.pack(len(body)) + body, data))

    def close(self) -> None:
        """Send what is queued and stop."""
        self._queue.put(None)
        self._thread.join()


def job_and_stream() -> tuple[Any, IO[bytes]]:
    """In a child: the job from stdin and the stream for a Sender (stdout, which itself then goes to stderr)."""
    out = os.fdopen(os.dup(1), "wb", buffering=_OUT_BUFFER)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the messages
    return pickle.load(sys.stdin.buffer), out
