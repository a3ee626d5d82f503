"""Parse a large pair file in a second process, so parsing and the SQLite writes use both cores.

The child is `python -m pipeline.importing.parse_worker`, spoken to through db.pipe: its job is
(path, format, target); its messages are ("rows", staged batch) ..., then ("done", (bad rows, lines
skipped for want of a consensus label)), or ("failed", message) for input the user must fix. Each
batch comes staged (db/staging.py): the child binds every value into a small SQLite database, so
the writer only copies it in.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from db.pipe import GONE, Child, python_module
from db.staging import StagedRows
from pipeline.importing.errors import BadRow, ImportFailed
from pipeline.importing.validate import Target

# Below this size the second process costs more to start than it saves.
PARALLEL_MIN_BYTES = 8 << 20
# Staged batches (about 5 MB each) the parser may have ready ahead of the writer. A pipe holds 64 KB,
# so without them the parser would stop as soon as it has one batch ready and wait for the writer.
AHEAD = 4
_WORKER = python_module("pipeline.importing.parse_worker")


def staged_in_child(path: Path, fmt: str, target: Target, bad: list[BadRow],
                    skipped: list[int]) -> Iterator[StagedRows]:
    """Batches of example rows parsed, validated and staged by a child process; rejected rows land in
    bad, the lines of rows without a consensus label in skipped."""
    child = Child.start(_WORKER)
    try:
        child.send_job((str(path), fmt, target))
        while True:
            kind, payload, _ = child.receive()
            if kind == "rows":
                yield payload
            elif kind == "done":
                bad.extend(payload[0])
                skipped.extend(payload[1])
                return
            elif kind == GONE:
                raise ImportFailed(path, [], f"{path}: the parser process stopped unexpectedly "
                                   f"(exit code {child.process.wait()}); nothing was imported.")
            else:
                raise ImportFailed(path, [], payload)
    finally:
        child.stop()
