"""How well the gold-suspicion signals find labels we flipped on purpose (issue 15's measurement).

    # a store of a real dataset with a seeded fraction of its gold labels flipped, and its training file
    python benchmarks/flipped_labels.py prepare ../shared/data/external/sick_train.csv OUT [--fraction 0.05 --seed 15]
    # ... then train with cartography and evaluate on the same examples (GPU; commands in BENCHMARKS.md) ...
    python benchmarks/flipped_labels.py score OUT [--json FILE]
    # the thought signal on the original project's sample: stored thoughts against flipped gold (CPU, seconds)
    python benchmarks/flipped_labels.py seed ../shared/data/seed_sample OUT [--flip 5 --seed 15]

`score` ranks the store's examples by the suspicion score (db/suspicion.py) with one signal set at a time
(each signal alone, then all of them at their default weights) and reports precision@k and recall@k of the
flipped examples, for k = half, one and two times the number flipped, counted in expectation over random
order within tied scores; a random ranking's precision is the flipped fraction. The training file is the
label-only layout (exports/formats.py); every row carries the store's example id, so training dynamics land on
the right examples.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from db.connection import open_db
from db.suspicion import suspects
from exports.lines import sft_line
from pipeline.settings import Suspicion, load_settings

ROOT = Path(__file__).resolve().parent.parent

PLACEHOLDER_THOUGHT = "(no thought: label-only training)"  # label_only() keeps only the label of the target


def _nlistral(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", *args], check=True, cwd=ROOT)


def _flip(rows: list[dict[str, str]], count: int, seed: int) -> list[int]:
    """Flip the labels of `count` rows chosen with the seed; returns their row indexes, sorted."""
    chosen = sorted(random.Random(seed).sample(range(len(rows)), count))
    for i in chosen:
        rows[i]["label"] = str(1 - int(rows[i]["label"]))
    return chosen


def prepare(data: Path, out: Path, fraction: float, seed: int) -> None:
    """Write OUT/noisy.csv (labels flipped), OUT/flipped.json, OUT/store.db (imported) and OUT/train.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    with data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    flipped = _flip(rows, round(fraction * len(rows)), seed)
    noisy = out / "noisy_train.csv"
    with noisy.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["premise", "hypothesis", "label"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in ("premise", "hypothesis", "label")} for r in rows)
    (out / "flipped.json").write_text(json.dumps({"data": str(data), "fraction": fraction, "seed": seed,
                                                  "rows": len(rows), "source_ids": [str(i) for i in flipped]}))
    _nlistral("import", str(noisy), "--dataset", "noisy", "--split", "train", "--db", str(out / "store.db"))
    db = open_db(out / "store.db")
    with (out / "train.jsonl").open("w", encoding="utf-8") as f:
        for example_id, source_id, premise, hypothesis, gold in db.execute(
                "SELECT id, source_id, premise, hypothesis, gold_label FROM examples ORDER BY id"):
            f.write(sft_line(example_id, "noisy", source_id, premise, hypothesis, PLACEHOLDER_THOUGHT, gold, "inst"))
    print(f"{out}: {len(rows)} rows, {len(flipped)} labels flipped (seed {seed})")


def _at_k(ranked: list[tuple[int, float]], flipped: set[int], total: int, k: int) -> dict[str, float]:
    """Flipped examples among the top k, expected over random order within tied scores (examples no signal
    fired on share score 0, so a k past the fired ones draws from them at random too)."""
    scores = [score for _, score in ranked] + [0.0] * (total - len(ranked))
    cut = scores[k - 1]
    above = [i for i, score in ranked if score > cut]
    tied = [i for i, score in ranked if score == cut]
    tied_hits = len(set(tied) & flipped)
    tie_size = len(tied)
    if cut == 0.0:  # the rest of the store ties at 0
        tied_hits += len(flipped) - len({i for i, _ in ranked} & flipped)
        tie_size += total - len(ranked)
    hits = len(set(above) & flipped) + (k - len(above)) * tied_hits / tie_size
    return {"k": k, "hits": round(hits, 2), "precision": round(hits / k, 4), "recall": round(hits / len(flipped), 4)}


