"""A worker process of a large export (see exports/fast/pool.py); run with -m."""
from __future__ import annotations

import dataclasses
import gc
import traceback
from collections.abc import Sequence
from typing import Any

from db import pipe
from db.export_reads import fingerprint, open_reader, read_snapshot
from exports.fast.block import Block, chunks
from exports.fast.pool import Job
from exports.kinds import selector_for
from exports.length import length_check


class Sender(pipe.Sender):
    """db.pipe.Sender that sends a block's lines as they are, as the raw data after the rest of it."""

    def send(self, kind: str, payload: Any = None, data: Sequence[bytes] = ()) -> None:
        """Queue a message (waits while two are queued)."""
        if isinstance(payload, Block):
            data, payload = payload.lines, dataclasses.replace(payload, lines=[])
        super().send(kind, payload, data)


def main() -> None:
    """Read the job on stdin; send ready, then each range's blocks and its end, up stdout."""
    job, out = pipe.job_and_stream()
    assert isinstance(job, Job)
    gc.disable()  # a short-lived process that makes no reference cycles: collecting would only cost time
    sender = Sender(out)
    try:
        db = open_reader(job.path)
        with read_snapshot(db):
            sender.send("ready", fingerprint(db))  # the first read: the parent holds other writers off till now
            selector = selector_for(job.kind, job.options)
            length = length_check(job.options)
            for first, end in job.ranges:
                for rows in chunks(selector.source.rows(db, (first, end)), job.block_examples):
                    sender.send("block", selector.build(db, length, rows))
                sender.send("end")
    except Exception as exc:  # noqa: BLE001  (whatever stops a worker is reported to the parent)
        traceback.print_exc()
        sender.send("failed", f"{type(exc).__name__}: {exc}")
    finally:
        sender.close()


if __name__ == "__main__":
    main()
