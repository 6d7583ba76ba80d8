"""Reward-model ensemble aggregators (Coste et al., ICLR 2024, eqs. 3–5; docs/algorithms.md §3).

``scores`` (k, B): k members' scores of B sequences → (B,). Registered in ``ENSEMBLE_AGGREGATORS`` with the
signature ``fn(scores, **options)``.
"""
from __future__ import annotations

import torch

from ..core.registry import Registry

ENSEMBLE_AGGREGATORS: Registry = Registry("ensemble aggregator")


@ENSEMBLE_AGGREGATORS.register("mean")
def ensemble_mean(scores: torch.Tensor) -> torch.Tensor:
    """``R_μ = (1/k) Σ_i R_i``. (k, B) → (B,)."""
    return scores.mean(0)


@ENSEMBLE_AGGREGATORS.register("wco")
def worst_case(scores: torch.Tensor) -> torch.Tensor:
    """Worst-case optimisation ``R_WCO = min_i R_i``. (k, B) → (B,)."""
    return scores.min(0).values


@ENSEMBLE_AGGREGATORS.register("uwo")
def uncertainty_weighted(scores: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """Uncertainty-weighted optimisation ``R_UWO = R_μ − λ·(1/k) Σ_i (R_i − R_μ)²``. (k, B) → (B,).

    The penalty is the population variance (÷k), as in the paper's equation and Coste's best-of-n code (their PPO
    code uses the unbiased ÷(k−1) variance). λ = 0.5 is the paper's best-of-n value (0.1 in its PPO config).
    """
    return scores.mean(0) - lam * scores.var(0, unbiased=False)


def disagreement(scores: torch.Tensor) -> torch.Tensor:
    """Per-sequence ensemble disagreement: the population std over members. (k, B) → (B,)."""
    return scores.std(0, unbiased=False)
