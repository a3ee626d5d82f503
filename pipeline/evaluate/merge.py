"""Fold a LoRA adapter into the dequantised 4-bit base: one dense model computing what was trained.

QLoRA trains the adapter on top of NF4 weights, so the function to evaluate is dequant(W_nf4) + BA,
not W_bf16 + BA. peft's own merge into a 4-bit layer re-quantises the sum (lossy); here the sum is
kept in the compute dtype. `top1_agreement` checks the result against the unmerged model. A tied output
head (SmolLM2, Llama-3.2-1B, small Qwen and Gemma) is tied again to the dense embeddings.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError


class MergeError(PipelineError, ValueError):
    """The adapter or base layer cannot be folded into dense weights (the message says what to use)."""


def is_4bit(module: Any) -> bool:
    """Whether a layer holds bitsandbytes 4-bit weights."""
    weight = getattr(module, "weight", None)
    return weight is not None and getattr(weight, "quant_state", None) is not None


def base_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the model itself when it is not wrapped)."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


def dense_weight(layer: Any) -> Any:
    """A linear layer's weight as a plain tensor: dequantised when it is 4-bit, as is otherwise."""
    if is_4bit(layer):
        from bitsandbytes import functional as bnb_functional

        data, state = layer.weight.data, layer.weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):  # bitsandbytes repacks CPU weights on first use
            data, state = bnb_functional._convert_weight_packed_for_cpu_inverse(data, state)
        return bnb_functional.dequantize_4bit(data, state)
    if type(layer.weight).__name__ not in ("Parameter", "Tensor"):
        raise MergeError(f"cannot read {type(layer).__name__} weights of type {type(layer.weight).__name__}; "
                         "evaluate with --no-merge")
    return layer.weight.data


def merged_state_dict(model: Any, dtype: Any, *, fold_lora: bool = True) -> dict[str, Any]:
    """Every base weight as a dense tensor in dtype, LoRA deltas added to their layers (unless fold_lora=False)."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    base = model
    if isinstance(model, PeftModel):
        for name, cfg in model.peft_config.items():
            peft_type: Any = getattr(cfg, "peft_type", None)  # a PeftType enum
            if peft_type is None or peft_type.value != "LORA":
                raise MergeError(f"adapter {name!r} is {cfg.peft_type}, not LoRA; evaluate with --no-merge")
            if getattr(cfg, "use_dora", False):
                raise MergeError(f"adapter {name!r} uses DoRA, which this merge does not fold; use --no-merge")
        base = model.get_base_model()
    state: dict[str, Any] = {}
    done: list[str] = []
    for name, module in base.named_modules():
        if any(name.startswith(prefix) for prefix in done):
            continue
        if isinstance(module, LoraLayer):
            inner = module.get_base_layer()
            if not isinstance(inner, torch.nn.Linear) and not is_4bit(inner):
                raise MergeError(f"LoRA on {name} ({type(inner).__name__}) is not a linear layer; use --no-merge")
            weight = dense_weight(inner).float()
            lora: Any = module  # the LoraLayer subclasses (Linear, Linear4bit, ...) compute the delta
            for adapter in lora.active_adapters if fold_lora else ():
                if adapter in lora.lora_A:
                    weight = weight + lora.get_delta_weight(adapter).float()
        elif is_4bit(module):
            inner, weight = module, dense_weight(module)
        else:
            continue
        state[f"{name}.weight"] = weight.to(dtype)
        if getattr(inner, "bias", None) is not None:
            state[f"{name}.bias"] = inner.bias.data.to(dtype)
        done.append(name + ".")
    for name, param in base.named_parameters():
        if not any(name.startswith(prefix) for prefix in done):
            state[name] = param.data.to(dtype)
    return state


def merge_to_dense(model: Any, dtype: Any = None, *, fold_lora: bool = True) -> Any:
    """A new plain transformers model (same device) whose weights are the dequantised ones, LoRA folded in.

    With fold_lora=False the result is the dequantised base alone (wrap it in the adapter again to
    compute base + LoRA unmerged, with dense base matmuls).
    """
    import torch
    from transformers import AutoModelForCausalLM

    base = base_model(model)
    dtype = dtype or _compute_dtype(base)
    state = merged_state_dict(model, dtype, fold_lora=fold_lora)
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = dtype
    auto: Any = AutoModelForCausalLM  # from_config is untyped
    with torch.device("meta"):
        dense = auto.from_config(config, dtype=dtype)
    missing, unexpected = dense.load_state_dict(state, strict=False, assign=True)
    tied = _tied_keys(dense)
    if unexpected or set(missing) - tied:
        raise MergeError(f"the dense model does not match the base: missing {sorted(set(missing) - tied)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]}; evaluate with --no-merge")
    if missing:  # named_parameters() lists a tied weight once: point the head at the embeddings again
        dense.tie_weights()
    buffers = dict(base.named_buffers())
    for name, _ in list(dense.named_buffers()):  # rotary tables etc. are not in the state dict
        owner, _, attr = name.rpartition(".")
        setattr(dense.get_submodule(owner) if owner else dense, attr, buffers[name])
    dense.requires_grad_(False)
    dense.generation_config = copy.deepcopy(base.generation_config)
    return dense.eval()


def _tied_keys(model: Any) -> set[str]:
    """The parameter names that share their tensor with another (a tied output head), as the model declares."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return set()
    declared: Any = getattr(model, "_tied_weights_keys", None) or {}  # a dict in transformers 5, a list before
    return set(declared)


