"""Advantage estimators: GAE for critics; REINFORCE / RLOO / GRPO for critic-free algorithms.

Sequence-level estimators are registered in ``SEQUENCE_ADVANTAGES`` and share the signature
``fn(scores (N,), k) -> advantages (N,)`` where the N samples are N/k prompts × k consecutive samples.
"""
from __future__ import annotations

import torch

from ..core.registry import Registry

SEQUENCE_ADVANTAGES: Registry = Registry("sequence advantage estimator")


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (docs/algorithms.md §11, §2 "GAE in code").

    ``δ_t = r_t + γ·V_{t+1} − V_t``, ``A_t = δ_t + γ·λ·A_{t+1}``, with V past the last valid token = 0.
    Returns ``(advantages, returns)`` with ``returns = advantages + values`` (before any whitening); both are 0 on
    padding. Shapes: ``rewards``, ``values``, ``mask`` (B, T) → two (B, T).
    """
    values = values * mask  # (B, T) V = 0 on and after padding
    rewards = rewards * mask  # (B, T)
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)  # (B, T)
    next_adv = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(values[:, t])  # (B,)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        adv[:, t] = next_adv
    returns = (adv + values) * mask  # (B, T)
    return adv, returns


def _grouped(scores: torch.Tensor, k: int) -> torch.Tensor:
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D (N,), got shape {tuple(scores.shape)}")
    if k < 1 or scores.numel() % k:
        raise ValueError(f"{scores.numel()} scores cannot be grouped into groups of k={k}")
    return scores.view(-1, k)  # (N/k, k)


@SEQUENCE_ADVANTAGES.register("reinforce")
def reinforce_advantages(scores: torch.Tensor, k: int = 1) -> torch.Tensor:
    """REINFORCE with a batch-mean baseline: ``A_i = s_i − mean_j s_j`` over the whole batch (CGPO eq. 12 form).

    ``k`` is accepted for a uniform signature and ignored. Shapes: (N,) → (N,).
    """
    _grouped(scores, k)
    return scores - scores.mean()


@SEQUENCE_ADVANTAGES.register("rloo")
def rloo_advantages(scores: torch.Tensor, k: int) -> torch.Tensor:
    """REINFORCE leave-one-out: ``A_i = s_i − (Σ_{j≠i} s_j)/(k−1)`` within each group of k samples of a prompt.

    Needs k ≥ 2. Shapes: (N,) → (N,).
    """
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt")
    g = _grouped(scores, k)  # (N/k, k)
    baseline = (g.sum(dim=1, keepdim=True) - g) / (k - 1)  # (N/k, k)
    return (g - baseline).reshape(-1)


@SEQUENCE_ADVANTAGES.register("grpo")
def grpo_advantages(scores: torch.Tensor, k: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO group normalisation: ``A_i = (s_i − mean_g) / (std_g + eps)`` with the population std of the group.

    Shapes: (N,) → (N,).
    """
    g = _grouped(scores, k)  # (N/k, k)
    mean = g.mean(dim=1, keepdim=True)
    std = g.std(dim=1, unbiased=False, keepdim=True)
    return ((g - mean) / (std + eps)).reshape(-1)
