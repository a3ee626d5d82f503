"""Generation speed of `--backend local` (pipeline.api.local_client.LocalChat) on the Mistral-7B shape.

A random-weight model of the Mistral-7B-v0.3 shape (benchmarks/eval_speed.py builds it, bf16 on CUDA) gets
an [INST] chat template written here, and LocalChat answers the thought prompt (pipeline.prompts.THOUGHT:
its system text, max_tokens 600, temperature 0.2) for real NLI pairs, as `nlistral generate --backend local`
sends them: every request at once, so the batch runner takes up to --max-concurrency of them per `generate`.

  batched   LocalChat(max_batch=BATCH) on N_BATCHED requests
  baseline  LocalChat(max_batch=1) on N_ONE requests: one request at a time (what a plain loop does)

Random weights never end their turn, so every answer runs to max_tokens: the slowest case, and tokens/s
counts every generated token. The model is loaded once (its load time is reported on its own), then
each variant is timed from the first request to the last answer.

Env: TOKENIZER (an HF tokenizer folder, e.g. the v0.3 tokenizer from `eval_speed.py make-tokenizer`),
PAIRS (comma-separated CSVs with premise,hypothesis), N_BATCHED (128), BATCH (64), N_ONE (2),
MAX_TOKENS (600), WORK (/tmp/local_gen), OUT (a folder for local_generate_speed.json).
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_speed import build_models, emit, env, load_tokenizer, read_pairs

# A Mistral-style [INST] template (no system turn: LocalModel folds the system text into the user turn).
INST_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} "
                 "[/INST]{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}"
                 "{% endfor %}")


async def answer_all(chat, pairs: list[tuple[str, str]], max_tokens: int) -> dict:
    """Send every pair's thought request at once; the wall time and the tokens of all answers."""
    from pipeline.prompts import THOUGHT

    started = time.perf_counter()
    replies = await asyncio.gather(*[
        chat.complete(THOUGHT.messages(premise=p, hypothesis=h), model="bench", max_tokens=max_tokens,
                      temperature=THOUGHT.temperature) for p, h in pairs])
    seconds = time.perf_counter() - started
    out = sum(r.tokens_out for r in replies)
    return {"requests": len(pairs), "seconds": round(seconds, 2), "tokens_in": sum(r.tokens_in for r in replies),
            "tokens_out": out, "tokens_per_s": round(out / seconds, 1),
            "requests_per_min": round(60 * len(pairs) / seconds, 1)}


def main() -> None:
    import torch

    from pipeline.api.local_client import LocalChat
    from pipeline.api.local_model import LocalModel

    work = Path(os.environ.get("WORK", "/tmp/local_gen"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer()
    base, _ = build_models(work, os.environ.get("SHAPE", "7b"), tokenizer, device)
    (base / "chat_template.jinja").write_text(INST_TEMPLATE, encoding="utf-8")
    t = time.perf_counter()
    model = LocalModel(str(base))
    load_s = round(time.perf_counter() - t, 1)
    emit({"step": "load", "seconds": load_s, "device": model.device,
          "card": torch.cuda.get_device_name() if device == "cuda" else "cpu"})
    max_tokens = env("MAX_TOKENS", 600)
    n_batched, batch, n_one = env("N_BATCHED", 128), env("BATCH", 64), env("N_ONE", 2)
    pairs = read_pairs(n_batched)
    results: dict = {"load_s": load_s, "max_tokens": max_tokens}
    for name, size, n in (("baseline", 1, n_one), ("batched", batch, n_batched)):
        chat = LocalChat(str(base), max_batch=size, load=lambda _folder: model)

        async def run(chat=chat, n=n) -> dict:
            async with chat:
                return await answer_all(chat, pairs[:n], max_tokens)

        record = asyncio.run(run())
        record.update(variant=name, max_batch=size, batches=list(model.batch_sizes))
        model.batch_sizes.clear()
        if device == "cuda":
            record["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        results[name] = emit(record)
    results["ratio"] = round(results["batched"]["tokens_per_s"] / results["baseline"]["tokens_per_s"], 1)
    emit({"ratio_batched_to_one_at_a_time": results["ratio"]})
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "local_generate_speed.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
