"""Label attribution: integrated gradients (Captum) of the answer's label with respect to the input tokens.

For one answer (a premise, a hypothesis, and the model's own thought and label), the row is the training
text through the model's own layout (exports.layout), teacher-forced up to the label token; the output is
log P(label token | everything before it). Integrated gradients integrate the gradient of that output along
the straight line from a baseline to the input, in embedding space, and give each token a share of
output(input) - output(baseline) (completeness: the shares sum to that difference, up to the integral's
approximation error, which Captum reports as the convergence delta).

The baseline replaces the embeddings of the content tokens (premise, hypothesis, thought) with the mean of the
model's embedding matrix (a token carrying no particular content) and keeps every other token (instruction,
template, JSON keys) as it is, so those get exactly zero and the whole difference is split among the content:
the share that falls on the thought against the premise and hypothesis is the direct test of "the label
follows from the thought". Not zeros: RMSNorm makes a layer's input scale-invariant, so the path from zero
embeddings is flat but for a jump next to zero that the integral misses (SmolLM2, 64 steps: the attributions
missed 96 % of the output difference from zeros, 0.8 % from the mean embedding). And in float32
(full_precision): in bfloat16 the same sum missed 27 %.

How many steps: it depends on the answer. On SmolLM2 the tests' short answer converges at 64; six RTE pairs with
three-step thoughts of about 100 words (benchmarks/attribution_speed.py's) missed 99 % of the difference on average at
64 steps, and at 128 one of two converged (3.7 %) while the other still missed 45 % (9 % at 256). So 64 is only
the first try: a row whose integral missed more than TOLERANCE is integrated again at twice the steps, up to
max_steps, and the convergence delta is stored with every result (`nlistral stats` counts the rows that never
converged). Why long answers need so many: along the path, the output of those six answers (271-446 tokens, 41
points from baseline to input) is smooth up to about 0.15 of the way and after 0.6, and swings between in
several peaks a few hundredths apart (one answer: -0.41 at the baseline, -4.32 at 0.33, -0.22 at 0.65, -0.66 at
the input), so the quadrature needs many points in that stretch. It also lets one integral over the whole path
sum to the right total by luck: the third of those answers (446 tokens) missed 0.8 % at 16 steps, then 71 % at
32, 92 % at 64 and 10 % at 128. So the path is integrated in SEGMENTS pieces, each with its share of the steps
and checked on its own, and the stored delta adds their misses without signs (a bound on the total's miss).
The price: answers need more steps to pass (the test of the short SmolLM2 answer took 362 s instead of 51 s on the
development VM).

Rows of similar length are batched (left-padded, with explicit positions, so the label-predicting position
is the last of every row and only its logits are computed); Captum runs the interpolation steps of a batch
in chunks of internal_batch_size rows.
"""
from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from db.attributions import converged
from exports import formats
from exports.layout import MISTRAL, Layout, layout_for
from pipeline.evaluate.batching import length_sorted_batches
from pipeline.train.data import SftRecord, encode_sft
from pipeline.train.label_scores import label_slots

REGIONS = ("premise", "hypothesis", "thought")
DEFAULT_STEPS = 64  # the first try: completeness within 5 % on the tests' short answers (tests/test_attribution.py)
MAX_STEPS = 512  # the last try: unconverged rows are integrated again at 2x, 4x, ... the steps up to this
SEGMENTS = 4  # pieces of the path, each checked for completeness on its own (see the module's docstring)


class AttributionError(ValueError):
    """An answer cannot be attributed (the message says why)."""


@dataclass(frozen=True)
class Answer:
    """What is attributed: an example's pair and the model's own thought and label."""

    example_id: int
    premise: str
    hypothesis: str
    thought: str
    label: int


@dataclass(frozen=True)
class Attribution:
    """One answer's attribution: the output at the input and at the baseline, the integral's error, the summed
    absolute attribution per region, and the thought's tokens as (start, end, score) over the thought text."""

    example_id: int
    label: int
    logprob: float
    baseline_logprob: float
    delta: float  # the integral's error: over the path's pieces, sum of |attributions - output difference|
    regions: dict[str, float]  # region -> sum of |attribution| of its tokens
    signed: dict[str, float]  # region -> sum of attribution
    tokens: list[tuple[int, int, float]]  # the thought's tokens: start, end (in the thought text), attribution
    steps: int = DEFAULT_STEPS  # integration steps of the result (attribute doubles them until converged)

    @property
    def converged(self) -> bool:
        """Whether the attributions sum to the output difference within 5 % (db.attributions.converged)."""
        return converged(self.delta, self.logprob - self.baseline_logprob)

    @property
    def thought_share(self) -> float | None:
        """The thought's share of the absolute attribution over premise, hypothesis and thought."""
        total = sum(self.regions.values())
        return self.regions["thought"] / total if total else None


