"""The parser process of a large import (see pipeline/importing/parallel.py); run with -m."""
from __future__ import annotations

import signal
from pathlib import Path

from db.pipe import Sender, job_and_stream
from db.staging import stage_rows
from pipeline.importing.errors import BadRow, ImportFailed
from pipeline.importing.parallel import AHEAD
from pipeline.importing.readers import file_records
from pipeline.importing.validate import example_batches


def main() -> None:
    """Read the job on stdin; parse, validate and stage the file, sending batches up stdout."""
    # Ctrl-C reaches the whole process group: the importing process decides (it rolls back and
    # stops this one), so this one does not die with a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    (path, fmt, target), out = job_and_stream()
    sender = Sender(out, AHEAD)
    file = Path(path)
    try:
        bad: list[BadRow] = []
        skipped: list[int] = []
        for batch in example_batches(file_records(file, fmt, target), target, bad, skipped):
            sender.send("rows", stage_rows(batch))
        sender.send("done", (bad, skipped))
    except ImportFailed as exc:
        sender.send("failed", str(exc))
    finally:
        sender.close()


if __name__ == "__main__":
    main()
