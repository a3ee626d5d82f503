"""Training dynamics during `nlistral train` (Dataset Cartography, Swayamdipta et al. 2020).

At the end of each epoch (or every `cartography_every_steps` optimizer steps) the tracker scores the
probability of the gold label (against the other label token) of every training row (label_scores.py)
and appends the pass to OUTPUT_DIR/cartography.jsonl at once, one line per checkpoint:
  {"step": int, "epoch": float, "seconds": float, "ids": [...], "p_gold": [...], "gold_wins": [0|1, ...]}
so a killed run loses at most the pass it was in; `--resume` drops the lines after the checkpoint it
resumes from and goes on appending. When the run completes, the runner stores every checkpoint of the
file in the training_dynamics table for the run (db/cartography.py) in one transaction: written all at
the end, from the file. Rows whose id is missing, not in the store or repeated are counted, not stored.
Each pass is also a "cartography" event of the training log (its cost: seconds, examples per second).
Several GPUs: each process scores its share of the rows and the main process writes the whole pass.
"""
from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from transformers import TrainerCallback

from db.cartography import Dynamics, known_example_ids, write_dynamics
from pipeline.train.config import TrainConfig
from pipeline.train.data import Row, SftRecord
from pipeline.train.hardware import Hardware
from pipeline.train.label_scores import LabelSlot, Scores, Slots, label_slots, score_gold, scoring_collator
from pipeline.train.tracking import JsonlLog, Throughput

FILE_NAME = "cartography.jsonl"
# Rows per scoring forward, as a multiple of the training micro-batch: with no backward pass nothing is
# kept for gradients, so a larger batch fits where a training micro-batch did.
ROWS_FACTOR = 4


def summarize(probabilities: Sequence[float], gold_wins: Sequence[bool]) -> tuple[float, float, float]:
    """(confidence, variability, correctness): mean, population standard deviation, share of wins."""
    return (statistics.fmean(probabilities), statistics.pstdev(probabilities),
            sum(bool(w) for w in gold_wins) / len(gold_wins))


def start_tracker(config: TrainConfig, hw: Hardware, records: Sequence[SftRecord], rows: Sequence[Row],
                  tokenizer: Any, log: JsonlLog, meter: Throughput, stop_requested: Callable[[], bool],
                  echo: Callable[[str], None]) -> CartographyTracker:
    """The run's tracker: the label slot of every training row, said in the log and on the console."""
    found = label_slots(records, rows, tokenizer)
    when = (f"every {config.cartography_every_steps} steps" if config.cartography_every_steps
            else "at the end of each epoch")
    log.write({"event": "cartography_plan", "examples": len(found.slots), "unscorable": len(found.unscorable),
               "when": when, "problems": found.unscorable[:20]})
    echo(f"Cartography: P(gold label) of {len(found.slots)} training examples {when} "
         f"(in {Path(config.output_dir) / FILE_NAME}; cartography: false turns it off)")
    if found.unscorable:
        echo(f"Cartography: {len(found.unscorable)} rows cannot be scored, e.g. {found.unscorable[0]}")
    return CartographyTracker(found, output_dir=Path(config.output_dir), log=log, meter=meter, hw=hw,
                              every_steps=config.cartography_every_steps,
                              rows_per_batch=config.micro_batch_size * ROWS_FACTOR, stop_requested=stop_requested)


def record_dynamics(store: Database | None, run_id: int | None, tracker: CartographyTracker, log: JsonlLog,
                    echo: Callable[[str], None]) -> dict[str, Any]:
    """Store a completed run's dynamics (main process with a store); say what was stored and what was not."""
    if not tracker.hw.is_main:
        return {}
    if store is None or run_id is None:
        echo(f"Cartography: no store, so nothing stored; the scores stay in {tracker.path}")
        return {}
    try:
        stored = store_dynamics(store, run_id, tracker.path.parent, tracker.slots)
    except (sqlite3.Error, OSError) as exc:  # the adapter is saved: the run still completed
        message = f"could not store the dynamics of run {run_id} ({exc}); the scores stay in {tracker.path}"
        log.write({"event": "cartography_stored", "run_id": run_id, "error": message})
        echo(f"Cartography: {message}")
        return {"cartography_error": message}
    log.write({"event": "cartography_stored", "run_id": run_id, **stored})
    missed = {k: n for k, n in stored["cartography_not_stored"].items() if n}
    note = "; not stored: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in missed.items()) if missed else ""
    hint = (" (train on an export of this store, `nlistral export sft`, so rows carry its example ids)"
            if missed.get("missing_id") or missed.get("not_in_store") else "")
    echo(f"Cartography: {stored['cartography_rows']} examples stored for run {run_id} over "
         f"{stored['cartography_checkpoints']} checkpoints{note}{hint}; see `nlistral cartography {run_id}`")
    return stored


