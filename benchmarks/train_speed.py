"""Training speed of `nlistral train`'s SFT path on a random-weight model of Mistral-7B-v0.3's shape.

A benchmark, not a test: it needs a CUDA GPU (and bitsandbytes for 4-bit). It builds the random
model (bf16, on the GPU) into MODEL_DIR once, loads it exactly as `nlistral train` does
(pipeline.train.model: NF4 4-bit, double quantization, bf16 compute), and trains LoRA r=32 on
q,k,v,o with pipeline.train.sft.build_sft_trainer (TRL SFTTrainer, the same callbacks and token
counter as a real run) for a few optimizer steps per variant. The only difference from a real
run is the data: token ids are random (no Mistral tokenizer here) with real lengths: a prompt of
105-150 tokens plus a target of 140-205 (a 125-190-token thought in its JSON), 250-350 in all,
prompt tokens masked from the loss as in real data.

It prints one JSON line per variant and a table: useful (non-padding) tokens/s, peak GPU memory,
and model-FLOPs utilisation against 989 TFLOP/s, counted like the baseline script: 4N FLOPs per
token (N = 7.25e9) plus attention 8 * layers * length * hidden, with the mean real length.
Give BASELINE_JSON (the file plain_qlora_baseline.py writes under $OUT) to print the ratio to the
baseline's useful tokens/s (its tokens/s * mean real length / 512).

Env: LAYERS HIDDEN INTER HEADS KV_HEADS VOCAB (model shape, default Mistral-7B), MODEL_DIR
(/tmp/m7b), VARIANTS ("name:key=value,key=value;..." over TrainConfig keys), WARM (2), STEPS (6),
BATCH (16, examples per optimizer step per GPU; a variant may set batch_size, also per GPU),
PROFILE (a variant name: print torch.profiler's top kernels for one extra step of it),
A variant may also name `config=PRESET` (a file of configs/: its keys instead of the r32 defaults below, as
`nlistral train --config PRESET` reads it; BATCH is then the preset's batch) and `budget_gib=G` (for that
variant, torch.cuda.set_per_process_memory_fraction stands in for a card of G GiB, and the run plans its
checkpointing within max_memory_gib=G unless the variant names it). Liger kernels
(`kernels=liger`) patch the model in place for the rest of the process: list the variants without them first.
BUILD_ONLY=1 (build the model and exit), TAG (names $OUT/train_speed_TAG.json).
Several GPUs: accelerate launch --multi_gpu --num_processes 2 benchmarks/train_speed.py
(BATCH is per GPU, so each GPU does the same work as alone).
"""
from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE = {k: int(os.environ.get(k, d)) for k, d in (("LAYERS", 32), ("HIDDEN", 4096), ("INTER", 14336),
                                                     ("HEADS", 32), ("KV_HEADS", 8), ("VOCAB", 32768))}
MODEL_DIR = Path(os.environ.get("MODEL_DIR", "/tmp/m7b"))
DEFAULT_VARIANTS = ("ckpt-m16:micro_batch_size=16,gradient_checkpointing=full;"
                    "nockpt-m6:micro_batch_size=6,batch_size=24,gradient_checkpointing=none")
PEAK_FLOPS = 989e12


def build_model() -> None:
    """The random-weight model of the configured shape, built in bf16 on the GPU and saved once."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    if (MODEL_DIR / "config.json").exists():
        return
    config = MistralConfig(vocab_size=SHAPE["VOCAB"], hidden_size=SHAPE["HIDDEN"], intermediate_size=SHAPE["INTER"],
                           num_hidden_layers=SHAPE["LAYERS"], num_attention_heads=SHAPE["HEADS"],
                           num_key_value_heads=SHAPE["KV_HEADS"], max_position_embeddings=32768,
                           rope_theta=1e6, sliding_window=None, tie_word_embeddings=False)
    start = time.time()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = MistralForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(MODEL_DIR)
    del model
    print(f"built and saved the random model in {time.time() - start:.0f}s", flush=True)


def synthetic_rows(n: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Rows like pipeline.train.data makes: BOS, prompt (masked), target (trained), real lengths."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt, target = rng.randint(105, 150), rng.randint(140, 205)
        total = min(350, max(250, prompt + target))
        target = total - prompt
        ids = [1] + [rng.randrange(3, SHAPE["VOCAB"]) for _ in range(total - 1)]
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


def special_tokens_only():
    """A tokenizer of <unk>, <s>, </s> only: the trainer needs its pad/eos ids, the rows are already ids."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>")


