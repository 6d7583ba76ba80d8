"""Per-token policy surrogates (``algorithm.policy_loss``, registered in ``POLICY_LOSSES``) and their clipping
(docs/algorithms.md §11 "Clipping and ratios").

A surrogate maps ``logp``, ``old_logp``, ``advantages``, ``mask`` (all (B, T)) and a :class:`Clip` to the per-token
loss (B, T) and the tokens it clipped (B, T) bool; the trainer then weights (TIS) and aggregates it
(``algorithm.loss_agg``). With ``r = exp(logp − old_logp)``:

- ``ppo``: ``max(−A·r, −A·clip(r, 1−ε_low, 1+ε_high))`` (ε_low = ε_high = ``clip_eps`` unless ``clip_low`` /
  ``clip_high`` say otherwise: DAPO's clip-higher, Yu et al. 2025). With ``dual_clip`` c > 1 (Ye et al. 2020) a
  negative-advantage token's loss is also capped at ``−c·A``, so a huge ratio cannot blow it up.
- ``gspo`` (Zheng et al. 2025): the ratio of the whole sequence, length-normalised,
  ``s = exp(Σ_t m·(logp − old_logp) / Σ_t m)``, clipped like ``ppo`` and shared by the sequence's tokens; its
  gradient reaches every token through the mean. GSPO's paper pairs it with a sequence mean
  (``loss_agg: seq-mean-token-mean``) and small ε (3e-4 / 4e-4).
- ``cispo`` (MiniMax-M1, 2025): ``−sg(clip(r, 1−ε_low, 1+ε_high))·A·logp``: REINFORCE with the importance weight
  clipped and stopped, so no token's gradient is dropped, only its weight bounded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..core.registry import Registry

POLICY_LOSSES: Registry = Registry("policy loss")


@dataclass(frozen=True)
class Clip:
    low: float  # ε_low: the ratio's floor is 1 − low
    high: float  # ε_high: its ceiling is 1 + high
    dual: Optional[float] = None  # c > 1: a negative-advantage token's loss is at most −c·A

    @classmethod
    def of(cls, clip) -> "Clip":
        return clip if isinstance(clip, Clip) else cls(float(clip), float(clip))


def _clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: Clip):
    """``max(−A·r, −A·clip(r))`` (with the dual clip for A < 0) and where the clip was active. (B, T) → 2 × (B, T)."""
    bounded = torch.clamp(ratio, 1.0 - clip.low, 1.0 + clip.high)
    unclipped, clipped = -advantages * ratio, -advantages * bounded
    loss = torch.maximum(unclipped, clipped)
    active = clipped > unclipped
    if clip.dual is not None:
        capped = -advantages * clip.dual
        dual = (advantages < 0) & (loss > capped)
        loss = torch.where(dual, capped, loss)
        active = active | dual
    return loss, active


@POLICY_LOSSES.register("ppo")
def ppo_surrogate(logp, old_logp, advantages, mask, clip: Clip):
    """PPO's clipped surrogate per token (module doc). → loss (B, T), clipped (B, T) bool."""
    return _clipped_surrogate(torch.exp(logp - old_logp), advantages, clip)


@POLICY_LOSSES.register("gspo")
def gspo_surrogate(logp, old_logp, advantages, mask, clip: Clip):
    """GSPO's sequence-level ratio and clip (module doc). → loss (B, T), clipped (B, T) bool."""
    log_ratio = ((logp - old_logp) * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp_min(1)  # (B, 1)
    return _clipped_surrogate(torch.exp(log_ratio).expand_as(logp), advantages, clip)


@POLICY_LOSSES.register("cispo")
def cispo_surrogate(logp, old_logp, advantages, mask, clip: Clip):
    """CISPO: the clipped, stopped importance weight times REINFORCE's term (module doc). → loss, clipped."""
    ratio = torch.exp(logp - old_logp).detach()
    weight = torch.clamp(ratio, 1.0 - clip.low, 1.0 + clip.high)
    return -weight * advantages * logp, weight != ratio
