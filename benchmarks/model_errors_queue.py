"""Benchmark: the review app's "model errors" queue on a 1,000,000-example store, read cold and warm.

Usage: python benchmarks/model_errors_queue.py --store PATH [--workdir DIR] [--repeat 3]
PATH is a store with examples and thoughts, e.g. the one `python benchmarks/export_speed.py --rows
1000000 --workdir /tmp/xspeed` builds (/tmp/xspeed/bench-1000000.db). It is copied to the workdir
(left alone), and the copy gets one evaluate run's predictions on every 100th example (10,000 of
them, 85 % right), as the TUI benchmark's store has. Each repeat drops the copy from the OS page
cache, opens it as the app does and times the queue's first page (100 rows) read cold, then again
warm, with and without the run filter. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the project; tui_latency (predictions, page cache)


def prepare(store: Path, work: Path) -> Path:
    """The copy with predictions (made once per workdir)."""
    from tui_latency import add_predictions

    from db import open_db

    copy = work / "queue.db"
    if not copy.exists():
        shutil.copyfile(store, work / "queue.db.tmp")
        db = open_db(work / "queue.db.tmp")
        add_predictions(db)
        db.conn.close()
        os.replace(work / "queue.db.tmp", copy)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.store.exists():
        sys.exit(f"{args.store} not found; build it with benchmarks/export_speed.py (see --help)")
    from tui_latency import evict_page_cache

    from db import open_db
    from db.queue_pages import page_after
    from db.queues import QueueFilter

    work = args.workdir or Path(tempfile.mkdtemp(prefix="nlistral-queue-"))
    work.mkdir(parents=True, exist_ok=True)
    path = prepare(args.store, work)
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        db = open_db(path)
        run_id = db.execute("SELECT max(id) FROM runs WHERE kind = 'evaluate'").fetchone()[0]
        db.conn.close()
        for name, f in (("all runs", QueueFilter(queue="model_errors")),
                        ("one run", QueueFilter(queue="model_errors", run_id=run_id))):
            evict_page_cache(path)
            db = open_db(path)
            for state in ("cold", "warm"):
                t = time.perf_counter()
                rows = page_after(db, f, None, 100)
                runs.setdefault(f"{name} {state} ms", []).append(round((time.perf_counter() - t) * 1000, 1))
            assert len(rows) == 100, len(rows)
            db.conn.close()
    print(json.dumps({"repeats": runs, "median_ms": {k: statistics.median(v) for k, v in runs.items()},
                      "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