def parse_variants(text: str) -> list[tuple[str, dict[str, str]]]:
    """"name:key=value,key=value;..." -> [(name, {key: value})]."""
    out = []
    for chunk in filter(None, (c.strip() for c in text.split(";"))):
        name, _, spec = chunk.partition(":")
        out.append((name, dict(kv.split("=", 1) for kv in spec.split(",") if kv)))
    return out


def main() -> None:
    import torch

    from pipeline.train.attention_check import self_check
    from pipeline.train.checkpointing import setup_layers
    from pipeline.train.config import CONFIG_DIR, load_config
    from pipeline.train.hardware import detect
    from pipeline.train.model import load_model, plan
    from pipeline.train.sft import build_sft_trainer
    from pipeline.train.tracking import Throughput, rate

    hw = detect()
    if hw.is_main:
        build_model()
    if os.environ.get("BUILD_ONLY"):
        return
    warm, steps = int(os.environ.get("WARM", "2")), int(os.environ.get("STEPS", "6"))
    per_gpu_batch = int(os.environ.get("BATCH", "16"))
    variants = parse_variants(os.environ.get("VARIANTS", DEFAULT_VARIANTS))
    largest = max([per_gpu_batch] + [int(v["batch_size"]) for _, v in variants if "batch_size" in v])
    rows = synthetic_rows(largest * hw.world_size * (warm + steps + 2))
    mean_len = sum(len(r["input_ids"]) for r in rows) / len(rows)
    if hw.is_main and hw.cuda:
        try:
            print(json.dumps({"varlen_self_check_rel_err": self_check()}), flush=True)
        except Exception as exc:  # report and let the varlen variants fail visibly
            print(json.dumps({"varlen_self_check_error": repr(exc)[:300]}), flush=True)
    tokenizer = special_tokens_only()
    shape = ["method=sft", "lora_r=32", "lora_alpha=64", "lora_dropout=0.05",
             f"batch_size={per_gpu_batch * hw.world_size}"]
    run = ["early_stopping_patience=0", "eval_fraction=0", f"max_steps={warm + steps}", "warmup_steps=1",
           "logging_steps=1000", "save_steps=100000", "data=synthetic", f"base_model={MODEL_DIR}"]
    model = None
    results = []
    for name, overrides in variants:
        if "batch_size" in overrides:  # per GPU, like BATCH
            overrides["batch_size"] = str(int(overrides["batch_size"]) * hw.world_size)
        preset = overrides.pop("config", None)
        budget = overrides.pop("budget_gib", None)
        if budget is not None and hw.cuda:
            torch.cuda.set_per_process_memory_fraction(
                min(1.0, float(budget) * 2**30 / torch.cuda.get_device_properties(0).total_memory))
        sets = run + [f"{k}={v}" for k, v in overrides.items()]
        if budget is not None and "max_memory_gib" not in overrides:  # what the run plans its memory in
            sets.append(f"max_memory_gib={budget}")
        config = (load_config(CONFIG_DIR / f"{preset}.yaml", sets) if preset else load_config(None, shape + sets))
        run_plan = plan(config, hw)
        if model is None:
            model = load_model(str(MODEL_DIR), run_plan, hw)
        elif model.config._attn_implementation != run_plan.attention:
            model.set_attn_implementation(run_plan.attention)
        if hw.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        meter = Throughput()
        profiling = os.environ.get("PROFILE") == name
        if profiling:
            config.max_steps += 1
        result = {"variant": name, **({"config": preset} if preset else {}), **overrides,
                  **({"budget_gib": float(budget)} if budget is not None else {}),
                  "world_size": hw.world_size, "gpu": hw.gpu_name, "plan": run_plan.note,
                  "mean_len": round(mean_len, 1)}
        trainer = None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                extra = [meter, ProfileStep(warm + steps + 1)] if profiling and hw.is_main else [meter]
                trainer = build_sft_trainer(config, model, tokenizer, run_plan, hw, rows, [], Path(tmp), extra)
                layers, _ = setup_layers(trainer, config, hw, rows)  # checkpointing and compile, as the runner does
                result["checkpointing"] = layers.note
                meter.trainer = trainer
                start = time.time()
                trainer.train()
                result["wall_s"] = round(time.time() - start, 1)
            tok_s = rate(meter.steps[warm - 1:warm - 1 + steps])
            flops_per_token = 4 * 7.25e9 * SHAPE["LAYERS"] / 32 + 8 * SHAPE["LAYERS"] * mean_len * SHAPE["HIDDEN"]
            peak = torch.cuda.max_memory_allocated() / 2**30 if hw.cuda else 0.0
            result.update(useful_tok_s=tok_s, peak_gib=round(peak, 2),
                          mfu_vs_989=round(tok_s * flops_per_token / PEAK_FLOPS, 3) if tok_s else None,
                          step_s=[round(s, 3) for _, s in meter.steps])
        except Exception as exc:  # out of memory and the like: record it, go on with the next variant
            result["error"] = repr(exc)[:300]
        finally:
            if budget is not None and hw.cuda:
                torch.cuda.set_per_process_memory_fraction(1.0)
            if trainer is not None:
                model = _strip_adapter(trainer)
            del trainer
            if hw.cuda:
                torch.cuda.empty_cache()
        if hw.is_main:
            print(json.dumps(result), flush=True)
        results.append(result)
    if hw.is_main:
        _report(results, mean_len)


