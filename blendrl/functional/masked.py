"""Masked reductions and whitening over response tokens.

``mask`` is 1.0 on response tokens up to and including EOS and 0.0 on padding. A *masked mean* is the sum over the
whole batch of ``x * mask`` divided by ``mask.sum()`` (token-level averaging, as TRL and OpenRLHF do).
"""
from __future__ import annotations

import torch

WHITEN_EPS = 1e-8


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x * mask``; over everything when ``dim`` is None."""
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``sum(x * mask) / sum(mask)`` over the whole batch (``dim=None``) or along ``dim``.

    A row or batch with no valid token gives 0 rather than NaN.
    """
    denom = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(x, mask, dim) / denom.clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population variance of the valid entries of ``x`` (divides by the number of valid tokens)."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Whiten ``x`` with its masked mean and population variance: ``(x - mean) / sqrt(var + 1e-8)``.

    PPO-max "advantage normalisation" (Secrets of RLHF I; docs/algorithms.md §7 factor 1, §11 Whitening).
    With ``shift_mean=False`` the mean is added back (TRL's ``masked_whiten(..., shift_mean=False)``, used for
    reward whitening). Entries outside the mask are transformed too; callers multiply by ``mask`` when needed.

    Shapes: ``x``, ``mask`` (B, T) → (B, T).
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + WHITEN_EPS)  # (B, T)
    return out if shift_mean else out + mean
