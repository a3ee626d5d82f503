"""A teacher-forced check of an evaluate run: which label the same model prefers where its answer's label goes.

For each example a label-only (--no-thought) run predicted, the training text of that example (prompt and
label target, through the model's own layout, exports.layout) is scored in one forward pass, and the
label whose token outscores the other's at the label position is the forced prediction
(pipeline.train.label_scores finds that position and scores it). The model is loaded as evaluate loads it
(the base as the adapter's training recorded) but with the adapter unmerged on the base: the model
training built, against which evaluate's default fast path (a dequantised, merged base) is checked.

Greedy decoding writes the same label whenever the model writes the answer's prefix and its top token at
the label position is one of the two labels, so the two agree example by example, up to the numeric
difference between the fast path and the unmerged model. A disagreement rate above that noise means
evaluate reports something the model does not believe: the bug issue 16 found (a base loaded otherwise
than in training made greedy decoding answer 0 for 99.9 % of pairs while the adapter had learned).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from exports import formats
from pipeline.evaluate.errors import EvaluationError
from pipeline.evaluate.loading import LoadedModel, load_model
from pipeline.train.data import SftRecord, encode_sft
from pipeline.train.label_scores import label_slots, score_gold

MAX_LENGTH = 4096  # tokens: longer rows are not scored (evaluate has no such limit; SICK rows are ~100)


@dataclass(frozen=True)
class ForcedCheck:
    """The run's greedy labels against the forced ones, example by example."""

    run_id: int
    mode: str  # how the model was loaded for scoring
    example_ids: list[int]
    gold: list[int]
    forced: list[int]  # the label the model prefers at the label position
    p_label1: list[float]  # P(label 1) between the two label tokens
    greedy: list[int | None]  # the run's parsed label (None: unparseable)
    unscorable: list[str]

    @property
    def forced_accuracy(self) -> float:
        return sum(f == g for f, g in zip(self.forced, self.gold)) / max(1, len(self.gold))

    @property
    def greedy_accuracy(self) -> float:
        """As evaluate counts it: an unparseable answer is wrong."""
        return sum(p == g for p, g in zip(self.greedy, self.gold)) / max(1, len(self.gold))

    @property
    def disagreements(self) -> int:
        """Examples where the run's label (or its failure to give one) differs from the forced label."""
        return sum(p != f for p, f in zip(self.greedy, self.forced))

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "mode": self.mode, "examples": len(self.gold),
                "forced_accuracy": round(self.forced_accuracy, 4), "greedy_accuracy": round(self.greedy_accuracy, 4),
                "disagreements": self.disagreements, "unscorable": len(self.unscorable)}


def run_predictions(db: Database, run_id: int) -> tuple[dict[str, Any], list[tuple[int, str, str, int, int | None]]]:
    """An evaluate run's config and its (example id, premise, hypothesis, gold, predicted label) rows, by id."""
    run = db.execute("SELECT kind, config FROM runs WHERE id = ?", [run_id]).fetchone()
    if run is None or run[0] != "evaluate":
        raise EvaluationError(f"run {run_id} is not an evaluate run; see `nlistral runs`")
    config = json.loads(run[1] or "{}")
    if config.get("with_thought", True) or config.get("backend", "local") != "local":
        raise EvaluationError(f"run {run_id} is not an in-process --no-thought run: the forced check scores the "
                              "label-only answer of an adapter or base loaded here")
    rows = db.execute("SELECT e.id, e.premise, e.hypothesis, e.gold_label, g.predicted_label FROM generations g "
                      "JOIN examples e ON e.id = g.example_id WHERE g.kind = 'prediction' AND g.run_id = ? "
                      "AND e.gold_label IS NOT NULL ORDER BY e.id", [run_id]).fetchall()
    return config, [(int(i), p, h, int(gold), None if label is None else int(label)) for i, p, h, gold, label in rows]


def check_run(db: Database, run_id: int, *, device: str | None = None, rows_per_batch: int = 32,
              loader: Callable[..., LoadedModel] = load_model) -> ForcedCheck:
    """Score the run's examples teacher-forced with its adapter (unmerged) on its base, loaded as evaluate loads it."""
    config, rows = run_predictions(db, run_id)
    if not rows:
        raise EvaluationError(f"run {run_id} has no predictions on labelled examples")
    adapter = Path(config["adapter"]) if config.get("adapter") else None
    loaded = loader(adapter, config.get("base"), device=device, merge=False)
    records = [SftRecord(id=i, prompt=formats.user_prompt(p, h, with_thought=False),
                         target=formats.label_target(gold), where=f"example {i}") for i, p, h, gold, _ in rows]
    encoded = encode_sft(records, loaded.tokenizer, MAX_LENGTH)
    found = label_slots(encoded.records, encoded.rows, loaded.tokenizer)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    scores = score_gold(loaded.model, _right_padded(pad), found.slots, rows_per_batch)
    by_id = {i: (gold, label) for i, _, _, gold, label in rows}
    ids, gold, forced, p1, greedy = [], [], [], [], []
    for slot, p_gold, wins in zip(found.slots, scores.p_gold, scores.gold_wins):
        g, label = by_id[int(slot.raw_id)]
        ids.append(int(slot.raw_id))
        gold.append(g)
        forced.append(g if wins else 1 - g)
        p1.append(p_gold if g == 1 else 1 - p_gold)
        greedy.append(label)
    unscorable = found.unscorable + [f"example {i}: longer than {MAX_LENGTH} tokens" for i in encoded.dropped_ids]
    return ForcedCheck(run_id, loaded.mode, ids, gold, forced, p1, greedy, unscorable)


def _right_padded(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Rows padded on the right with an attention mask (a causal model's logits before the padding are unchanged)."""
    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            ids[row, :len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
            mask[row, :len(feature["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask}
    return collate
