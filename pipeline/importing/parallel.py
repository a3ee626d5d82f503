"""Parse a large pair file in a second process, so parsing and the SQLite writes use both cores.

The child is `python -m pipeline.importing.parse_worker`: it reads a pickled job on stdin and
writes length-prefixed pickled messages on stdout: ("rows", staged batch) ..., then ("done", (bad
rows, lines skipped for want of a consensus label)), or ("failed", message) for input the user must fix. Each batch comes staged (db/staging.py):
the child binds every value into a small SQLite database, so the writer only copies it in.
"""
from __future__ import annotations

import contextlib
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from db.staging import StagedRows
from pipeline.importing.errors import BadRow, ImportFailed
from pipeline.importing.validate import Target

# Below this size the second process costs more to start than it saves.
PARALLEL_MIN_BYTES = 8 << 20
_LENGTH = struct.Struct("<Q")
# Staged batches (about 5 MB each) read ahead of the writer. A pipe holds 64 KB, so without this
# the parser stops as soon as it has one batch ready and waits for the writer to ask for it.
_AHEAD = 4
_WORKER = [sys.executable, "-m", "pipeline.importing.parse_worker"]


def staged_in_child(path: Path, fmt: str, target: Target, bad: list[BadRow],
                    skipped: list[int]) -> Iterator[StagedRows]:
    """Batches of example rows parsed, validated and staged by a child process; rejected rows land in
    bad, the lines of rows without a consensus label in skipped."""
    child = subprocess.Popen(_WORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    ahead: queue.Queue[Any] = queue.Queue(_AHEAD)
    reader = threading.Thread(target=_read_ahead, args=(child.stdout, ahead), daemon=True)
    try:
        child.stdin.write(pickle.dumps((str(path), fmt, target)))
        child.stdin.close()
        reader.start()
        while True:
            message = ahead.get()
            if isinstance(message, BaseException):
                raise message
            if message is None:
                raise ImportFailed(path, [], f"{path}: the parser process stopped unexpectedly "
                                   f"(exit code {child.wait()}); nothing was imported.")
            kind, payload = message
            if kind == "rows":
                yield payload
            elif kind == "done":
                bad.extend(payload[0])
                skipped.extend(payload[1])
                return
            else:
                raise ImportFailed(path, [], payload)
    finally:
        if child.poll() is None:
            child.kill()  # the reader then meets the end of the pipe
        child.wait()
        while reader.is_alive():  # make room for its last message, so it can finish
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.1)
        child.stdout.close()


def _read_ahead(stream: IO[bytes], ahead: queue.Queue[Any]) -> None:
    """Put the child's messages on ahead until the end of the pipe (None) or an error (the exception)."""
    while True:
        try:
            message = _read(stream)
        except BaseException as exc:  # handed to the writer, which raises it
            ahead.put(exc)
            return
        ahead.put(message)
        if message is None or message[0] != "rows":
            return


def send(stream: IO[bytes], message: tuple) -> None:
    """Write one length-prefixed pickled message."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(body)))
    stream.write(body)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    size = _LENGTH.unpack(head)[0]
    body = stream.read(size)
    return pickle.loads(body) if len(body) == size else None
