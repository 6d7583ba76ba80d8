"""Reward-model losses (Secrets of RLHF II) on hand-computed numbers."""
import math

import pytest
import torch

import blendrl.functional as F


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def logsig(x):
    return -math.log1p(math.exp(-x))


def test_bradley_terry_with_and_without_margin():
    # Δ = [1, 0]: −(log σ(1) + log σ(0)) / 2
    assert F.bradley_terry_loss(t([1.0, 0.0]), t([0.0, 0.0])).item() == pytest.approx(-(logsig(1) + logsig(0)) / 2)
    # margin 0.5: Δ − m = [0.5, −0.5]
    expected = -(logsig(0.5) + logsig(-0.5)) / 2
    assert F.bradley_terry_loss(t([1.0, 0.0]), t([0.0, 0.0]), margin=0.5).item() == pytest.approx(expected)


def test_label_smoothing_eq5():
    # −[0.9·log σ(1) + 0.1·log(1 − σ(1))] = 0.9·0.313262 + 0.1·1.313262
    assert F.label_smoothing_loss(t([1.0]), t([0.0]), alpha=0.1).item() == pytest.approx(0.413262, abs=1e-6)


def test_adaptive_margin_eq6_puts_mu_inside_the_sigmoid():
    # Δ = [1, 0], μ̂ = [0.5, −0.5] → z = [0.5, 0.5]
    loss = F.adaptive_margin_loss(t([1.0, 0.0]), t([0.0, 0.0]), mu=t([0.5, -0.5]))
    assert loss.item() == pytest.approx(-logsig(0.5))


def test_soft_label_margin_smooths_only_negative_strength_pairs():
    loss = F.soft_label_margin_loss(t([1.0, 0.0]), t([0.0, 0.0]), mu=t([0.5, -0.5]), alpha=0.1)
    pair1 = -logsig(0.5)  # μ̂ > 0: no smoothing
    pair2 = -(0.9 * logsig(0.5) + 0.1 * logsig(-0.5))  # μ̂ < 0: smoothed
    assert loss.item() == pytest.approx((pair1 + pair2) / 2)


def test_preference_strength_mean_and_population_std():
    mu, sigma = F.preference_strength(t([[1.0, -1.0], [3.0, -1.0]]))
    assert mu.tolist() == [2.0, -1.0] and sigma.tolist() == [1.0, 0.0]


def test_flip_lowest_marks_the_weakest_pairs():
    assert F.flip_lowest(t([0.3, -1.0, 2.0, 0.1, 5.0]), 0.4).tolist() == [False, True, False, True, False]


def test_simcse_infonce_over_cosine():
    h = t([[1.0, 0.0], [0.0, 1.0]])
    # sim matrix = identity, τ = 1: each row −log(e / (e + 1))
    assert F.simcse_loss(h, h, tau=1.0).item() == pytest.approx(-logsig(1.0))


def test_metarm_difference_loss_eq11():
    # |0−1| = 1, |0−3| = 3, |1−3| = 2 → (2/9)(σ(1) + σ(3) + σ(2))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = 2 / 9 * (sig(1) + sig(3) + sig(2))
    assert F.metarm_difference_loss(t([[0.0, 1.0, 3.0]])).item() == pytest.approx(expected)


def test_the_trainer_s_recipes_are_the_paper_s_named_losses():
    """What ``loss.recipe`` names is the hand-checked formula above (μ̂ already in margin units)."""
    from blendrl.config.rm_schema import RMLossConfig
    from blendrl.training.rm.recipes import RECIPES

    cfg = RMLossConfig(margin=0.25, alpha=0.2)
    c, r, mu = t([1.0, 0.0, -0.5]), t([0.0, 0.5, 0.5]), t([0.5, -0.5, 1.0])
    loss = lambda name: RECIPES[name].loss_fn(cfg)(c, r, mu).item()  # noqa: E731
    assert loss("bt") == pytest.approx(F.bradley_terry_loss(c, r, margin=0.25).item())
    assert loss("margin") == pytest.approx(F.adaptive_margin_loss(c, r, mu=mu).item())
    assert loss("soft_label_margin") == pytest.approx(F.soft_label_margin_loss(c, r, mu=mu, alpha=0.2).item())
    cfg0 = RMLossConfig(margin=0.0, alpha=0.2)
    assert RECIPES["label_smoothing"].loss_fn(cfg0)(c, r, mu).item() == pytest.approx(
        F.label_smoothing_loss(c, r, alpha=0.2).item())


def test_flip_lowest_flips_a_single_pair_and_returns_a_bool_mask():
    mask = F.flip_lowest(t([0.3, -1.0, 2.0, 0.1]), 0.25)  # round(0.25·4) = 1 pair
    assert mask.dtype == torch.bool and mask.tolist() == [False, True, False, False]
    assert not F.flip_lowest(t([0.3, -1.0]), 0.1).any()
