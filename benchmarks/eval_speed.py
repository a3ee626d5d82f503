"""Evaluation speed: the `nlistral evaluate` fast path against plain `generate`, measured in one run.

A random-weight model of the Mistral-7B-v0.3 shape and a LoRA adapter (r16/a32 on q,k,v,o, random B)
are built and saved; prompts are the training prompt (exports.formats) on real NLI pairs.

  fast        pipeline.evaluate: NF4 base + adapter folded into the dequantised weights (bf16, the merge),
              batched greedy decoding with length-sorted batches (pipeline.evaluate.generation.generate),
              N_PROMPTS prompts x NEW_TOKENS tokens each (end-of-JSON and EOS stops off: every row
              generates all its tokens, the slowest case).
  fast_unfolded  the same with the NF4 base dequantised to bf16 and the adapter applied unmerged on top:
              what `nlistral evaluate` uses on CUDA (pipeline.evaluate.loading.load_model's default).
  baseline 1  plain `generate` on the NF4 base + unmerged adapter, one left-padded batch of BASE_BATCH.
  baseline 2  plain `generate` one prompt at a time (ONE_N prompts).
  agreement   next-token top-1 of both dense variants against the unmerged 4-bit model (teacher-forced over
              AGREE_N prompts plus their generated answers), over all positions and over those where the
              reference's top-1 leads its runner-up by >= 0.5 or 1.0 logit; with two references: the
              unmerged model against itself at batch 1 (numeric noise) and without its adapter (the
              adapter's effect).

Env: SHAPE (7b | tiny), N_PROMPTS (2000), NEW_TOKENS (200), BASE_BATCH (64), BASE_NEW (200), ONE_N (4),
ONE_NEW (50), AGREE_N (16), TOKENIZER (an HF tokenizer folder; default the project's tiny BPE),
PAIRS (comma-separated CSV files with premise,hypothesis; default ../shared/data/external RTE dev + train),
WORK (/tmp/eval_bench), OUT (a folder for eval_speed.json). Prints one JSON line per measurement and a
table at the end.

`python benchmarks/eval_speed.py make-tokenizer SPM_MODEL OUT_DIR` converts a SentencePiece model (e.g.
mistral_common's mistral_instruct_tokenizer_240323.model.v3, the v0.3 tokenizer) into a tokenizer folder
(needs sentencepiece and protobuf), so prompt lengths are those of the real tokenizer.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {
    "7b": {"vocab_size": 32768, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128},
    "tiny": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16},
}
DEFAULT_PAIRS = [ROOT.parent / "shared" / "data" / "external" / f for f in ("rte_dev.csv", "rte_train.csv")]


STARTED = time.perf_counter()
MARGINS = (0.5, 1.0)  # logits: positions where the reference's top-1 leads its runner-up by at least this


def env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def load_tokenizer():
    from transformers import AutoTokenizer

    from pipeline.tiny_model import build_tokenizer

    path = os.environ.get("TOKENIZER")
    return AutoTokenizer.from_pretrained(path) if path else build_tokenizer()


def build_models(work: Path, shape: str, tokenizer, device: str) -> tuple[Path, Path]:
    """Save a random base (bf16 on CUDA) and a LoRA adapter with random B; returns (base, adapter)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    base, adapter = work / "base", work / "adapter"
    if (adapter / "adapter_config.json").exists():
        return base, adapter
    t = time.perf_counter()
    dims = dict(SHAPES[shape])
    dims["num_hidden_layers"] = env("LAYERS", dims["num_hidden_layers"])
    dims["vocab_size"] = max(dims["vocab_size"], len(tokenizer))
    config = MistralConfig(**dims, max_position_embeddings=32768, rope_theta=1e6, tie_word_embeddings=False,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = MistralForCausalLM(config)
    torch.set_default_dtype(previous)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    generator = torch.Generator(device=device).manual_seed(1)
    with torch.no_grad():  # |BA| about 7 % of |W|: an adapter that has moved, as a trained one has
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator, device=device, dtype=param.dtype) * 0.02)
    peft.peft_config["default"].base_model_name_or_path = str(base)
    peft.save_pretrained(adapter)
    del model, peft
    if device == "cuda":
        torch.cuda.empty_cache()
    emit({"step": "build", "seconds": round(time.perf_counter() - t, 1), "shape": shape, **dims})
    return base, adapter


