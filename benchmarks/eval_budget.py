"""Evaluation within a memory budget: what `nlistral evaluate --max-memory GIB` does on a card of that size.

One budget per process (the cap on this process's CUDA memory cannot be raised again cleanly):
torch.cuda.set_per_process_memory_fraction(BUDGET_GIB / card) stands in for a smaller card, and
evaluate's own loading and decoding get max_memory_gib=BUDGET_GIB, so they plan within it: the base
unpacked to bf16 when that fits with headroom, else kept 4-bit (and said so); batches sized to what is
left; a batch that still runs out of memory split and retried. The model and adapter are the ones
benchmarks/eval_speed.py builds (random weights of the Mistral-7B shape on CUDA), the prompts the same.

  python3 benchmarks/eval_budget.py build        # once: the model and adapter, with the whole card
  for b in 80 24 8; do BUDGET_GIB=$b OUT=$OUT python3 benchmarks/eval_budget.py; done

Env: BUDGET_GIB (required), N_PROMPTS (2000), NEW_TOKENS (200), SHAPE, TOKENIZER, PAIRS, WORK as in
eval_speed.py; OUT (a folder for eval_budget_GIB.json).
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


def build() -> None:
    """Build and save the model and adapter with the whole card (a budget run under 8 GiB could not)."""
    import torch

    cuda = torch.cuda.is_available()
    build_models(Path(os.environ.get("WORK", "/tmp/eval_bench")), os.environ.get("SHAPE", "7b" if cuda else "tiny"),
                 load_tokenizer(), "cuda" if cuda else "cpu")


def main() -> None:
    import torch
    import transformers

    from pipeline.evaluate.generation import generate
    from pipeline.evaluate.loading import load_model
    from pipeline.evaluate.prompts import encode_prompt, prompt_text

    budget = float(os.environ["BUDGET_GIB"])
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget * 2**30 / total))
    shape = os.environ.get("SHAPE", "7b" if cuda else "tiny")
    n, new = env("N_PROMPTS", 2000), env("NEW_TOKENS", 200)
    tokenizer = load_tokenizer()
    _base, adapter = build_models(Path(os.environ.get("WORK", "/tmp/eval_bench")), shape, tokenizer, device)
    prompts = [encode_prompt(tokenizer, prompt_text(p, h)) for p, h in read_pairs(n)]
    t = time.perf_counter()
    loaded = load_model(adapter, None, device=device, max_memory_gib=budget)
    sync()
    record: dict = {"budget_gib": budget, "card": torch.cuda.get_device_name(0) if cuda else "cpu",
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "load_s": round(time.perf_counter() - t, 1), "mode": loaded.mode, "warning": loaded.warning}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    tokens, batches, batch_s = 0, [], []
    for batch in generate(loaded.model, tokenizer, prompts, max_new_tokens=new, stop_at_json_end=False,
                          stop_at_eos=False, max_memory_gib=budget):
        tokens += batch.new_tokens
        batches.append(len(batch.indices))
        batch_s.append(round(batch.seconds, 2))
    sync()
    seconds = time.perf_counter() - t
    record.update(prompts=n, new_tokens=new, seconds=round(seconds, 2), generated_tokens=tokens,
                  tokens_per_s=round(tokens / seconds, 1), batches=batches, batch_s=batch_s,
                  peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None)
    emit(record)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], f"eval_budget_{budget:g}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    build() if sys.argv[1:2] == ["build"] else main()