@dataclass(frozen=True)
class _Row:
    answer: Answer
    ids: list[int]  # up to (not including) the label token
    label_token: int
    region: list[str | None]  # per token: premise | hypothesis | thought | None (kept in the baseline)
    thought_spans: list[tuple[int, int]]  # per token of the thought: its span in the thought text


def prepare(tokenizer: Any, answers: Sequence[Answer], max_length: int = 4096) -> tuple[list[_Row], list[str]]:
    """The rows to attribute, and why any answer cannot be (an unsupported tokenizer, no label slot, too long)."""
    if not getattr(tokenizer, "is_fast", False):
        raise AttributionError("attribution needs a fast tokenizer (character offsets of each token); this "
                               "model's tokenizer is not one")
    layout = layout_for(tokenizer)
    records = [SftRecord(id=a.example_id, prompt=formats.user_prompt(a.premise, a.hypothesis),
                         target=formats.cot_target(a.thought, a.label), where=f"example {a.example_id}")
               for a in answers]
    encoded = encode_sft(records, tokenizer, max_length)
    found = label_slots(encoded.records, encoded.rows, tokenizer)
    problems = list(found.unscorable) + [f"example {i}: longer than {max_length} tokens" for i in encoded.dropped_ids]
    by_id = {a.example_id: a for a in answers}
    rows = []
    for slot in found.slots:
        answer = by_id[int(slot.raw_id)]
        ids, offsets, text = _with_offsets(layout, formats.user_prompt(answer.premise, answer.hypothesis),
                                           formats.cot_target(answer.thought, answer.label))
        if ids[:len(slot.prefix)] != list(slot.prefix):
            problems.append(f"example {answer.example_id}: the tokenizer's offsets do not match the layout's tokens")
            continue
        spans = _spans(text, answer)
        ends = _escaped_ends(answer.thought)
        region: list[str | None] = []
        thought_spans: list[tuple[int, int]] = []
        for start, end in offsets[:len(slot.prefix)]:
            name = next((r for r, (a, b) in spans.items() if start < b and end > a and end > start), None)
            region.append(name)
            if name == "thought":
                thought_spans.append(_raw_span(ends, start - spans["thought"][0], end - spans["thought"][0]))
        rows.append(_Row(answer, list(slot.prefix), slot.gold_token, region, thought_spans))
    return rows, problems


def _with_offsets(layout: Layout, prompt: str, target: str) -> tuple[list[int], list[tuple[int, int]], str]:
    """The row's token ids as layout.full_ids builds them, each with its character span in the row's text."""
    tok = layout.tokenizer
    if layout.kind == MISTRAL:
        pieces = [formats.inst_text(prompt, target)]
    else:
        pieces = [layout.prompt_text(prompt), layout.answer_prefix + target, layout.end_of_turn]
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    at = 0
    for piece in pieces:
        enc = tok(piece, add_special_tokens=False, return_offsets_mapping=True)
        ids += enc["input_ids"]
        offsets += [(at + a, at + b) for a, b in enc["offset_mapping"]]
        at += len(piece)
    return ids, offsets, "".join(pieces)


def _spans(text: str, answer: Answer) -> dict[str, tuple[int, int]]:
    """Where the premise, the hypothesis and the thought (JSON-escaped, as the target writes it) are in the text."""
    prompt = formats.user_prompt(answer.premise, answer.hypothesis)
    start = text.find(prompt)
    if start < 0:
        raise AttributionError(f"example {answer.example_id}: the chat template changes the prompt's text")
    premise = start + len("Premise: ")
    hypothesis = premise + len(answer.premise) + len("\nHypothesis: ")
    target = formats.cot_target(answer.thought, answer.label)
    thought = text.find(target, start + len(prompt)) + len('{"thought_process": "')
    escaped = len(json.dumps(answer.thought, ensure_ascii=False)) - 2
    return {"premise": (premise, premise + len(answer.premise)),
            "hypothesis": (hypothesis, hypothesis + len(answer.hypothesis)),
            "thought": (thought, thought + escaped)}


def _escaped_ends(thought: str) -> list[int]:
    """For each character of the thought, the position just after it in the thought as JSON escapes it."""
    return list(itertools.accumulate(len(json.dumps(ch, ensure_ascii=False)) - 2 for ch in thought))


def _raw_span(ends: list[int], start: int, end: int) -> tuple[int, int]:
    """A span of the JSON-escaped thought (ends: _escaped_ends) as a span of the thought itself."""
    lo = bisect.bisect_right(ends, max(0, start))
    hi = bisect.bisect_left(ends, max(0, end)) + 1
    return min(lo, len(ends)), min(max(hi, lo), len(ends))


def full_precision(model: Any) -> Any:
    """The model computing in float32 (gradients in bf16 are too coarse for the integral): floating parameters
    cast, and a 4-bit (bitsandbytes) layer's compute dtype set to float32 (its packed weights stay 4-bit)."""
    import torch

    for module in model.modules():
        if getattr(module, "compute_dtype", None) is not None:
            module.compute_dtype = torch.float32
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor.data = tensor.data.float()
    return model


