"""Which prompts decode together: length-sorted batches, sized by a row count or by free GPU memory.

The sizes are speed settings measured with benchmarks/eval_speed.py; none of them changes an answer.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline import gpu_memory
from pipeline.evaluate import memory
from pipeline.evaluate.reserved_cache import kv_bytes_per_token

CPU_ROWS = 8  # rows per batch on CPU
MAX_ROWS = 1024  # rows per batch on CUDA at most


def length_sorted_batches(lengths: Sequence[int], batch_size: int, *, max_new_tokens: int = 0,
                          max_tokens: int | None = None) -> list[list[int]]:
    """Prompt positions grouped into batches of similar length, longest first (memory trouble shows early).

    A batch holds at most batch_size rows and, with max_tokens, at most that many cache tokens
    (rows x (its longest prompt + max_new_tokens)).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (
                max_tokens is None
                or (len(batches[-1]) + 1) * (lengths[batches[-1][0]] + max_new_tokens) <= max_tokens):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def plan_batches(model: Any, lengths: Sequence[int], max_new_tokens: int, batch_size: int | None,
                 *, cap: int = MAX_ROWS, max_memory_gib: float | None = None) -> list[list[int]]:
    """Batches for these prompts: batch_size rows each when given; else CPU_ROWS rows on CPU, and on CUDA
    as many rows (up to cap) as the memory available holds caches for (pipeline.evaluate.memory: the
    card's free memory, under --max-memory what the cap leaves)."""
    if batch_size is not None:
        return length_sorted_batches(lengths, batch_size)
    device = next(model.parameters()).device
    if device.type != "cuda":
        return length_sorted_batches(lengths, CPU_ROWS)
    available = gpu_memory.read_card(device, max_memory_gib).available(gpu_memory.allocated(device))
    return budget_batches(lengths, max_new_tokens, available, kv_bytes_per_token(model), cap=cap)


def budget_batches(lengths: Sequence[int], max_new_tokens: int, available: int, kv_bytes: int,
                   *, cap: int = MAX_ROWS) -> list[list[int]]:
    """Length-sorted batches of at most cap rows whose caches (kv_bytes a token) fit in the available bytes,
    less the headroom decoding keeps (pipeline.evaluate.memory.cache_token_budget)."""
    return length_sorted_batches(lengths, cap, max_new_tokens=max_new_tokens,
                                 max_tokens=memory.cache_token_budget(available, kv_bytes))
