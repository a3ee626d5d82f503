"""How much GPU memory evaluation may use, and what fits in it: the card's free memory (capped by
--max-memory), whether the unpacked bf16 copy of a 4-bit base fits beside room for decoding, and how many
cache tokens a decoding batch may take.

The margins are stated, not tuned on one card: caches and activations keep a quarter of what is
available (at most CACHE_RESERVE_BYTES, the headroom the H200 runs of benchmarks/eval_speed.py used), and
an unpacked base must leave that quarter free.
"""
from __future__ import annotations

from typing import Any

from pipeline.gpu_memory import GIB

CACHE_RESERVE_BYTES = 12 * GIB  # at most: one prefill chunk's activations, logits, allocator slack
HEADROOM = 0.25  # of the available memory, kept for what decoding allocates beyond weights and caches


def reserve(available: int) -> int:
    """What decoding keeps free beyond its caches: a quarter of what is available, at most CACHE_RESERVE_BYTES."""
    return min(CACHE_RESERVE_BYTES, int(available * HEADROOM))


def cache_token_budget(available: int, kv_bytes_per_token: int) -> int:
    """Cache tokens (rows x positions) a batch may reserve in the available bytes (at least 1)."""
    return max(1, (available - reserve(available)) // kv_bytes_per_token)


def unpacked_fits(dense_bytes: int, available: int) -> bool:
    """Whether a bf16 copy of dense_bytes fits in the available bytes and still leaves the headroom."""
    return dense_bytes <= available * (1 - HEADROOM)


def dense_bytes(base_path: str, itemsize: int = 2) -> int:
    """Bytes of the base's weights held dense (bf16 by default), counted on the meta device: nothing is loaded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_path)
    factory: Any = AutoModelForCausalLM  # from_config is untyped
    with torch.device("meta"):
        model = factory.from_config(config)
    seen: set[int] = set()
    count = 0
    for param in model.parameters():  # a tied head shares its embedding's tensor: counted once
        if id(param) not in seen:
            seen.add(id(param))
            count += param.numel()
    return count * itemsize
