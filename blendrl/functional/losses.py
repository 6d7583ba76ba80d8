"""Clipped PPO policy and value losses (docs/algorithms.md §11 "Losses", §2 PPO-max value clipping)."""
from __future__ import annotations

import torch

from .masked import masked_mean


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float
) -> torch.Tensor:
    """Clipped surrogate: masked mean of ``max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε))``, ``ratio = exp(logp − old_logp)``.

    Shapes: all (B, T) → scalar.
    """
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)  # (B, T)
    return masked_mean(torch.maximum(unclipped, clipped), mask)


def clip_fraction(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """Share of valid tokens whose ratio lies outside ``[1−ε, 1+ε]`` (a diagnostic). Shapes: (B, T) → scalar."""
    ratio = torch.exp(logp - old_logp)
    return masked_mean(((ratio - 1.0).abs() > clip_eps).float(), mask)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_eps: float
) -> torch.Tensor:
    """Clipped value loss: ``0.5 · masked_mean(max((V−R)², (clip(V, V_old−ε, V_old+ε) − R)²))``.

    Shapes: all (B, T) → scalar.
    """
    clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)  # (B, T)
    loss = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)  # (B, T)
    return 0.5 * masked_mean(loss, mask)
