"""Preference losses implemented from their papers, and the β warm-up schedule.

Notation, per pair i: c_i = log πθ(y_w|x) − log π_ref(y_w|x) and r_i = log πθ(y_l|x) − log π_ref(y_l|x),
the chosen and rejected log-ratios (sequence log-probabilities summed over the target tokens).

- DPO (Rafailov et al., arXiv 2305.18290): ℓ_i = −log σ(β (c_i − r_i)).
- Cal-DPO (Xiao et al., arXiv 2412.14516): the contrastive term plus a squared calibration of each
  log-ratio to the reward scale r/β with r(y_w) = +1/2, r(y_l) = −1/2:
      ℓ_i = −log σ(c_i − r_i) + (c_i − 1/(2β))² + (r_i + 1/(2β))².
- Dr-DPO (Wu et al., arXiv 2407.07880): distributionally robust DPO over the batch,
      L = −β′ · log( (1/n) Σ_i exp(−ℓ_i^DPO / β′) ),
  so pairs with a large DPO loss (likely mislabeled) get weights ∝ exp(−ℓ_i/β′) in the gradient;
  β′ → ∞ gives plain DPO back.
- β warm-up: β(step) = β_start + (β − β_start) · min(1, step / N), linear over N optimizer steps.
"""
from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback


def dpo_loss(chosen: Any, rejected: Any, beta: float) -> Any:
    """Per-pair sigmoid DPO loss."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * (chosen - rejected))


def cal_dpo_loss(chosen: Any, rejected: Any, beta: float) -> Any:
    """Per-pair Cal-DPO loss (arXiv 2412.14516)."""
    import torch.nn.functional as F

    target = 1.0 / (2.0 * beta)
    return -F.logsigmoid(chosen - rejected) + (chosen - target) ** 2 + (rejected + target) ** 2


def dr_dpo_loss(chosen: Any, rejected: Any, beta: float, beta_prime: float) -> Any:
    """Batch Dr-DPO loss (arXiv 2407.07880), a scalar; log-mean-exp computed stably."""
    import torch

    per_pair = dpo_loss(chosen, rejected, beta)
    n = per_pair.numel()
    return -beta_prime * (torch.logsumexp(-per_pair / beta_prime, dim=0) - math.log(n))


def beta_at(step: int, beta: float, beta_start: float, warmup_steps: int) -> float:
    """β after `step` optimizer steps under the linear warm-up (β itself when warmup_steps is 0)."""
    if warmup_steps <= 0:
        return beta
    return beta_start + (beta - beta_start) * min(1.0, step / warmup_steps)


class BetaWarmup(TrainerCallback):
    """Sets trainer.beta before every optimizer step (also right after a resume)."""

    def __init__(self, beta: float, beta_start: float, warmup_steps: int) -> None:
        self.beta, self.beta_start, self.warmup_steps = beta, beta_start, warmup_steps
        self.trainer: Any = None  # attached by the runner once the trainer exists

    def _apply(self, state: Any) -> None:
        if self.trainer is not None:
            self.trainer.beta = beta_at(state.global_step, self.beta, self.beta_start, self.warmup_steps)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._apply(state)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._apply(state)
