"""Benchmark: export 1,000,000 curated SFT rows from a database built for it, and report rows per second.

Usage: python benchmarks/export_speed.py [--rows 1000000] [--workdir DIR] [--repeat 3] [--reuse]
       [--serial | --canonical]
Target (2-core development machine): >= 100,000 rows/s for `--ablation curated --format inst`.

The database is built outside the timed part, with direct SQL (this script only): examples pair the
distinct premises and hypotheses of SICK (train + test, ../shared/data/external) so that every pair
is distinct; each has a thought (a seed-sample thought or reflection text), 30 % disagree with gold and
have a reflection that reaches it, and a few hundred carry review decisions (accept, edit) recorded
through db.reviews. The search index is not filled (exports do not read it). Every row fits the
default 512-token limit, so all of them are written.

Each timed export runs in a fresh Python process (as a user's `nlistral export sft` does), so its
CPU time (its own plus its worker processes') and peak memory are the export's alone: peak RSS
(getrusage; it counts the database pages SQLite maps, shared and reclaimable) and peak heap
(resident anonymous memory, sampled from /proc every 20 ms). --serial
times the one-process path (exports.fast.pool.PARALLEL_MIN_EXAMPLES raised above the row count);
--canonical times the one-process path with the uncompiled line layout (exports.lines.sft_line per
row). Prints one JSON line at the end, with wall and CPU time per run and the 1-minute load
average before each (the machine is shared: CPU time shows what the export itself costs).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def _texts() -> tuple[dict[str, int], list[str], list[str]]:
    premises: dict[str, int] = {}  # distinct premise -> the gold label of its first pair
    hypotheses: dict[str, None] = {}
    for name in ("sick_train.csv", "sick_test.csv"):
        with (SHARED / "external" / name).open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                premises.setdefault(r["premise"], int(r["label"]))
                hypotheses.setdefault(r["hypothesis"], None)
    thoughts = []
    for name, key in (("sample_thoughts.json", "thought_process"),
                      ("sample_reflections.json", "improved_thought_process")):
        for line in (SHARED / "seed_sample" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                thoughts.append(json.loads(line)[key])
    return premises, list(hypotheses), thoughts


def build(db_path: Path, rows: int) -> None:
    """A database of `rows` labelled examples with thoughts, reflections for 30 %, and some review decisions."""
    from db import open_db
    from db.examples import content_hash
    from db.reviews import record

    premises, hypotheses, thoughts = _texts()
    golds = list(premises.items())
    n, m = len(golds), len(hypotheses)
    if rows // n >= m:
        sys.exit(f"--rows can be at most {n * m}")
    db = open_db(db_path)
    stamp = "2026-01-01T00:00:00.000+00:00"
    examples, generations = [], []
    next_reflection = rows + 1
    for i in range(rows):
        a, k = i % n, i // n  # distinct (premise, hypothesis) index pairs for every i
        premise, gold = golds[a]
        hypothesis = hypotheses[(a + k) % m]
        wrong = i % 10 < 3
        thought_label = 1 - gold if wrong else gold
        reflection_id = next_reflection if wrong else None
        examples.append((i + 1, "bench", "train", str(i), premise, hypothesis, gold, content_hash(premise, hypothesis),
                         i + 1, thought_label, "bench/thought", reflection_id, gold if wrong else None))
        generations.append((i + 1, i + 1, "thought", None, "bench/thought", thoughts[i % len(thoughts)],
                            thought_label, "ok", stamp))
        if wrong:
            generations.append((next_reflection, i + 1, "reflection", i + 1, "bench/reflection",
                                thoughts[(i * 7) % len(thoughts)], gold, "ok", stamp))
            next_reflection += 1
    with db.conn:
        db.conn.executemany(
            "INSERT INTO examples (id, dataset, split, source_id, premise, hypothesis, gold_label, content_hash, "
            "thought_id, thought_label, thought_model, reflection_id, reflection_label) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", examples)
        db.conn.executemany(
            "INSERT INTO generations (id, example_id, kind, parent_id, model, thought_process, predicted_label, "
            "parse_status, created_at, backend) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'bench')", generations)
    step = max(rows // 500, 1)
    record(db, "accept", list(range(1, rows + 1, step)), reviewer="bench")
    for example_id in range(2, rows + 1, step * 5):
        record(db, "edit", [example_id], reviewer="bench",
               payload={"thought": "step 1: edited by hand. step 2: so the label follows.",
                        "label": examples[example_id - 1][6]})
    db.conn.close()


def _anon_mb(pid: str) -> float:
    """Resident anonymous memory of a process (its heap; RSS also counts the database pages SQLite maps)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class AnonPeaks:
    """Samples the resident anonymous memory of this process and of its children every 20 ms (Linux)."""

    def __init__(self) -> None:
        import threading

        self.parent = self.worker = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.parent = max(self.parent, _anon_mb("self"))
            for task in Path("/proc/self/task").iterdir():
                for child in (task / "children").read_text().split():
                    self.worker = max(self.worker, _anon_mb(child))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def time_export(db_path: Path, out: Path, mode: str) -> dict[str, float]:
    """One curated inst export in this process (a fresh connection, as a user's run has): its costs."""
    import resource

    from db import open_db
    from exports import ExportRequest, SftOptions, sft, write
    from exports.fast import pool, sft_layout

    if mode in ("serial", "canonical"):
        pool.PARALLEL_MIN_EXAMPLES = 1 << 62
    if mode == "canonical":
        layout = sft_layout.SftLines("inst")
        layout.compiled = False  # every line through lines.sft_line (formats + json.dumps)
        sft.sft_lines = lambda fmt: layout  # type: ignore[assignment]
    db = open_db(db_path)
    peaks = AnonPeaks()
    wall, cpu = time.perf_counter(), time.process_time()
    manifest = write(db, ExportRequest(SftOptions(ablation="curated", fmt="inst", splits=("train",)), out=out))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peaks.stop()
    db.conn.close()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "cpu": cpu, "cpu_workers": workers.ru_utime + workers.ru_stime, "rows": manifest.rows,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_rss_mb": workers.ru_maxrss / 1024, "anon_mb": peaks.parent, "worker_anon_mb": peaks.worker}


