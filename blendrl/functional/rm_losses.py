"""Reward-model losses on scores of chosen and rejected responses (Secrets of RLHF II; docs/algorithms.md §2).

Shapes: ``chosen``, ``rejected`` (N,) scalar rewards r(x, y_c), r(x, y_r); Δ = chosen − rejected. Per-pair
preference strength ``mu`` (N,) comes from :func:`preference_strength`. Pair losses are registered in
``RM_LOSSES`` with the signature ``fn(chosen, rejected, mu=None, **options) -> scalar``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.registry import Registry

RM_LOSSES: Registry = Registry("reward-model loss")


@RM_LOSSES.register("bt")
def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, mu=None, margin: float = 0.0) -> torch.Tensor:
    """Bradley–Terry with an optional fixed margin: ``−mean log σ(Δ − margin)``. (N,), (N,) → scalar."""
    return -F.logsigmoid(chosen - rejected - margin).mean()


@RM_LOSSES.register("label_smoothing")
def label_smoothing_loss(chosen: torch.Tensor, rejected: torch.Tensor, mu=None, alpha: float = 0.1) -> torch.Tensor:
    """Secrets II eq. 5: ``−mean[(1−α)·log σ(Δ) + α·log(1 − σ(Δ))]``. α is not given in the paper (default 0.1)."""
    delta = chosen - rejected
    return -((1 - alpha) * F.logsigmoid(delta) + alpha * F.logsigmoid(-delta)).mean()


@RM_LOSSES.register("adaptive_margin")
def adaptive_margin_loss(chosen: torch.Tensor, rejected: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Secrets II eq. 6, μ̂ read inside the sigmoid (as Llama-2's margin): ``−mean log σ(Δ − μ̂)``."""
    return -F.logsigmoid(chosen - rejected - mu).mean()


@RM_LOSSES.register("soft_label_margin")
def soft_label_margin_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, mu: torch.Tensor, alpha: float = 0.1
) -> torch.Tensor:
    """Secrets II "Soft Label + Margin": adaptive margin on every pair; label smoothing only where μ̂ < 0.

    Per pair: ``−[(1−a_i)·log σ(Δ_i − μ̂_i) + a_i·log(1 − σ(Δ_i − μ̂_i))]`` with ``a_i = α·1[μ̂_i < 0]``.
    """
    z = chosen - rejected - mu  # (N,)
    a = alpha * (mu < 0).to(z.dtype)  # (N,)
    return -((1 - a) * F.logsigmoid(z) + a * F.logsigmoid(-z)).mean()


def preference_strength(diffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Secrets II eq. 4. ``diffs`` (M, N) = r_m(x, y_c) − r_m(x, y_r) for M reward models.

    Returns ``(mu, sigma)``, each (N,): the mean over models and the population std (÷M).
    """
    return diffs.mean(0), diffs.std(0, unbiased=False)


def flip_lowest(mu: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask (N,) of the ``fraction`` of pairs with the lowest μ̂ — the pairs the Flip recipe swaps."""
    n = int(round(fraction * mu.numel()))
    mask = torch.zeros_like(mu, dtype=torch.bool)
    if n > 0:
        mask[torch.argsort(mu)[:n]] = True
    return mask


def simcse_loss(h_s: torch.Tensor, h_t: torch.Tensor, tau: float) -> torch.Tensor:
    """Secrets II eq. 9 (InfoNCE over cosine similarity of two dropout views). (N, H), (N, H) → scalar.

    ``ℓ_i = −log( e^{sim(h_s^i, h_t^i)/τ} / Σ_j e^{sim(h_s^i, h_t^j)/τ} )``, averaged over i.
    """
    sim = F.cosine_similarity(h_s[:, None, :], h_t[None, :, :], dim=-1) / tau  # (N, N)
    return F.cross_entropy(sim, torch.arange(sim.shape[0], device=sim.device))


def metarm_difference_loss(rewards: torch.Tensor) -> torch.Tensor:
    """Secrets II eq. 11: ``J = (2/k²)·Σ_{i<j} σ(|r_i − r_j|)`` per prompt, averaged over prompts.

    ``rewards`` (P, k): k responses sampled from the shifted policy for each of P prompts. → scalar.
    """
    k = rewards.shape[1]
    diff = (rewards[:, :, None] - rewards[:, None, :]).abs()  # (P, k, k)
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=rewards.device), diagonal=1)
    return (2.0 / k**2 * torch.sigmoid(diff[:, upper]).sum(-1)).mean()
