"""Clipped PPO policy and value losses (docs/algorithms.md §11 "Losses", §2 PPO-max value clipping) and how a
per-token loss becomes one number (``LOSS_AGGREGATIONS``, ``algorithm.loss_agg``).

An aggregation reduces a (B, T) per-token loss with its mask to a scalar, and names the unit a batch is counted in
(``per``: ``token`` or ``sequence``); a trainer that accumulates micro-batches weights each one by its share of the
whole minibatch's units (every rank's), so the gradient is that of one aggregation over the minibatch:

- ``token-mean``: Σ_{b,t} m·ℓ / Σ m (every token counts alike; the default, PPO's and TRL's);
- ``seq-mean-token-mean``: mean over sequences of each sequence's token mean (GRPO's paper form: a long response
  counts as much as a short one);
- ``seq-mean-token-sum``: mean over sequences of each sequence's token sum;
- ``seq-mean-token-sum-norm``: Σ_t m·ℓ / L per sequence, L a constant (the generation budget), then the mean over
  sequences: Dr. GRPO's constant normaliser (no length bias from dividing by a sequence's own length).
A sequence whose mask is all zero (a skipped sample) is no unit and contributes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..core.registry import Registry
from .masked import masked_mean
from .surrogates import POLICY_LOSSES, Clip

LOSS_AGGREGATIONS: Registry = Registry("loss aggregation")


@dataclass(frozen=True)
class Aggregation:
    reduce: Callable[..., torch.Tensor]  # (x (B, T), mask (B, T), horizon: float) → scalar
    per: str  # "token" or "sequence": the unit a micro-batch's share is counted in

    def units(self, mask: torch.Tensor) -> torch.Tensor:
        """How many units ``mask`` (B, T) holds: its tokens, or its sequences with at least one token. → scalar."""
        return mask.sum() if self.per == "token" else (mask.sum(1) > 0).sum().to(mask.dtype)


def _sequence_mean(per_seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B,) per-sequence values over the sequences with a token. → scalar."""
    live = (mask.sum(1) > 0).to(per_seq.dtype)  # (B,)
    return (per_seq * live).sum() / live.sum().clamp_min(1)


LOSS_AGGREGATIONS.register("token-mean")(Aggregation(lambda x, m, horizon=None: masked_mean(x, m), "token"))
LOSS_AGGREGATIONS.register("seq-mean-token-mean")(Aggregation(
    lambda x, m, horizon=None: _sequence_mean((x * m).sum(1) / m.sum(1).clamp_min(1), m), "sequence"))
def _sum_norm(x: torch.Tensor, mask: torch.Tensor, horizon: float | None) -> torch.Tensor:
    """Dr. GRPO: each sequence's token sum over the constant ``horizon`` L, then the mean over sequences."""
    if not horizon or horizon <= 0:
        raise ValueError("loss_agg seq-mean-token-sum-norm needs a positive horizon L (generation.max_new_tokens)")
    return _sequence_mean((x * mask).sum(1) / horizon, mask)


LOSS_AGGREGATIONS.register("seq-mean-token-sum")(Aggregation(
    lambda x, m, horizon=None: _sequence_mean((x * m).sum(1), m), "sequence"))
LOSS_AGGREGATIONS.register("seq-mean-token-sum-norm")(Aggregation(_sum_norm, "sequence"))


def aggregate(x: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean", horizon: float | None = None
              ) -> torch.Tensor:
    """``x`` (B, T) per-token values reduced by aggregation ``mode`` (``horizon``: the constant L of
    ``seq-mean-token-sum-norm``). → scalar."""
    return LOSS_AGGREGATIONS[mode].reduce(x, mask, horizon)


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip,
    agg: str = "token-mean", horizon: float | None = None, weights: torch.Tensor | None = None,
    kind: str = "ppo",
) -> torch.Tensor:
    """The surrogate ``kind`` (``POLICY_LOSSES``: default PPO's ``max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε))``,
    ``ratio = exp(logp − old_logp)``) per token, times the per-token ``weights`` when given (constants: TIS), reduced
    by the aggregation ``agg`` (default: the masked mean over tokens). ``clip``: ε, or a
    :class:`~blendrl.functional.surrogates.Clip` (ε_low, ε_high, dual clip).

    Shapes: all (B, T) → scalar.
    """
    per_token, _ = POLICY_LOSSES[kind](logp, old_logp, advantages, mask, Clip.of(clip))  # (B, T)
    if weights is not None:
        per_token = per_token * weights.detach()
    return aggregate(per_token, mask, agg, horizon)


def tis_weights(old_logp: torch.Tensor, engine_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance weights ``min(π_old / π_engine, C)`` of the sampled tokens (Yao et al. 2025): the
    trainer's π_old over the inexact engine's probability, capped at ``cap``. Constants (no gradient).

    Shapes: (B, T) → (B, T).
    """
    return torch.exp(old_logp - engine_logp).clamp(max=cap).detach()


def clip_fraction(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, clip, kind: str = "ppo"
                  ) -> torch.Tensor:
    """Share of valid tokens the surrogate ``kind`` clipped (``clip``: ε or a ``Clip``; a diagnostic).
    Shapes: (B, T) → scalar."""
    ones = torch.ones_like(logp)  # the clipped set does not depend on the advantage's size, only on its sign
    _, clipped_pos = POLICY_LOSSES[kind](logp, old_logp, ones, mask, Clip.of(clip))
    _, clipped_neg = POLICY_LOSSES[kind](logp, old_logp, -ones, mask, Clip.of(clip))
    return masked_mean((clipped_pos | clipped_neg).float(), mask)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_eps: float
) -> torch.Tensor:
    """Clipped value loss: ``0.5 · masked_mean(max((V−R)², (clip(V, V_old−ε, V_old+ε) − R)²))``.

    Shapes: all (B, T) → scalar.
    """
    clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)  # (B, T)
    loss = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)  # (B, T)
    return 0.5 * masked_mean(loss, mask)
