"""A GPU self-check of the varlen attention kernel against its per-example reference (benchmarks run it)."""
from __future__ import annotations

from pipeline.train.attention import flash_varlen, reference_varlen


def self_check(device: str = "cuda") -> float:
    """Max relative error of the flash varlen path against the per-example reference (forward and grads)."""
    import torch

    torch.manual_seed(0)
    lengths = [37, 300, 1, 129]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    total = sum(lengths)
    q, k, v = (torch.randn(total, h, 128, device=device, dtype=torch.bfloat16, requires_grad=True)
               for h in (32, 8, 8))
    grad = torch.randn(total, 32, 128, device=device, dtype=torch.bfloat16)
    results = []
    for kernel in (flash_varlen, reference_varlen):
        for t in (q, k, v):
            t.grad = None
        out = kernel(q, k, v, cu, cu, max(lengths), max(lengths), None)
        out.backward(grad)
        results.append([out.detach().float()] + [t.grad.float() for t in (q, k, v) if t.grad is not None])
    return max(float(((fast - ref).norm() / ref.norm()).item()) for fast, ref in zip(*results, strict=True))
