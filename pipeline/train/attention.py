"""Variable-length ("varlen") attention for packed batches, registered as a transformers backend.

With packing, TRL's collator concatenates a micro-batch's examples into one row and passes the
example boundaries as `cu_seq_lens_q/k` (cumulative lengths) and `max_length_q/k`. This backend
hands them to PyTorch's own FlashAttention varlen kernel (`aten._flash_attention_forward`, with
native grouped-query heads), so no token attends across examples and no padding is computed: the
same result as running each example alone, at the cost of one kernel. flash-attn is not needed.
Without boundaries (a padded batch, generation) it falls back to transformers' SDPA path.
On CPU the kernel is a per-example SDPA loop: slow, but it lets the tests check the plumbing.
"""
from __future__ import annotations

import itertools
from typing import Any

NAME = "nlistral_varlen"


def register() -> str:
    """Register the backend (idempotent) and return its name for `attn_implementation`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, varlen_attention_forward)
    # The fallback path is SDPA, so it needs SDPA's masks; the varlen path ignores the mask.
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def varlen_attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                             dropout: float = 0.0, scaling: float | None = None,
                             **kwargs: Any) -> tuple[Any, Any]:
    """transformers attention signature: q/k/v are (batch, heads, seq, dim); returns (batch, seq, heads, dim)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_q: Any = kwargs.get("cu_seq_lens_q")
    cu_k: Any = kwargs.get("cu_seq_lens_k")
    window = kwargs.get("sliding_window") or getattr(module.config, "sliding_window", None)
    max_q: Any = kwargs.get("max_length_q")
    max_k: Any = kwargs.get("max_length_k")
    if cu_q is None or query.shape[0] != 1 or query.shape[2] != key.shape[2] or (window and max_k > window):
        fallback: tuple[Any, Any] = sdpa_attention_forward(module, query, key, value, attention_mask,
                                                           dropout=dropout, scaling=scaling, **kwargs)
        return fallback
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, dim)
    kernel = flash_varlen if q.is_cuda else reference_varlen
    out = kernel(q, k, v, cu_q.to(q.device, dtype=torch.int32), cu_k.to(q.device, dtype=torch.int32),
                 int(max_q), int(max_k), scaling)
    return out.unsqueeze(0), None


def flash_varlen(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int,
                 scale: float | None) -> Any:
    """PyTorch's FlashAttention-2 varlen forward (differentiable: autograd has its backward)."""
    import torch

    out = torch.ops.aten._flash_attention_forward(q, k, v, cu_q, cu_k, max_q, max_k, 0.0, True, False,
                                                  scale=scale)
    return out[0]


def reference_varlen(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int,
                     scale: float | None) -> Any:
    """The same function, one SDPA call per example: the CPU path and the GPU self-check's reference."""
    import torch
    import torch.nn.functional as F

    groups = q.shape[1] // k.shape[1]
    bounds = cu_q.tolist()
    pieces = []
    for start, end in itertools.pairwise(bounds):
        qs, ks, vs = (t[start:end].transpose(0, 1).unsqueeze(0) for t in (q, k, v))
        ks, vs = ks.repeat_interleave(groups, dim=1), vs.repeat_interleave(groups, dim=1)
        pieces.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale)[0].transpose(0, 1))
    return torch.cat(pieces, dim=0)
