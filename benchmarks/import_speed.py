"""Benchmark: import a 1,000,000-row CSV built from the external NLI data, then time `stats`.

Usage: python benchmarks/import_speed.py [--rows 1000000] [--workdir DIR]
Targets (2-core development machine): import >= 100,000 rows/s; stats <= 2 s.
Prints one JSON line at the end. Needs ../shared/data/external (exits with a reason otherwise).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTERNAL = ROOT.parent / "shared" / "data" / "external"


def build_csv(path: Path, rows: int) -> None:
    """Replicate the external rows (rte, sick) to `rows` data rows."""
    source: list[list[str]] = []
    for name in ("rte_train.csv", "rte_dev.csv", "sick_train.csv", "sick_test.csv"):
        with (EXTERNAL / name).open(newline="", encoding="utf-8") as fh:
            source.extend(list(csv.reader(fh))[1:])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["premise", "hypothesis", "label"])
        for i in range(rows):
            writer.writerow(source[i % len(source)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not EXTERNAL.exists():
        sys.exit(f"skipped: {EXTERNAL} not found (the benchmark reads the shared external data)")
    sys.path.insert(0, str(ROOT))
    from db import open_db
    from pipeline.importing import import_file
    from pipeline.stats import collect_stats

    work = args.workdir or Path(tempfile.mkdtemp(prefix="nlistral-import-"))
    work.mkdir(parents=True, exist_ok=True)
    data, db_path = work / "bench_train.csv", work / "bench.db"
    for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        p.unlink(missing_ok=True)
    build_csv(data, args.rows)
    print(f"built {data} ({data.stat().st_size / 1e6:.0f} MB, {args.rows} rows)", file=sys.stderr)
    db = open_db(db_path)
    t, cpu = time.perf_counter(), time.process_time()
    report = import_file(db, data)
    import_s, import_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    assert report.examples_added == args.rows, report
    db.conn.close()
    db = open_db(db_path)  # stats as a user runs it: a fresh process-like connection
    t = time.perf_counter()
    stats = collect_stats(db)
    stats_s = time.perf_counter() - t
    assert stats["examples"] == args.rows
    # cpu_s: this process's CPU time. On a machine shared with other work, wall time overstates the
    # cost; rows per CPU second is what an idle machine would approach (the import is one thread).
    print(json.dumps({"rows": args.rows, "import_s": round(import_s, 2), "rows_per_s": round(args.rows / import_s),
                      "import_cpu_s": round(import_cpu_s, 2), "rows_per_cpu_s": round(args.rows / import_cpu_s),
                      "load_avg_1m": round(os.getloadavg()[0], 2),
                      "stats_s": round(stats_s, 3), "db_mb": round(db_path.stat().st_size / 1e6)}))


if __name__ == "__main__":
    main()