def attribute(model: Any, rows: Sequence[_Row], *, steps: int = DEFAULT_STEPS, max_steps: int = MAX_STEPS,
              rows_per_batch: int = 4, internal_batch_size: int | None = None,
              progress: Callable[[int], None] = lambda done: None) -> list[Attribution]:
    """Integrated gradients for each row (module docstring), in length-sorted batches; progress(rows done).

    A row whose integral has not converged (converged(): the convergence delta over 5 % of the output difference)
    is integrated again with twice the steps, up to max_steps; its Attribution records the steps of its last try."""
    if not 1 <= steps <= max_steps:
        raise ValueError(f"steps must be between 1 and max_steps ({max_steps}), not {steps}")
    was_training = model.training
    model.eval()
    out: dict[int, Attribution] = {}
    done = 0
    try:
        for batch in length_sorted_batches([len(r.ids) for r in rows], rows_per_batch):
            pending, n = [rows[i] for i in batch], steps
            while pending:
                for row, found in zip(pending, _integrate(model, pending, n, internal_batch_size)):
                    out[row.answer.example_id] = found
                pending = [r for r in pending if not out[r.answer.example_id].converged]
                n *= 2
                if n > max_steps:
                    break
            done += len(batch)
            progress(done)
    finally:
        model.train(was_training)
    return [out[r.answer.example_id] for r in rows]


def _integrate(model: Any, chosen: Sequence[_Row], steps: int, internal_batch_size: int | None) -> list[Attribution]:
    """One batch of rows integrated with `steps` steps."""
    import torch
    from captum.attr import IntegratedGradients

    device = next(model.parameters()).device
    embed = model.get_input_embeddings()
    width = max(len(r.ids) for r in chosen)
    pad = [width - len(r.ids) for r in chosen]
    ids = torch.zeros((len(chosen), width), dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    content = torch.zeros((len(chosen), width), dtype=torch.bool, device=device)
    for k, (row, left) in enumerate(zip(chosen, pad)):
        ids[k, left:] = torch.tensor(row.ids, device=device)
        mask[k, left:] = 1
        content[k, left:] = torch.tensor([r is not None for r in row.region], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    labels = torch.tensor([r.label_token for r in chosen], device=device)
    with torch.no_grad():
        inputs = embed(ids).float()
    baseline = torch.where(content.unsqueeze(-1), embed.weight.float().mean(0), inputs)

    def forward(embeds: Any, attention_mask: Any, position_ids: Any, label_ids: Any) -> Any:
        dtype = embed.weight.dtype
        logits = model(inputs_embeds=embeds.to(dtype), attention_mask=attention_mask,
                       position_ids=position_ids, logits_to_keep=1).logits[:, -1, :].float()
        return logits.log_softmax(-1).gather(-1, label_ids.unsqueeze(-1)).squeeze(-1)

    extra = (mask, positions, labels)
    ig = IntegratedGradients(forward)
    # The path in SEGMENTS pieces, each integrated with its share of the steps; a piece's attributions sum to its
    # own output difference, so each piece is checked on its own and the errors are added without their signs.
    pieces = min(SEGMENTS, steps)
    attributions, delta = torch.zeros_like(inputs), torch.zeros(len(chosen), device=device)
    for piece in range(pieces):
        start = baseline + piece / pieces * (inputs - baseline)
        end = inputs if piece == pieces - 1 else baseline + (piece + 1) / pieces * (inputs - baseline)
        part, missed = ig.attribute(end, baselines=start, additional_forward_args=extra,
                                    n_steps=-(-steps // pieces), internal_batch_size=internal_batch_size or len(chosen),
                                    return_convergence_delta=True)
        attributions += part.detach()
        delta += missed.detach().abs().to(delta.dtype)
    with torch.no_grad():
        at_input = forward(inputs, *extra)
        at_baseline = forward(baseline, *extra)
    per_token = attributions.sum(-1).detach().float().cpu()
    return [_summary(row, per_token[k, left:].tolist(), float(at_input[k]), float(at_baseline[k]), float(delta[k]),
                     -(-steps // pieces) * pieces)
            for k, (row, left) in enumerate(zip(chosen, pad))]


def _summary(row: _Row, scores: list[float], logprob: float, baseline: float, delta: float,
             steps: int) -> Attribution:
    regions = dict.fromkeys(REGIONS, 0.0)
    signed = dict.fromkeys(REGIONS, 0.0)
    tokens = []
    spans = iter(row.thought_spans)
    for name, score in zip(row.region, scores):
        if name is None:
            continue
        regions[name] += abs(score)
        signed[name] += score
        if name == "thought":
            start, end = next(spans)
            tokens.append((start, end, score))
    return Attribution(row.answer.example_id, row.answer.label, logprob, baseline, delta, regions, signed, tokens,
                       steps)