def read_pairs(n: int) -> list[tuple[str, str]]:
    files = [Path(p) for p in os.environ["PAIRS"].split(",")] if os.environ.get("PAIRS") else DEFAULT_PAIRS
    pairs: list[tuple[str, str]] = []
    for path in files:
        if not path.exists():
            sys.exit(f"{path} not found: set PAIRS to CSV files with premise,hypothesis columns")
        with path.open(newline="", encoding="utf-8") as fh:
            pairs.extend((r["premise"], r["hypothesis"]) for r in csv.DictReader(fh))
    if len(pairs) < n:
        sys.exit(f"only {len(pairs)} pairs in {files}; need {n}")
    step = len(pairs) / n  # spread evenly over the files
    return [pairs[int(i * step)] for i in range(n)]


def plain_generate(model, tokenizer, prompts: list[list[int]], new_tokens: int) -> int:
    """Hugging Face generate on one left-padded batch; returns the new tokens produced."""
    import torch

    longest = max(len(p) for p in prompts)
    pad = tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
    return (out.shape[1] - longest) * len(prompts)


def main() -> None:
    import torch

    from pipeline.evaluate.generation import generate
    from pipeline.evaluate.loading import load_model
    from pipeline.evaluate.merge import merge_to_dense, top1_agreement, top1_predictions
    from pipeline.evaluate.prompts import encode_prompt, prompt_text

    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = os.environ.get("SHAPE", "7b" if device == "cuda" else "tiny")
    n, new = env("N_PROMPTS", 2000), env("NEW_TOKENS", 200)
    work = Path(os.environ.get("WORK", "/tmp/eval_bench"))
    results: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                     "torch": torch.__version__, "shape": shape, "prompts": n, "new_tokens": new}
    import transformers

    results["transformers"] = transformers.__version__
    tokenizer = load_tokenizer()
    _base, adapter = build_models(work, shape, tokenizer, device)
    prompts = [encode_prompt(tokenizer, prompt_text(p, h)) for p, h in read_pairs(n)]
    lengths = sorted(len(p) for p in prompts)
    results["prompt_tokens"] = emit({"step": "prompts", "mean": round(sum(lengths) / n, 1),
                                     "median": lengths[n // 2], "min": lengths[0], "max": lengths[-1]})

    # The evaluate fast path: load_model(merge=True) is exactly load_model(merge=False) + merge_to_dense,
    # done in two steps here so the unmerged 4-bit model stays for the baselines and the agreement check.
    t = time.perf_counter()
    unmerged = load_model(adapter, None, device=device, four_bit=True, merge=False)
    sync()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    merged = merge_to_dense(unmerged.model)
    sync()
    results["load"] = emit({"step": "load", "load_4bit_s": round(load_s, 1),
                            "merge_s": round(time.perf_counter() - t, 1), "mode": unmerged.mode})

    def timed(model, step: str) -> dict[int, list[int]]:
        list(generate(model, tokenizer, prompts[:8], max_new_tokens=4, batch_size=8))  # warm-up
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        tokens, batches, answers, batch_s = 0, [], {}, []
        for batch in generate(model, tokenizer, prompts, max_new_tokens=new, stop_at_json_end=False,
                              stop_at_eos=False, batch_size=env("FAST_BATCH", 0) or None):
            tokens += batch.new_tokens
            batches.append(len(batch.indices))
            batch_s.append(round(batch.seconds, 2))
            answers.update({i: list(o.token_ids) for i, o in zip(batch.indices, batch.outputs)})
        sync()
        seconds = time.perf_counter() - t
        peak = round(torch.cuda.max_memory_allocated() / 2**30, 1) if device == "cuda" else None
        results[step] = emit({"step": step, "seconds": round(seconds, 2), "generated_tokens": tokens,
                              "tokens_per_s": round(tokens / seconds, 1), "batches": batches, "batch_s": batch_s,
                              "peak_gib": peak})
        return answers

    answers = timed(merged, "fast")
    agree_n = env("AGREE_N", 16)
    sequences = [prompts[i] + answers[i] for i in range(agree_n)]
    ref = top1_predictions(unmerged.model, sequences, batch_size=agree_n)
    merged_top1 = top1_predictions(merged, sequences, batch_size=agree_n)
    merged_vs = top1_agreement(ref, merged_top1)
    batch1 = top1_predictions(unmerged.model, sequences, batch_size=1)
    with unmerged.model.disable_adapter():
        without = top1_predictions(unmerged.model, sequences, batch_size=agree_n)
    results["agreement"] = emit({"step": "agreement", "positions": merged_vs.positions, **{
        f"{name}{suffix}": round(top1_agreement(ref, other, min_margin=margin).rate, 4)
        for suffix, margin in (("", 0.0), *((f"_margin_ge_{m}", m) for m in MARGINS))
        for name, other in (("merged_vs_unmerged", merged_top1), ("unmerged_batch1_vs_batch_n", batch1),
                            ("no_adapter_vs_adapter", without))},
        **{f"positions_margin_ge_{m}": top1_agreement(ref, ref, min_margin=m).positions for m in MARGINS}})
    del merged
    free(device)

    base_batch, base_new = env("BASE_BATCH", 64), env("BASE_NEW", 200)
    plain_generate(unmerged.model, tokenizer, prompts[:2], 2)  # warm-up
    t = time.perf_counter()
    done = plain_generate(unmerged.model, tokenizer, prompts[:base_batch], base_new)
    sync()
    batched_s = time.perf_counter() - t
    results["plain_batched_4bit"] = emit({"step": "plain_batched_4bit", "batch": base_batch, "new_tokens": base_new,
                                          "seconds": round(batched_s, 2), "generated_tokens": done,
                                          "tokens_per_s": round(done / batched_s, 1)})

    one_n, one_new = env("ONE_N", 4), env("ONE_NEW", 50)
    t, done = time.perf_counter(), 0
    for prompt in prompts[:one_n]:
        done += plain_generate(unmerged.model, tokenizer, [prompt], one_new)
    sync()
    one_s = time.perf_counter() - t
    results["plain_one_at_a_time_4bit"] = emit({"step": "plain_one_at_a_time_4bit", "prompts": one_n,
                                                "new_tokens": one_new, "seconds": round(one_s, 2),
                                                "generated_tokens": done, "tokens_per_s": round(done / one_s, 2)})
    report(results)

    # The other dense variant, when time allows: the dequantised base with the adapter applied unmerged on
    # top (load_model(fold=False)); exact up to the base matmuls, slower by the LoRA kernels.
    if time.perf_counter() - STARTED < env("DEADLINE_S", 330):
        try:
            from peft import PeftModel

            dense_lora = PeftModel.from_pretrained(merge_to_dense(unmerged.model, fold_lora=False), adapter).eval()
            timed(dense_lora, "fast_unfolded")
            unfolded = top1_predictions(dense_lora, sequences, batch_size=agree_n)
            for suffix, margin in (("", 0.0), *((f"_margin_ge_{m}", m) for m in MARGINS)):
                rate = round(top1_agreement(ref, unfolded, min_margin=margin).rate, 4)
                results["agreement"][f"unfolded_vs_unmerged{suffix}"] = rate
            emit({"step": "agreement_unfolded", **{k: v for k, v in results["agreement"].items()
                                                   if k.startswith("unfolded")}})
        except Exception as exc:  # an optional measurement; the main ones are already printed
            emit({"step": "fast_unfolded", "failed": repr(exc)[:300]})
        report(results)
    else:
        emit({"step": "fast_unfolded", "skipped": "past DEADLINE_S"})


def free(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()


def report(results: dict) -> None:
    """The ratios, a short table, and eval_speed.json under $OUT."""
    fast_rate = results["fast"]["tokens_per_s"]
    rates = {k: results[k]["tokens_per_s"] for k in ("fast", "fast_unfolded", "plain_batched_4bit",
                                                    "plain_one_at_a_time_4bit") if k in results}
    results["ratios"] = emit({
        "step": "ratios",
        "fast_vs_plain_batched_4bit": round(fast_rate / rates["plain_batched_4bit"], 1),
        "fast_vs_one_at_a_time_4bit": round(fast_rate / rates["plain_one_at_a_time_4bit"], 1),
        **({"fast_unfolded_vs_plain_batched_4bit": round(rates["fast_unfolded"] / rates["plain_batched_4bit"], 1),
            "fast_unfolded_vs_one_at_a_time_4bit": round(rates["fast_unfolded"] / rates["plain_one_at_a_time_4bit"], 1)}
           if "fast_unfolded" in rates else {}),
        "projected_s_2000x200": {k: round(2000 * 200 / v, 1) for k, v in rates.items()}})
    print(f"\n{'what':<34}{'tokens/s':>12}{'seconds':>10}")
    for key in rates:
        print(f"{key:<34}{results[key]['tokens_per_s']:>12}{results[key]['seconds']:>10}")
    print(f"fast path: {results['prompts']} prompts x {results['new_tokens']} tokens in "
          f"{results['fast']['seconds']} s; top-1 agreement merged vs unmerged "
          f"{results['agreement']['merged_vs_unmerged']:.2%}", flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "eval_speed.json").write_text(json.dumps(results, indent=1))


def make_tokenizer(spm_model: str, out_dir: str) -> None:
    """Convert a SentencePiece BPE model into a Hugging Face tokenizer folder (Mistral layout)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    parts = SentencePieceExtractor(spm_model).extract(None)
    tok = Tokenizer(models.BPE(parts["vocab"], parts["merges"], unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(parts["additional_special_tokens"])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(out_dir)
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["make-tokenizer"]:
        make_tokenizer(*sys.argv[2:4])
    else:
        main()