class CartographyTracker(TrainerCallback):
    """Scores every training row's gold label token at each checkpoint and appends the pass to the file."""

    def __init__(self, found: Slots, *, output_dir: Path, log: JsonlLog, meter: Throughput, hw: Hardware,
                 every_steps: int, rows_per_batch: int, stop_requested: Callable[[], bool]) -> None:
        self.slots, self.unscorable = found.slots, found.unscorable
        self.path, self.log, self.meter, self.hw = output_dir / FILE_NAME, log, meter, hw
        self.every_steps, self.rows_per_batch, self.stop_requested = every_steps, rows_per_batch, stop_requested
        self.trainer: Any = None  # attached by the runner once the trainer exists (its model and collator)
        self.passes: list[tuple[int, float]] = []  # (examples, seconds) of each pass of this run

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Drop the file's passes after the step training starts from (a resumed run scores them again)."""
        if self.hw.is_main:
            kept = [c for c in read_passes(self.path) if c["step"] <= state.global_step]
            self.path.write_text("".join(json.dumps(c) + "\n" for c in kept), encoding="utf-8")

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """A pass at each epoch's end (unless every_steps is set)."""
        if not self.every_steps:
            self._score(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """A pass every every_steps optimizer steps, when set."""
        if self.every_steps and state.global_step % self.every_steps == 0:
            self._score(state)

    def _score(self, state: Any) -> None:
        if self.stop_requested() or not self.slots:  # a cancel stops at once: no pass on the way out
            return
        scores = self._score_all()
        self.passes.append((len(self.slots), scores.seconds))
        rate = round(len(self.slots) / scores.seconds, 1) if scores.seconds > 0 else None
        if self.hw.is_main:
            line = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                    "seconds": round(scores.seconds, 3), "ids": [s.raw_id for s in self.slots],
                    "p_gold": scores.p_gold, "gold_wins": [int(w) for w in scores.gold_wins]}
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        self.log.write({"event": "cartography", "step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                        "examples": len(self.slots), "seconds": round(scores.seconds, 3), "examples_per_s": rate,
                        "mean_p_gold": round(statistics.fmean(scores.p_gold), 4)})
        self.meter.restart_clock()  # the pass ran between two steps: keep it out of tokens/s

    def _score_all(self) -> Scores:
        """Score this process's share of the rows; with several processes, gather the whole pass."""
        model = self.trainer.model
        collator = scoring_collator(self.trainer.data_collator, model)
        if self.hw.world_size == 1:
            return score_gold(model, collator, self.slots, self.rows_per_batch)
        import torch.distributed as dist

        rank, world = dist.get_rank(), dist.get_world_size()
        mine = score_gold(model, collator, self.slots[rank::world], self.rows_per_batch)
        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, (mine.p_gold, mine.gold_wins, mine.seconds))
        p_gold, wins = [0.0] * len(self.slots), [False] * len(self.slots)
        for r, (p, w, _) in enumerate(parts):
            p_gold[r::world], wins[r::world] = p, w
        return Scores(p_gold, wins, max(part[2] for part in parts))

    def metrics(self) -> dict[str, Any]:
        """The cost of this run's passes, for the run's metrics."""
        seconds = [s for _, s in self.passes]
        examples = sum(n for n, _ in self.passes)
        return {"cartography_passes": len(self.passes), "cartography_examples": len(self.slots),
                "cartography_unscorable": len(self.unscorable),
                "cartography_s_per_pass": round(statistics.fmean(seconds), 3) if seconds else None,
                "cartography_examples_per_s": round(examples / sum(seconds), 1) if sum(seconds) > 0 else None}


def read_passes(path: Path) -> list[dict[str, Any]]:
    """The passes in a cartography file, oldest first (a later line for the same step replaces an earlier one;
    a torn last line, from a kill mid-write, is left out)."""
    if not path.exists():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            by_step[row["step"]] = row
    return [by_step[step] for step in sorted(by_step)]


def store_dynamics(store: Database, run_id: int, output_dir: Path, slots: Sequence[LabelSlot]) -> dict[str, Any]:
    """Write the file's checkpoints of these rows as the run's training_dynamics; returns what was stored and
    what was not (by reason), for the run's metrics and the log."""
    ids = [s.raw_id for s in slots]
    passes = read_passes(output_dir / FILE_NAME)
    usable = [p for p in passes if p.get("ids") == ids]
    counts = {"missing_id": 0, "not_in_store": 0, "duplicate_id": 0}
    known = known_example_ids(store, [s.example_id for s in slots if s.example_id is not None])
    seen: set[int] = set()
    rows = []
    for k, slot in enumerate(slots):
        if slot.example_id is None:
            counts["missing_id"] += 1
        elif slot.example_id not in known:
            counts["not_in_store"] += 1
        elif slot.example_id in seen:
            counts["duplicate_id"] += 1
        elif usable:
            seen.add(slot.example_id)
            probabilities = tuple(float(p["p_gold"][k]) for p in usable)
            wins = [bool(p["gold_wins"][k]) for p in usable]
            rows.append(Dynamics(slot.example_id, slot.gold_label, probabilities, *summarize(probabilities, wins)))
    written = write_dynamics(store, run_id, rows) if rows else 0
    return {"cartography_checkpoints": len(usable), "cartography_rows": written,
            "cartography_other_data_passes": len(passes) - len(usable), "cartography_not_stored": counts}
