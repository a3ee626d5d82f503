"""Loading the base model and tokenizer for training, and the LoRA config: one place for SFT and DPO.

On CUDA with bitsandbytes the base is loaded in NF4 4-bit with double quantization and bf16
compute (QLoRA, set up in pipeline.quantization); on CPU it is plain float32 LoRA, and the log
says so. The tokenizer is never extended: padding reuses an existing token (<unk>, else </s>), so
the embeddings keep their size and the adapter holds LoRA weights only.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.quantization import BaseLoad, nf4_load_kwargs
from pipeline.train import attention
from pipeline.train.config import TINY_MODEL, ConfigError, TrainConfig
from pipeline.train.hardware import Hardware, is_main_process


@dataclass(frozen=True)
class Plan:
    """How this run loads and trains the model on this machine (logged and stored with the run)."""

    quantized: bool
    attention: str  # the attn_implementation name passed to transformers
    optimizer: str
    bf16: bool
    note: str  # one line for the log
    kernels: str = "none"  # liger: TRL's use_liger_kernel (fused RMSNorm, SwiGLU, RoPE) | none


def plan(config: TrainConfig, hw: Hardware) -> Plan:
    """Decide quantization, attention, optimizer and precision; raise ConfigError where impossible."""
    if config.quantization == "nf4" and not (hw.cuda and hw.bitsandbytes):
        raise ConfigError("quantization: nf4 needs a CUDA GPU and bitsandbytes (pip install bitsandbytes); "
                          "use quantization: auto or none on this machine")
    quantized = config.quantization == "nf4" or (config.quantization == "auto" and hw.cuda and hw.bitsandbytes)
    if config.optimizer == "paged_adamw_8bit" and not (hw.cuda and hw.bitsandbytes):
        raise ConfigError("optimizer: paged_adamw_8bit needs a CUDA GPU and bitsandbytes; use optimizer: auto")
    optimizer = config.optimizer
    if optimizer == "auto":
        optimizer = "paged_adamw_8bit" if hw.cuda and hw.bitsandbytes else "adamw_torch"
    packed = config.packing and config.method != "dpo"
    attn = config.attention
    if attn == "auto":
        attn = "varlen" if hw.cuda and packed else "sdpa"
    name = attention.register() if attn == "varlen" else attn
    if not hw.cuda:
        note = "CPU: plain LoRA in float32 (no CUDA, so no 4-bit QLoRA)"
    elif quantized:
        note = "CUDA: QLoRA, NF4 4-bit base with double quantization and bf16 compute"
    else:
        note = "CUDA: LoRA on a bf16 base (bitsandbytes missing or quantization: none)"
    kernels, why = decide_kernels(config, hw)
    return Plan(quantized=quantized, attention=name, optimizer=optimizer, bf16=hw.cuda, kernels=kernels,
                note=f"{note}; attention {attn}; optimizer {optimizer}; {why}")


def decide_kernels(config: TrainConfig, hw: Hardware) -> tuple[str, str]:
    """Which fused kernels the run uses (liger | none), and why (for the plan's log line)."""
    if config.kernels == "none":
        return "none", "kernels none (set in the config)"
    missing = ("no CUDA" if not hw.cuda else None) or (
        "liger-kernel is not installed: pip install liger-kernel" if not hw.liger else None)
    if config.kernels == "liger":
        if missing:
            raise ConfigError(f"kernels: liger cannot run here ({missing}); use kernels: auto or none")
        return "liger", "kernels liger (fused RMSNorm, SwiGLU, RoPE)"
    if config.method == "dpo":
        return "none", "kernels auto: none (TRL's DPO trainer swaps in its own Liger loss; not measured)"
    if missing:
        return "none", f"kernels auto: none ({missing})"
    # auto turns Liger on once benchmarks/train_gpu.sh has measured it faster for the presets on a GPU
    return "none", ("kernels auto: none (Liger's kernels are not yet measured with this pipeline's 4-bit, packed "
                    "runs; kernels: liger tries them)")


def base_model_path(config: TrainConfig, output_dir: Path) -> str:
    """The model to load; "tiny-random" builds (once) a tiny random Mistral into output_dir/base_model."""
    if config.base_model != TINY_MODEL:
        return config.base_model
    from pipeline.tiny_model import TINY_DIR_MARKER, build_tiny_model

    target = output_dir / "base_model"
    if (target / TINY_DIR_MARKER).exists():
        return str(target)
    if is_main_process():  # one process builds it into a temporary folder, then renames
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        build_tiny_model(partial, seed=config.seed)
        if target.exists():  # left half-built by an interrupted run
            shutil.rmtree(target)
        partial.replace(target)
        return str(target)
    deadline = time.monotonic() + 600
    while not (target / TINY_DIR_MARKER).exists():  # the other processes wait for the rename
        if time.monotonic() > deadline:
            raise TimeoutError(f"{target}: the main process did not build the tiny model within 10 minutes")
        time.sleep(0.5)
    return str(target)


def load_tokenizer(path: str) -> Any:
    """The base model's tokenizer, padding with an existing token (never a new one)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_model(path: str, run_plan: Plan, hw: Hardware) -> Any:
    """The frozen base model, 4-bit on CUDA when planned, on this process's GPU."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if run_plan.bf16 else torch.float32,
                              "attn_implementation": run_plan.attention}
    if hw.cuda:
        kwargs["device_map"] = {"": hw.local_rank}
    if run_plan.quantized:  # planned only on CUDA (bf16) with bitsandbytes present
        kwargs.update(nf4_load_kwargs())
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    return model


