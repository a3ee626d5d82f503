"""Teacher-forced probability of the gold label token: where the label sits in each training row, and one
batched, no-grad scoring pass with the trainer's own model and collator.

The probability is the gold label's share of the two label tokens (softmax over their two logits, i.e.
sigmoid of the logit margin): the model's decision between the labels, as a classifier's class probability
is in the cartography paper, so 0.5 means undecided and correctness is "above 0.5".

Why here and not in pipeline/evaluate: evaluate only decodes greedily (generation.py) and its other
forward pass (merge.top1_predictions) checks a dequantised base's argmax over every position; neither
scores a label. Its fast path is also the wrong one during training: it dequantises the 4-bit base into
a second bf16 copy, while here the live training model (4-bit QLoRA on CUDA) is at hand. So the pass
reuses what training already runs: the trainer's collator (with the varlen kernel, packed rows with
example boundaries, as training packs them; with SDPA or eager, the same collator padding each row, since
a packed row's dense mask costs time quadratic in the whole batch: 1.6 s against 0.14 s for 28 rows on
the tiny CPU model), evaluate's length-sorted batching, and transformers' logits_to_keep, so logits exist
only at the one position per example that predicts its label.

Where the label sits comes from the code that builds the training text: the row's target is rebuilt by
exports.formats (cot_target or label_target) with the other label, the row is encoded again through the model's
own layout (exports.layout, as data.encode_sft encodes rows), and the one token where they differ is the label token.
No token id is hard-coded, and a tokenizer that merges the label with its neighbours (" 1" is one token
for some) is handled, since only the differing position matters.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from exports import formats
from exports.layout import layout_for
from pipeline.evaluate.batching import length_sorted_batches
from pipeline.train import attention
from pipeline.train.data import IGNORE, Row, SftRecord


@dataclass(frozen=True)
class LabelSlot:
    """One training row as scored: its tokens before the label token, and the two label tokens."""

    raw_id: Any  # the row's "id" as exported
    example_id: int | None  # that id as a store example id (None: missing or not an integer)
    gold_label: int  # the label the row trains on
    prefix: tuple[int, ...]  # the prompt's tokens and the target's up to the label token
    gold_token: int
    other_token: int  # the token the other label would have there


@dataclass
class Slots:
    """The scorable rows of a run, and the rows that cannot be scored with the reason for each."""

    slots: list[LabelSlot]
    unscorable: list[str]  # "file:line: reason"


@dataclass(frozen=True)
class Scores:
    """One scoring pass: P(gold label token) and whether gold outscored the other label, per slot."""

    p_gold: list[float]
    gold_wins: list[bool]
    seconds: float


def store_id(raw: Any) -> int | None:
    """The row's id as a store example id: an integer (or a string of digits), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def swapped_target(target: str) -> tuple[int, str] | None:
    """(the target's label, the same target with the other label), rebuilt by exports.formats; None when the
    target is not one formats.cot_target or formats.label_target writes."""
    try:
        obj = json.loads(target)
    except json.JSONDecodeError:
        return None
    label = obj.get("predicted_label") if isinstance(obj, dict) else None
    if label not in (0, 1) or isinstance(label, bool):
        return None
    build: Callable[[int], str]
    if set(obj) == {"predicted_label"}:
        build = formats.label_target
    elif set(obj) == {"thought_process", "predicted_label"} and isinstance(obj["thought_process"], str):
        thought = obj["thought_process"]

        def build(value: int) -> str:
            return formats.cot_target(thought, value)
    else:
        return None
    return (label, build(1 - label)) if build(label) == target else None


def label_slots(records: Sequence[SftRecord], rows: Sequence[Row], tokenizer: Any) -> Slots:
    """The label slot of each encoded training row (records and rows in the same order)."""
    out = Slots(slots=[], unscorable=[])
    swaps = [swapped_target(r.target) for r in records]
    kept = [(r.prompt, s[1]) for r, s in zip(records, swaps) if s is not None]
    others = iter(layout_for(tokenizer).full_ids([p for p, _ in kept], [t for _, t in kept]) if kept else [])
    for record, row, swap in zip(records, rows, swaps):
        if swap is None:
            out.unscorable.append(f"{record.where}: the target is not one exports.formats writes, so the label "
                                  "cannot be located")
            continue
        gold_ids, other_ids = row["input_ids"], next(others)
        differ = [i for i, (a, b) in enumerate(zip(gold_ids, other_ids)) if a != b]
        if len(gold_ids) != len(other_ids) or len(differ) != 1 or row["labels"][differ[0]] == IGNORE:
            out.unscorable.append(f"{record.where}: the two labels do not tokenize to one differing target token")
            continue
        at = differ[0]
        out.slots.append(LabelSlot(record.id, store_id(record.id), swap[0], tuple(gold_ids[:at]), gold_ids[at],
                                   other_ids[at]))
    return out


def scoring_collator(collator: Any, model: Any) -> Any:
    """The trainer's collator as scoring uses it: packed when the model attends with the varlen kernel (linear
    in the packed length), else padding each row (a packed row's dense mask is quadratic in it)."""
    packed = getattr(model.config, "_attn_implementation", None) == attention.NAME
    if packed or not getattr(collator, "padding_free", False):
        return collator
    return dataclasses.replace(collator, padding_free=False)  # TRL's collator is a dataclass


def score_gold(model: Any, collator: Callable[[list[dict[str, Any]]], dict[str, Any]], slots: Sequence[LabelSlot],
               rows_per_batch: int) -> Scores:
    """P(gold label) between the two label tokens for each slot, teacher-forced, in eval mode under no_grad (train
    mode is restored)."""
    import torch

    started = time.perf_counter()
    p_gold, wins = [0.0] * len(slots), [False] * len(slots)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in length_sorted_batches([len(s.prefix) for s in slots], rows_per_batch):
                chosen = [slots[i] for i in batch]
                inputs = collator([{"input_ids": list(s.prefix)} for s in chosen])
                inputs.pop("labels", None)
                rows, cols = _label_positions(inputs, [len(s.prefix) for s in chosen])
                keep, where = torch.unique(cols, return_inverse=True)
                moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
                out = model(**moved, use_cache=False, logits_to_keep=keep.to(device))
                logits = out.logits[rows.to(device), where.to(device)].float()
                gold = torch.tensor([s.gold_token for s in chosen], device=device)[:, None]
                other = torch.tensor([s.other_token for s in chosen], device=device)[:, None]
                # P(gold) between the two labels: the label decision, whatever mass other tokens still hold
                # early in training (a raw vocabulary softmax put every example "below 0.5" after 2 epochs
                # of SmolLM2 while the model already preferred gold).
                margin = (logits.gather(1, gold) - logits.gather(1, other))[:, 0]
                probs = torch.sigmoid(margin).tolist()
                beats = (margin > 0).tolist()
                for k, i in enumerate(batch):
                    p_gold[i], wins[i] = float(probs[k]), bool(beats[k])
    finally:
        if was_training:
            model.train()
    return Scores(p_gold, wins, time.perf_counter() - started)


def _label_positions(inputs: dict[str, Any], lengths: list[int]) -> tuple[Any, Any]:
    """(row, column) of each example's last prefix token in the collated batch: packed into one row when
    the collator concatenates (no attention mask), else one right-padded row each."""
    import torch

    size = torch.tensor(lengths)
    if "attention_mask" not in inputs:
        return torch.zeros(len(lengths), dtype=torch.long), size.cumsum(0) - 1
    return torch.arange(len(lengths)), size - 1
