"""The preference losses against their formulas computed by hand, and the β warm-up schedule."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.train import losses


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_dpo_loss_is_minus_log_sigmoid_of_the_scaled_margin():
    chosen, rejected = torch.tensor([1.5, -0.2]), torch.tensor([0.5, 0.3])
    got = losses.dpo_loss(chosen, rejected, beta=0.1)
    want = [-math.log(_sigmoid(0.1 * (1.5 - 0.5))), -math.log(_sigmoid(0.1 * (-0.2 - 0.3)))]
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_cal_dpo_adds_the_calibration_to_plus_minus_one_over_two_beta():
    chosen, rejected, beta = torch.tensor([2.0]), torch.tensor([-1.0]), 0.25
    want = -math.log(_sigmoid(2.0 - (-1.0))) + (2.0 - 2.0) ** 2 + (-1.0 + 2.0) ** 2  # 1/(2β) = 2
    assert losses.cal_dpo_loss(chosen, rejected, beta).item() == pytest.approx(want, rel=1e-6)
    # Calibrated log-ratios minimise the squared terms: moving the chosen one away costs more.
    at_target = losses.cal_dpo_loss(torch.tensor([2.0]), torch.tensor([-2.0]), beta)
    off_target = losses.cal_dpo_loss(torch.tensor([3.0]), torch.tensor([-2.0]), beta)
    assert off_target > at_target


def test_dr_dpo_is_the_robust_log_mean_exp_and_tends_to_dpo():
    chosen = torch.tensor([1.0, 0.0, -3.0], dtype=torch.float64)
    rejected = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64)
    per_pair = losses.dpo_loss(chosen, rejected, 0.5)
    for beta_prime in (0.5, 1.0, 4.0):
        want = -beta_prime * math.log(sum(math.exp(-v / beta_prime) for v in per_pair.tolist()) / 3)
        assert losses.dr_dpo_loss(chosen, rejected, 0.5, beta_prime).item() == pytest.approx(want, rel=1e-6)
    assert losses.dr_dpo_loss(chosen, rejected, 0.5, 1e5).item() == pytest.approx(per_pair.mean().item(), rel=1e-4)


def test_dr_dpo_gives_the_most_disagreeing_pair_less_weight_than_dpo():
    def grads(fn):
        chosen = torch.tensor([1.0, -4.0], requires_grad=True)  # pair 2 looks mislabeled
        fn(chosen, torch.zeros(2)).backward()
        return chosen.grad.abs()

    dpo = grads(lambda c, r: losses.dpo_loss(c, r, 1.0).mean())
    robust = grads(lambda c, r: losses.dr_dpo_loss(c, r, 1.0, 0.5))
    assert robust[1] / robust[0] < dpo[1] / dpo[0]


def test_beta_warmup_is_linear_then_flat():
    assert losses.beta_at(0, 0.1, 0.01, 10) == pytest.approx(0.01)
    assert losses.beta_at(5, 0.1, 0.01, 10) == pytest.approx(0.055)
    assert losses.beta_at(10, 0.1, 0.01, 10) == pytest.approx(0.1)
    assert losses.beta_at(50, 0.1, 0.01, 10) == pytest.approx(0.1)
    assert losses.beta_at(0, 0.1, 0.01, 0) == 0.1