def _profile_callback_class():
    from transformers import TrainerCallback

    class ProfileStep(TrainerCallback):
        """torch.profiler over one optimizer step: the top GPU kernels, and CPU vs GPU time."""

        def __init__(self, step: int) -> None:
            self.step, self.prof = step, None

        def on_step_begin(self, args, state, control, **kwargs):
            import torch

            if state.global_step + 1 == self.step:
                acts = [torch.profiler.ProfilerActivity.CPU]
                if torch.cuda.is_available():
                    acts.append(torch.profiler.ProfilerActivity.CUDA)
                self.prof = torch.profiler.profile(activities=acts)
                self.prof.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            import torch

            if self.prof is not None and state.global_step == self.step:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.prof.__exit__(None, None, None)
                averages = self.prof.key_averages()
                for key in ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"):
                    try:
                        print(averages.table(sort_by=key, row_limit=22, max_name_column_width=60), flush=True)
                        break
                    except Exception:  # the key's name differs across torch versions
                        continue
                self.prof = None

    return ProfileStep


ProfileStep = _profile_callback_class()


def _strip_adapter(trainer):
    """The base model again, without LoRA layers or checkpointing hooks, for the next variant."""
    model = trainer.model
    model = getattr(model, "module", model)
    base = model.unload() if hasattr(model, "unload") else model
    if getattr(base, "is_gradient_checkpointing", False):
        base.gradient_checkpointing_disable()
    if hasattr(base, "disable_input_require_grads"):
        try:
            base.disable_input_require_grads()
        except AttributeError:
            pass
    return base


def _report(results: list[dict], mean_len: float) -> None:
    baseline_path = os.environ.get("BASELINE_JSON")
    baseline_useful = None
    if baseline_path and Path(baseline_path).exists():
        base = json.loads(Path(baseline_path).read_text())
        ref = next((b for b in base if b.get("r") == 32), base[0] if base else None)
        if ref:
            baseline_useful = ref["tok_s"] * mean_len / 512
            print(json.dumps({"baseline": ref, "baseline_useful_tok_s": round(baseline_useful, 1),
                              "mean_len": round(mean_len, 1)}), flush=True)
    print(f"\n{'variant':<22}{'GPUs':>5}{'useful tok/s':>14}{'x baseline':>12}{'peak GiB':>10}{'MFU':>7}")
    for r in results:
        tok = r.get("useful_tok_s")
        ratio = f"{tok / baseline_useful:.2f}" if tok and baseline_useful else "-"
        print(f"{r['variant']:<22}{r['world_size']:>5}{tok if tok else r.get('error', '-')[:14]!s:>14}{ratio:>12}"
              f"{r.get('peak_gib', '-')!s:>10}{r.get('mfu_vs_989', '-')!s:>7}")
    out = os.environ.get("OUT")
    if out:
        tag = os.environ.get("TAG") or (f"{results[0]['world_size']}gpu" if results else "run")
        name = f"train_speed_{tag}.json"
        Path(out, name).write_text(json.dumps({"results": results, "baseline_useful_tok_s": baseline_useful,
                                               "mean_len": mean_len}, indent=1))


if __name__ == "__main__":
    main()