def time_in_child(db_path: Path, out: Path, mode: str) -> dict[str, float]:
    """time_export in a fresh Python process."""
    done = subprocess.run([sys.executable, __file__, "--one", str(db_path), str(out), mode], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    if sys.argv[1:2] == ["--one"]:  # the timed export, in its own process (see time_in_child)
        sys.path.insert(0, str(ROOT))
        print(json.dumps(time_export(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--serial", action="store_true", help="time the one-process path")
    mode.add_argument("--canonical", action="store_true", help="time the one-process path, uncompiled line layout")
    parser.add_argument("--reuse", action="store_true", help="keep a database already built in --workdir")
    args = parser.parse_args()
    if not (SHARED / "external").exists():
        sys.exit(f"skipped: {SHARED} not found (the benchmark reads the shared data)")
    sys.path.insert(0, str(ROOT))
    layout = "canonical" if args.canonical else "serial" if args.serial else "default"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nlistral-export-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path, out = work / f"bench-{args.rows}.db", work / "curated.jsonl"
    if not (args.reuse and db_path.exists()):
        for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            p.unlink(missing_ok=True)
        started = time.perf_counter()
        build(db_path, args.rows)
        print(f"built {db_path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    runs, loads = [], []
    for _ in range(args.repeat):
        for old in (out, out.with_name(out.name + ".manifest.json")):
            old.unlink(missing_ok=True)  # an export never replaces a file unless told to (--overwrite)
        loads.append(round(os.getloadavg()[0], 2))
        run = time_in_child(db_path, out, layout)
        if run["rows"] != args.rows:
            sys.exit(f"expected {args.rows} rows written, got {run['rows']}: the build leaves some out")
        runs.append(run)
        print(f"{args.rows} rows in {run['wall']:.2f} s ({run['cpu']:.2f} s CPU + {run['cpu_workers']:.2f} s in "
              f"workers): {args.rows / run['wall']:,.0f} rows/s", file=sys.stderr)
    walls = [r["wall"] for r in runs]
    cpus = [r["cpu"] + r["cpu_workers"] for r in runs]
    print(json.dumps({
        "rows": args.rows, "layout": layout,
        "wall_s": [round(w, 2) for w in walls], "cpu_s": [round(c, 2) for c in cpus],
        "cpu_parent_s": [round(r["cpu"], 2) for r in runs], "cpu_workers_s": [round(r["cpu_workers"], 2) for r in runs],
        "rows_per_s_median": round(args.rows / statistics.median(walls)),
        "rows_per_s_best": round(args.rows / min(walls)),
        "rows_per_cpu_s_best": round(args.rows / min(cpus)), "load_average_1min": loads,
        "peak_rss_mb": round(max(r["rss_mb"] for r in runs)),
        "peak_worker_rss_mb": round(max(r["worker_rss_mb"] for r in runs)),
        "peak_heap_mb": round(max(r["anon_mb"] for r in runs)),
        "peak_worker_heap_mb": round(max(r["worker_anon_mb"] for r in runs)),
        "file_mb": round(out.stat().st_size / 1e6), "target_rows_per_s": 100_000,
    }))


if __name__ == "__main__":
    main()