def score(out: Path) -> dict[str, object]:
    """precision@k and recall@k of the flipped examples for each signal alone and for all of them."""
    db = open_db(out / "store.db")
    meta = json.loads((out / "flipped.json").read_text())
    ids = dict(db.execute("SELECT source_id, id FROM examples").fetchall())
    flipped = {ids[s] for s in meta["source_ids"]}
    settings = load_settings()
    thresholds = settings.cartography
    defaults = asdict(Suspicion())
    present = {
        "thought_disagrees": db.execute("SELECT count(*) FROM examples WHERE thought_id IS NOT NULL").fetchone()[0],
        "adapter_wrong": db.execute("SELECT count(*) FROM generations WHERE kind = 'prediction'").fetchone()[0],
        "hard_to_learn": db.execute("SELECT count(*) FROM training_dynamics").fetchone()[0],
    }
    sets = {name: {name: 1.0} for name, n in present.items() if n}
    sets["all signals (default weights)"] = {k: v for k, v in defaults.items() if k in sets}
    n = len(flipped)
    report: dict[str, object] = {"examples": len(ids), "flipped": n, "random_precision": round(n / len(ids), 4),
                                 "train_runs_with_dynamics": [r[0] for r in db.execute(
                                     "SELECT DISTINCT run_id FROM training_dynamics ORDER BY 1")],
                                 "evaluate_runs": [r[0] for r in db.execute(
                                     "SELECT id FROM runs WHERE kind = 'evaluate' ORDER BY id")],
                                 "signals": {}}
    for name, weights in sets.items():
        ranked = [(s.example_id, s.score) for s in suspects(db, weights, thresholds)]
        fired = {i for i, _ in ranked}
        report["signals"][name] = {  # type: ignore[index]
            "fired": len(ranked), "at_k": [_at_k(ranked, flipped, len(ids), k) for k in (n // 2, n, 2 * n)],
            "recall_of_all_fired": round(len(fired & flipped) / n, 4),
            "precision_of_all_fired": round(len(fired & flipped) / max(1, len(ranked)), 4)}
    return report


def seed(sample: Path, out: Path, flip: int, seed_value: int) -> dict[str, object]:
    """The seed sample with `flip` gold labels flipped, its stored thoughts imported, scored by thought_disagrees."""
    out.mkdir(parents=True, exist_ok=True)
    with (sample / "sample.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    flipped = _flip(rows, flip, seed_value)
    noisy = out / "sample.csv"
    with noisy.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["premise", "hypothesis", "label"])
        writer.writeheader()
        writer.writerows(rows)
    store = out / "store.db"
    _nlistral("import", str(noisy), "--dataset", "seed", "--db", str(store))
    thoughts = out / "sample_thoughts.jsonl"  # the thoughts file carries gold too: flipped the same way
    with (sample / "sample_thoughts.json").open(encoding="utf-8") as src, thoughts.open("w", encoding="utf-8") as dst:
        for line in src:
            if line.strip():
                record = json.loads(line)
                record["true_label"] = int(rows[int(record["id"])]["label"])
                record["correct"] = record["predicted_label"] == record["true_label"]
                dst.write(json.dumps(record) + "\n")
    _nlistral("import", str(thoughts), "--dataset", "seed", "--format", "seed-thoughts", "--model", "open-mistral-7b",
              "--db", str(store))
    (out / "flipped.json").write_text(json.dumps({"data": str(sample), "fraction": flip / len(rows),
                                                  "seed": seed_value, "rows": len(rows),
                                                  "source_ids": [str(i) for i in flipped]}))
    return score(out)


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=15)
    s = sub.add_parser("score")
    s.add_argument("out", type=Path)
    s.add_argument("--json", type=Path)
    d = sub.add_parser("seed")
    d.add_argument("sample", type=Path)
    d.add_argument("out", type=Path)
    d.add_argument("--flip", type=int, default=5)
    d.add_argument("--seed", type=int, default=15)
    d.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.data, args.out, args.fraction, args.seed)
        return
    report = score(args.out) if args.command == "score" else seed(args.sample, args.out, args.flip, args.seed)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