def base_load(run_plan: Plan) -> BaseLoad:
    """How load_model loads the base under run_plan, recorded beside the adapter for evaluation."""
    return BaseLoad(quantization="nf4" if run_plan.quantized else "none",
                    dtype="bfloat16" if run_plan.bf16 else "float32")


# compile: auto. Measured on one H200 (benchmarks/results/train_speed.md, run 2): compiling took about 61 s and
# then ran 11,389 useful tokens/s against 9,624 without (micro-batch 24, checkpointing): 1.18x. It pays once
# the uncompiled run would take 61 / (1 - 1 / 1.18) = 394 s, about 3.8M tokens at 9,624 tokens/s; rounded up.
COMPILE_PAYS_TOKENS = 4_000_000


def decide_compile(config: TrainConfig, hw: Hardware, tokens_to_train: int) -> tuple[bool, str]:
    """Whether this run compiles its decoder layers, and why (one line for the log)."""
    if config.compile != "auto":
        return config.compile == "on", f"compile: {config.compile} (set in the config)"
    if config.method == "dpo":
        return False, "compile auto: off (DPO's padded pairs were not measured with it)"
    if not hw.cuda:
        return False, "compile auto: off (it was measured to pay on CUDA only)"
    if hw.world_size > 1:
        return False, "compile auto: off (measured on one GPU only; --set compile=on to try it under DDP)"
    if tokens_to_train < COMPILE_PAYS_TOKENS:
        return False, (f"compile auto: off ({tokens_to_train:,} tokens to train; compiling, about 1 min, pays "
                       f"from about {COMPILE_PAYS_TOKENS:,})")
    return True, (f"compile auto: on ({tokens_to_train:,} tokens to train; compiling takes about 1 min and then "
                  "runs about 18 % faster)")


def compile_decoder_layers(model: Any) -> int:
    """torch.compile (dynamic shapes) every decoder layer of a (PEFT-wrapped) model; returns how many."""
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def lora_config(config: TrainConfig) -> Any:
    """LoRA on the configured projections, no bias, no extra trainable modules."""
    from peft import LoraConfig

    if config.lora_alpha is None:  # config.check refuses it; a config built without the check lands here
        raise ConfigError("lora_alpha is missing: set it (usually 2 * lora_r)")
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets), bias="none", task_type="CAUSAL_LM")


def adapter_report(adapter_dir: Path) -> dict[str, Any]:
    """Size of the saved adapter and proof that it holds LoRA weights only (raises otherwise)."""
    from safetensors import safe_open

    weights = adapter_dir / "adapter_model.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        keys = list(fh.keys())
    foreign = [k for k in keys if "lora_" not in k]
    if foreign:
        raise RuntimeError(f"{weights}: the adapter holds non-LoRA weights {foreign[:3]}: the embeddings or "
                           "another module were trained or resized, which must not happen")
    size = sum(p.stat().st_size for p in adapter_dir.iterdir() if p.is_file())
    return {"adapter_mb": round(size / 1e6, 2), "adapter_tensors": len(keys)}
