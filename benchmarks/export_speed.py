"""Benchmark: export 1,000,000 curated SFT rows from a database built for it, and report rows per second.

Usage: python benchmarks/export_speed.py [--rows 1000000] [--workdir DIR] [--repeat 3] [--canonical]
Target (2-core development machine): >= 100,000 rows/s for `--ablation curated --format inst`.

The database is built outside the timed part, with direct SQL (this script only): examples pair the
distinct premises and hypotheses of SICK (train + test, ../shared/data/external) so that every pair
is distinct; each has a thought (a seed-sample thought or reflection text), 30 % disagree with gold and
have a reflection that reaches it, and a few hundred carry review decisions (accept, edit) recorded
through db.reviews. The search index is not filled (exports do not read it). Every row fits the
default 512-token limit, so all of them are written. --canonical times the uncompiled line layout
(exports.lines.sft_line per row) for comparison. Prints one JSON line at the end, with wall and CPU
time per run and the 1-minute load average before each (the machine is shared: CPU time shows what the
export itself costs).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
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


def time_export(db_path: Path, out: Path, canonical: bool) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and rows of one curated inst export (a fresh connection, as a user's run has)."""
    from db import open_db
    from exports import SftOptions, lines, sft, write_sft

    if canonical:
        layout = lines.SftLines("inst")
        layout.compiled = False  # every line through lines.sft_line (formats + json.dumps)
        sft.sft_lines = lambda fmt: layout  # type: ignore[assignment]
    db = open_db(db_path)
    wall, cpu = time.perf_counter(), time.process_time()
    manifest = write_sft(db, SftOptions(ablation="curated", fmt="inst", splits=("train",)), out=out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    db.conn.close()
    return wall, cpu, manifest.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--canonical", action="store_true", help="time the uncompiled line layout instead")
    parser.add_argument("--reuse", action="store_true", help="keep a database already built in --workdir")
    args = parser.parse_args()
    if not (SHARED / "external").exists():
        sys.exit(f"skipped: {SHARED} not found (the benchmark reads the shared data)")
    sys.path.insert(0, str(ROOT))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nlistral-export-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path, out = work / f"bench-{args.rows}.db", work / "curated.jsonl"
    if not (args.reuse and db_path.exists()):
        for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            p.unlink(missing_ok=True)
        started = time.perf_counter()
        build(db_path, args.rows)
        print(f"built {db_path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    walls, cpus, loads = [], [], []
    for _ in range(args.repeat):
        loads.append(round(os.getloadavg()[0], 2))
        wall, cpu, written = time_export(db_path, out, args.canonical)
        if written != args.rows:
            sys.exit(f"expected {args.rows} rows written, got {written}: the build leaves some out")
        walls.append(wall)
        cpus.append(cpu)
        print(f"{written} rows in {wall:.2f} s ({cpu:.2f} s CPU): {written / wall:,.0f} rows/s", file=sys.stderr)
    median = statistics.median(walls)
    print(json.dumps({
        "rows": args.rows, "layout": "canonical" if args.canonical else "compiled",
        "wall_s": [round(w, 2) for w in walls], "cpu_s": [round(c, 2) for c in cpus],
        "rows_per_s_median": round(args.rows / median), "rows_per_s_best": round(args.rows / min(walls)),
        "rows_per_cpu_s_best": round(args.rows / min(cpus)), "load_average_1min": loads,
        "file_mb": round(out.stat().st_size / 1e6), "target_rows_per_s": 100_000,
    }))


if __name__ == "__main__":
    main()
