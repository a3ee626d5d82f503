"""Attribution speed: `nlistral attribute`'s batched integrated gradients against one answer at a time.

The model and adapter are the ones benchmarks/eval_speed.py builds (random weights of the Mistral-7B shape on
CUDA, loaded as the attribute command loads them: the adapter unmerged on its base, in float32 compute); the
answers are N_ANSWERS real NLI pairs (eval_speed's PAIRS) with a three-step thought written from the pair
(about 60-120 words: the length of the original project's thoughts), label 1.

  batched     pipeline.attribution.attribute over all answers, BATCH answers per batch, STEPS steps first and
              up to MAX_STEPS for answers that do not converge (as `nlistral attribute`); the record counts the
              steps each answer took and the answers left unconverged
  one         the same function one answer at a time (ONE_N answers, extrapolated): the baseline

Env: N_ANSWERS (200), STEPS (64), MAX_STEPS (512), BATCH (8 on CUDA, 2 on CPU), INTERNAL (Captum's internal
batch: rows of one forward pass; default BATCH), ONE_N (8), SHAPE (7b | tiny), TOKENIZER, PAIRS, WORK as in
eval_speed.py; OUT (a folder for attribution_speed.json). Prints one JSON line per measurement.

  python benchmarks/attribution_speed.py                      # CUDA: the 7B shape
  SHAPE=tiny N_ANSWERS=8 ONE_N=2 python benchmarks/attribution_speed.py   # a CPU smoke run
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_speed import build_models, emit, env, load_tokenizer, read_pairs, sync


def thought_for(premise: str, hypothesis: str) -> str:
    """A three-step thought of realistic length, built from the pair (the model's answer being explained)."""
    return (f"Step 1: The premise says that {premise.rstrip('.')}. It names who is involved, what they do and "
            f"where. Step 2: The hypothesis claims that {hypothesis.rstrip('.')}. I check each detail of it "
            "against the premise: the people, the action, the place and the time. Step 3: Every detail the "
            "hypothesis states is given or implied by the premise, and nothing in it goes beyond what the "
            "premise says, so the hypothesis follows from the premise.")


def main() -> None:
    import torch

    from pipeline.attribution import DEFAULT_STEPS, MAX_STEPS, Answer, attribute, full_precision, prepare
    from pipeline.evaluate.loading import load_model

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    shape = os.environ.get("SHAPE", "7b" if cuda else "tiny")
    n, steps, max_steps = env("N_ANSWERS", 200), env("STEPS", DEFAULT_STEPS), env("MAX_STEPS", MAX_STEPS)
    batch = env("BATCH", 8 if cuda else 2)
    internal = env("INTERNAL", 0) or None
    tokenizer = load_tokenizer()
    _base, adapter = build_models(Path(os.environ.get("WORK", "/tmp/eval_bench")), shape, tokenizer, device)
    answers = [Answer(i + 1, p, h, thought_for(p, h), 1) for i, (p, h) in enumerate(read_pairs(n))]
    t = time.perf_counter()
    loaded = load_model(adapter, None, device=device, merge=False)
    full_precision(loaded.model)
    sync()
    rows, problems = prepare(loaded.tokenizer, answers)
    lengths = [len(r.ids) for r in rows]
    record: dict = {"card": torch.cuda.get_device_name(0) if cuda else "cpu", "shape": shape, "mode": loaded.mode,
                    "load_s": round(time.perf_counter() - t, 1), "answers": len(rows), "unscorable": problems,
                    "tokens_mean": round(sum(lengths) / len(lengths), 1), "tokens_max": max(lengths), "steps": steps}
    results = {}
    spread = rows[::max(1, len(rows) // env("ONE_N", 8))][:env("ONE_N", 8)]  # lengths like the whole set's
    for name, subset, per_batch in (("batched", rows, batch), ("one", spread, 1)):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        found = attribute(loaded.model, subset, steps=steps, max_steps=max_steps, rows_per_batch=per_batch,
                          internal_batch_size=internal if per_batch > 1 else None)
        sync()
        seconds = time.perf_counter() - t
        worst = max(abs(a.delta) / max(abs(a.logprob - a.baseline_logprob), 1e-12) for a in found)
        results[name] = {"answers": len(subset), "rows_per_batch": per_batch, "seconds": round(seconds, 2),
                         "s_per_answer": round(seconds / len(subset), 4),
                         "answers_for_n_s": round(seconds / len(subset) * n, 1),
                         "worst_relative_delta": round(worst, 5),
                         "unconverged": sum(not a.converged for a in found),
                         "steps_used": {k: sum(a.steps == k for a in found) for k in sorted({a.steps for a in found})},
                         "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None}
        emit({"step": name, **results[name]})
    record.update(results, speedup=round(results["one"]["s_per_answer"] / results["batched"]["s_per_answer"], 2))
    emit(record)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "attribution_speed.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
