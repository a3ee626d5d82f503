"""Parse a large pair file in a second process, so parsing and the SQLite writes use both cores.

The child is `python -m pipeline.importing.parse_worker`: it reads a pickled job on stdin and
writes length-prefixed pickled messages on stdout: ("rows", staged batch) ..., then ("done", bad
rows), or ("failed", message) for input the user must fix. Each batch comes staged (db/staging.py):
the child binds every value into a small SQLite database, so the writer only copies it in.
"""
from __future__ import annotations

import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from db.staging import StagedRows
from pipeline.importing.errors import BadRow, ImportFailed
from pipeline.importing.validate import Target

# Below this size the second process costs more to start than it saves.
PARALLEL_MIN_BYTES = 8 << 20
_LENGTH = struct.Struct("<Q")


def staged_in_child(path: Path, fmt: str, required: list[str], target: Target,
                    bad: list[BadRow]) -> Iterator[StagedRows]:
    """Batches of example rows parsed, validated and staged by a child process; rejected rows land in bad."""
    child = subprocess.Popen([sys.executable, "-m", "pipeline.importing.parse_worker"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(pickle.dumps((str(path), fmt, required, target)))
        child.stdin.close()
        while True:
            message = _read(child.stdout)
            if message is None:
                raise ImportFailed(path, [], f"{path}: the parser process stopped unexpectedly "
                                   f"(exit code {child.wait()}); nothing was imported.")
            kind, payload = message
            if kind == "rows":
                yield payload
            elif kind == "done":
                bad.extend(payload)
                return
            else:
                raise ImportFailed(path, [], payload)
    finally:
        child.stdout.close()
        if child.poll() is None:
            child.kill()
        child.wait()


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
    body = stream.read(_LENGTH.unpack(head)[0])
    return pickle.loads(body)
