"""A worker process of a large export (see exports/parallel.py); run with -m."""
from __future__ import annotations

import dataclasses
import gc
import os
import pickle
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from typing import IO, Any

from exports import dpo, sft
from exports.block import Block
from exports.engine import Selector, chunks, length_check
from exports.parallel import Job, open_reader
from exports.source import fingerprint, read_snapshot

SELECTORS: dict[str, Callable[[Any], Selector]] = {"sft": sft.selector, "dpo": dpo.selector}


class Sender:
    """Messages up a pipe (exports.parallel.receive reads them) from a thread of their own, so selecting goes
    on while the parent reads; a block's lines follow its pickled rest as they are, never joined or copied whole."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self._queue: queue.Queue[tuple[bytes, list[bytes]] | None] = queue.Queue(maxsize=2)  # two blocks wait
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            head, lines = message
            try:
                self._stream.write(head)
                self._stream.writelines(lines)
                self._stream.flush()
            except OSError:  # the parent is gone: nobody reads any more
                os._exit(1)

    def send(self, kind: str, payload: Any = None) -> None:
        """Queue a message (waits while two are queued)."""
        lines: list[bytes] = []
        if isinstance(payload, Block):
            lines, payload = payload.lines, dataclasses.replace(payload, lines=[])
        head = pickle.dumps((kind, payload, sum(map(len, lines))), protocol=pickle.HIGHEST_PROTOCOL)
        self._queue.put((head, lines))

    def close(self) -> None:
        """Send what is queued and stop."""
        self._queue.put(None)
        self._thread.join()


def main() -> None:
    """Read the job on stdin; send ready, then each range's blocks and its end, up stdout."""
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 20)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the messages
    job: Job = pickle.load(sys.stdin.buffer)
    gc.disable()  # a short-lived process that makes no reference cycles: collecting would only cost time
    sender = Sender(out)
    try:
        db = open_reader(job.path)
        with read_snapshot(db):
            sender.send("ready", fingerprint(db))  # the first read: the parent holds other writers off till now
            selector = SELECTORS[job.kind](job.options)
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
