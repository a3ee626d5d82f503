"""Benchmark (a script, not a test): the review app on a 1,000,000-example store.

Builds (once, cached under .bench/) a store of N examples with a thought each, reflections for
most disagreements, a few parse failures, review decisions and one evaluate run's predictions,
then drives the real app with Pilot at 200x50 and prints a final JSON line:

- start_s: launch (a fresh Python process) to the first screen showing an example, median of runs;
- next_p95_ms: over >= 500 presses of the next key, from the moment the app handles the key to the
  end of the first screen refresh that shows the new example (timed inside the app);
- filter_ms / search_ms: from applying a queue filter / submitting a search to the refresh that
  shows its first example (timed the same way); the store's pages are dropped from the OS page
  cache before the first search, so it reads its index from disk as the first search of a session
  does on a busy machine (search_all_ms: every search, in order);
- counts_ms: the background count of every queue after that filter (shown when ready, never awaited
  by a key).

With --team, on a copy of the store with three reviewers' assignments and 100,000 decisions
(benchmarks/team_latency.py), as reviewer ada instead: team_start_s, the start on the conflicts queue and
on the mine queue (median of runs), and team_switch_ms, a switch to each with its key (the slowest of 5).

Usage: python benchmarks/tui_latency.py [--examples 1000000] [--presses 600] [--db .bench/tui_1m.db] [--team]
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from sqlite_utils import Database

SHARED = ROOT.parent / "shared" / "data" / "external"
SEARCH_TEXT = "guitar"  # in 3.4 % of the pairs; the others: a rare name, a word in 12 % of them, a repeat,
SEARCHES = (SEARCH_TEXT, "Christopher Reeve", "playing", SEARCH_TEXT, "the")  # and a word in nearly all
IN_QUEUE_SEARCHES = (("disagreements", "playing"), ("parse_failures", "playing"))


def _pairs() -> list[tuple[str, str, int]]:
    """Real NLI pairs (RTE and SICK, read at run time), else the packaged demo pairs."""
    files = sorted(SHARED.glob("*.csv")) if SHARED.exists() else []
    if not files:
        from pipeline.demo import demo_files

        files = [demo_files()["examples"]]
    pairs = []
    for path in files:
        with path.open(newline="", encoding="utf-8") as fh:
            pairs += [(r["premise"], r["hypothesis"], int(r["label"])) for r in csv.DictReader(fh)]
    return pairs


def _thought(premise: str, hypothesis: str, label: int) -> str:
    verdict = "the premise entails the hypothesis" if label else "the hypothesis is not entailed"
    return (f"Step 1: The premise says: {premise} Step 2: The hypothesis says: {hypothesis} "
            "I compare who does what, where and when in both sentences, and check whether every detail "
            "of the hypothesis is stated or implied by the premise. Step 3: Weighing the two, "
            f"{verdict}. Therefore {verdict}.")


def _write_inputs(folder: Path, n: int) -> tuple[Path, Path, Path]:
    """Write the pairs (CSV), thoughts and reflections (the original pipeline's JSONL) for n examples."""
    rng = random.Random(7)
    pairs = _pairs()
    paths = folder / "bench_pairs.csv", folder / "bench_thoughts.jsonl", folder / "bench_reflections.jsonl"
    with paths[0].open("w", newline="", encoding="utf-8") as pf, paths[1].open("w", encoding="utf-8") as tf, \
            paths[2].open("w", encoding="utf-8") as rf:
        out = csv.writer(pf)
        out.writerow(["id", "premise", "hypothesis", "label"])
        for i in range(n):
            p, h, gold = pairs[i % len(pairs)]
            out.writerow([i, p, h, gold])
            label = 1 - gold if rng.random() < 0.27 else gold
            thought = _thought(p, h, label)
            shown = "unsure" if rng.random() < 0.004 else label  # a few answers that do not parse
            base = {"id": i, "premise": p, "hypothesis": h, "thought_process": thought, "true_label": gold}
            tf.write(json.dumps({**base, "predicted_label": shown}) + "\n")
            if label != gold and shown != "unsure" and rng.random() < 0.8:
                rf.write(json.dumps({**base, "predicted_label": gold, "improved_thought_process": _thought(p, h, gold),
                                     "error_analysis": "The thought missed a detail that changes the meaning "
                                     "of the hypothesis; checking it reverses the conclusion."}) + "\n")
    return paths


def build_store(path: Path, n: int) -> None:
    """Build the benchmark store at path (n examples) unless it is already there, through the importer."""
    from db import open_db
    from db.queue_counts import count
    from db.queue_pages import page_after
    from db.queues import QueueFilter, analyze
    from db.reviews import record
    from pipeline.importing import import_file

    if path.exists():
        db = open_db(path)
        have = count(db, QueueFilter())
        db.conn.close()
        if have == n:
            return
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pairs, thoughts, reflections = _write_inputs(path.parent, n)
    db = open_db(path)
    for file, fmt, model in ((pairs, "csv", None), (thoughts, "seed-thoughts", "bench/thought"),
                             (reflections, "seed-reflections", "bench/reflect")):
        import_file(db, file, dataset="bench", split="train", fmt=fmt, model=model)
        print(f"  imported {file.name} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        file.unlink()
    add_predictions(db)
    disagreeing = [r.id for r in page_after(db, QueueFilter(queue="disagreements"), None, 3000)]
    for i, eid in enumerate(disagreeing):
        record(db, ("accept", "reject", "accept", "skip")[i % 4], [eid], reviewer="bench",
               seconds_spent=8.0 + i % 30)
    record(db, "flag_bias", disagreeing[:200], reviewer="bench", payload={"category": "ambiguous"})
    analyze(db)
    db.conn.close()
    print(f"  store built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def add_predictions(db: Database) -> None:
    """One evaluate run's predictions on every 100th example, 85 % of them right."""
    from db.generations import add_generations
    from db.queue_counts import count
    from db.queue_pages import rows_by_id
    from db.queues import QueueFilter
    from db.runs import finish_run, start_run

    rng = random.Random(11)
    run = start_run(db, "evaluate", {"benchmark": True})
    every_100th = rows_by_id(db, list(range(100, count(db, QueueFilter()) + 1, 100)))  # ids run from 1
    add_generations(db, [
        {"example_id": eid, "kind": "prediction", "model": "bench/adapter", "backend": "local",
         "thought_process": "A short prediction.", "parse_status": "ok", "run_id": run,
         "predicted_label": row.gold_label if rng.random() < 0.85 else 1 - row.gold_label,
         "dedupe_key": f"bench-prediction-{eid}"}
        for eid, row in every_100th.items()])
    finish_run(db, run, "completed")


def evict_page_cache(db_path: Path) -> None:
    """Drop the store's files from the OS page cache (as other work on the machine would push them out).

    Safe here only because no other process uses the store during the benchmark: closing this
    descriptor drops the SQLite locks of this process's open connections (see db.connection._refuse_directory).
    """
    for path in (db_path, Path(f"{db_path}-wal")):
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def drive(db_path: Path, presses: int, size: tuple[int, int]) -> dict[str, float]:
    """Drive the real app with Pilot; the latencies are the app's own in-app measurements."""
    from db.queues import QueueFilter
    from nlistral_tui.app import NlistralApp
    from nlistral_tui.pilot import ready, settle

    app = NlistralApp(db_path, start_filter=QueueFilter())
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        screen = app.screen
        for _ in range(presses):
            await pilot.press("j")
        await pilot.pause(0.2)
        nexts = list(screen.probe.latency["next"])
        # Filters: typical triage views; the queue counts arrive later from a worker (timed apart).
        counts_ms = []
        for f in (QueueFilter(queue="disagreements", gold=1), QueueFilter(queue="needs_reflection"),
                  QueueFilter(queue="parse_failures"), QueueFilter(queue="pending", gold=0)):
            asked = time.perf_counter()
            screen.set_filter(f, "filter")
            while screen.counts is None:
                await pilot.pause(0.002)
            counts_ms.append((time.perf_counter() - asked) * 1000)
            await settle(app, pilot)
            assert screen.current is not None and screen.filter == f
        filter_ms = list(screen.probe.latency["filter"])
        searches: list[tuple[str, float]] = []
        evict_page_cache(db_path)  # the first search of a session reads its index from disk
        for text in SEARCHES:
            await pilot.press("1", "c")  # all examples, no search or facet left over
            await settle(app, pilot)
            await pilot.press("slash")
            await settle(app, pilot)
            await pilot.press(*text)
            await pilot.press("enter")
            await settle(app, pilot)
            assert screen.current is not None and screen.filter.search == text, screen.filter
            searches.append((text, screen.probe.latency["search"][-1]))
        for queue, text in IN_QUEUE_SEARCHES:  # a search within a queue: a dense one, then a sparse one
            f = QueueFilter(queue=queue, search=text)
            screen.set_filter(f, "search")
            await settle(app, pilot)
            assert screen.current is not None and screen.filter == f
            searches.append((f.describe(), screen.probe.latency["search"][-1]))
    return {
        "presses": len(nexts), "next_p50_ms": statistics.median(nexts), "next_p95_ms": _p95(nexts),
        "next_max_ms": max(nexts), "filter_ms": max(filter_ms), "filter_all_ms": filter_ms,
        "search_ms": searches[0][1], "search_all_ms": [(t, round(ms, 1)) for t, ms in searches],
        "counts_ms": max(counts_ms), "counts_all_ms": counts_ms,
    }


def measure_start(db_path: Path, size: tuple[int, int], queue: str | None = None) -> float:
    """Seconds from launching a fresh Python process to its first screen showing an example (of queue: the
    app opened on it, as reviewer ada)."""
    launched = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child-start", "--db", str(db_path), "--size", f"{size[0]}x{size[1]}",
         "--launched", repr(launched), *(("--start-queue", queue) if queue else ())], capture_output=True, text=True,
        check=True, cwd=ROOT, env={**os.environ, "NLISTRAL_REVIEWER": "ada"} if queue else None)
    return float(out.stdout.strip().splitlines()[-1])


async def _child_start(db_path: Path, size: tuple[int, int], launched: float, queue: str | None) -> None:
    from db.queues import QueueFilter
    from nlistral_tui.app import NlistralApp

    app = NlistralApp(db_path, start_filter=QueueFilter(queue=queue) if queue else None)
    async with app.run_test(size=size) as pilot:
        while not getattr(app.screen, "ready", False):
            await pilot.pause(0.005)
        shown = asyncio.get_running_loop().create_future()
        app.screen.call_after_refresh(lambda: shown.set_result(time.time()))
        print(await shown - launched)


def measure_datatable_baseline(db_path: Path, rows: int, size: tuple[int, int]) -> float:
    """The issue's yardstick: seconds for Textual's DataTable to first paint `rows` queue rows."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from db import open_db
    from db.queue_pages import page_after
    from db.queues import QueueFilter

    db = open_db(db_path)
    data = [(r.id, r.gold_label, r.thought_label, r.snippet) for r in page_after(db, QueueFilter(), None, rows)]
    db.conn.close()

    class Baseline(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("id", "gold", "thought", "hypothesis")
            table.add_rows(data)

    async def run() -> float:
        started = time.perf_counter()
        app = Baseline()
        async with app.run_test(size=size) as pilot:
            painted = asyncio.get_running_loop().create_future()
            app.screen.call_after_refresh(lambda: painted.set_result(time.perf_counter()))
            await painted
            await pilot.pause()
            return (await painted) - started

    return asyncio.run(run())


def team_case(base: Path, size: tuple[int, int], runs: int) -> None:
    """Print the team case's JSON line (see the module docstring)."""
    from team_latency import build_team_store, drive_team

    db_path = base.with_name(base.stem + "_team.db")
    build_team_store(base, db_path)
    starts = {q: [measure_start(db_path, size, q) for _ in range(runs)] for q in ("conflicts", "mine")}
    os.environ["NLISTRAL_REVIEWER"] = "ada"
    switches = asyncio.run(drive_team(db_path, size))
    print(json.dumps({"store": db_path.name, "size": f"{size[0]}x{size[1]}",
                      "team_start_s": {q: round(statistics.median(v), 2) for q, v in starts.items()},
                      "team_start_all_s": {q: [round(s, 2) for s in v] for q, v in starts.items()},
                      "team_switch_ms": {q: round(max(v), 1) for q, v in switches.items()},
                      "team_switch_all_ms": {q: [round(s, 1) for s in v] for q, v in switches.items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--presses", type=int, default=600)
    parser.add_argument("--db", type=Path, default=ROOT / ".bench" / "tui_1m.db")
    parser.add_argument("--size", default="200x50", help="terminal size, COLSxROWS")
    parser.add_argument("--starts", type=int, default=3, help="launches to time (median reported)")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--baseline-rows", type=int, default=100_000,
                        help="rows for the DataTable yardstick (0: skip it)")
    parser.add_argument("--team", action="store_true", help="the team case: conflicts and mine queues (see above)")
    parser.add_argument("--child-start", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--start-queue", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.child_start:
        asyncio.run(_child_start(args.db, size, args.launched, args.start_queue))
        return
    t = time.perf_counter()
    build_store(args.db, args.examples)
    print(f"store ready at {args.db} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    if args.team:
        team_case(args.db, size, args.starts)
        return
    if args.build_only:
        return
    starts = [measure_start(args.db, size) for _ in range(args.starts)]
    print(f"start_s runs: {', '.join(f'{s:.2f}' for s in starts)}", file=sys.stderr)
    result = asyncio.run(drive(args.db, args.presses, size))
    result = {"examples": args.examples, "size": args.size, "start_s": statistics.median(starts),
              "start_all_s": starts, **result}
    if args.baseline_rows:
        baseline = measure_datatable_baseline(args.db, args.baseline_rows, size)
        result |= {"datatable_rows": args.baseline_rows, "datatable_first_paint_s": baseline,
                   "start_vs_datatable": baseline / result["start_s"]}
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
