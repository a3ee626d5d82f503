"""The parser process of a large import (see pipeline/importing/parallel.py); run with -m."""
from __future__ import annotations

import pickle
import signal
import sys
from pathlib import Path

from db.staging import stage_rows
from pipeline.importing.errors import BadRow, ImportFailed
from pipeline.importing.parallel import send
from pipeline.importing.readers import file_records
from pipeline.importing.validate import example_batches


def main() -> None:
    """Read the job on stdin; parse, validate and stage the file, sending batches up stdout."""
    # Ctrl-C reaches the whole process group: the importing process decides (it rolls back and
    # stops this one), so this one does not die with a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    path, fmt, target = pickle.loads(sys.stdin.buffer.read())
    file = Path(path)
    try:
        bad: list[BadRow] = []
        skipped: list[int] = []
        for batch in example_batches(file_records(file, fmt, target), target, bad, skipped):
            send(out, ("rows", stage_rows(batch)))
        send(out, ("done", (bad, skipped)))
    except ImportFailed as exc:
        send(out, ("failed", str(exc)))


if __name__ == "__main__":
    main()