def _compute_dtype(model: Any) -> Any:
    """The dtype the 4-bit layers compute in (bf16 for QLoRA), else the model's own dtype."""
    for module in model.modules():
        if is_4bit(module) and getattr(module, "compute_dtype", None) is not None:
            return module.compute_dtype
    return model.dtype


@dataclass(frozen=True)
class Agreement:
    """How often two models' next-token top-1 predictions agree over the same positions."""

    positions: int
    agreeing: int

    @property
    def rate(self) -> float:
        return self.agreeing / self.positions if self.positions else 0.0


@dataclass(frozen=True)
class Top1:
    """A model's argmax next token at each position of one sequence, and its margin over the runner-up."""

    tokens: list[int]
    margins: list[float]  # top-1 minus top-2 logit (float32)


def top1_predictions(model: Any, sequences: Sequence[Sequence[int]], *, batch_size: int = 8) -> list[Top1]:
    """The argmax next token at every position of each sequence (logits computed in float32)."""
    import torch

    base = base_model(model)
    device = next(model.parameters()).device
    head = dense_weight(base.get_output_embeddings()).float()
    out: list[Top1] = []
    with torch.inference_mode():
        for start in range(0, len(sequences), batch_size):
            chunk = [list(s) for s in sequences[start:start + batch_size]]
            longest = max(len(s) for s in chunk)
            # Right padding needs no mask: a causal model's real positions never see the pads after them.
            ids = torch.tensor([s + [0] * (longest - len(s)) for s in chunk], device=device)
            hidden = base.get_decoder()(input_ids=ids).last_hidden_state
            top2 = (hidden.float() @ head.T).topk(2, dim=-1)
            tokens, margins = top2.indices[..., 0].tolist(), (top2.values[..., 0] - top2.values[..., 1]).tolist()
            out.extend(Top1(t[: len(s)], m[: len(s)]) for t, m, s in zip(tokens, margins, chunk))
    return out


def top1_agreement(reference: Sequence[Top1], other: Sequence[Top1], *, min_margin: float = 0.0) -> Agreement:
    """Agreement with a reference over the positions where the reference's top-1 margin is at least min_margin."""
    if [len(x.tokens) for x in reference] != [len(x.tokens) for x in other]:
        raise ValueError("the two predictions cover different positions")
    pairs = [(x, y) for r, o in zip(reference, other) for x, y, m in zip(r.tokens, o.tokens, r.margins)
             if m >= min_margin]
    return Agreement(len(pairs), sum(x == y for x, y in pairs))
