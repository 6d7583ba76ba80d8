"""The algorithm seam: how one iteration's experience becomes advantages, and a micro-batch becomes a loss.

An algorithm is registered by name in ``ALGORITHMS`` and built as ``cls(cfg: AlgorithmConfig, kl: KLConfig)``.
The trainer owns the loop; an algorithm only supplies

- ``needs_critic``: whether the trainer runs and trains a value model;
- ``prepare(exp, kl_coef)``: fill ``exp.advantages`` (and ``exp.returns``) from ``exp.scores``, ``exp.values``,
  ``exp.behaviour_logp``, ``exp.ref_logp``; return metrics;
- ``policy_loss(mb, logp, kl_coef)``: the policy's scalar loss on a micro-batch (masked means over its tokens)
  and metrics;
- ``critic_loss(mb, values)``: the value model's loss (only when ``needs_critic``), already weighted by its
  coefficient. The trainer back-propagates the two separately so that only one model's graph is alive at a time.
All math comes from :mod:`blendrl.functional`.
"""
from __future__ import annotations

import math

import torch

from ..config import AlgorithmConfig, KLConfig
from ..functional import clip_fraction, kl_penalty, masked_mean, policy_loss
from ..functional.losses import LOSS_AGGREGATIONS, aggregate, tis_weights
from ..functional.surrogates import Clip
from ..core import dist
from ..core.registry import Registry
from ..functional.regularizers import REGULARIZERS
from ..core.types import Experience

def batch_wide(fn, *tensors: torch.Tensor, local: bool = True) -> torch.Tensor:
    """``fn`` over the whole batch: in a data-parallel run it sees every rank's rows in order
    (:func:`blendrl.core.dist.gather_rows`), so a baseline, a whitening or a mean is the whole batch's, and
    (``local``) this rank's rows of its result come back; in one process it is ``fn(*tensors)``, nothing else."""
    if not dist.active():
        return fn(*tensors)
    gathered = [dist.gather_rows(t) for t in tensors]
    out = fn(*(g for g, _ in gathered))
    first, n = gathered[0][1], tensors[0].shape[0]
    return out[first: first + n] if local else out


ALGORITHMS: Registry = Registry("algorithm", builtins=("blendrl.algorithms.ppo", "blendrl.algorithms.critic_free",
                                                       "blendrl.algorithms.vine"))


class Algorithm:
    needs_critic = False  # the trainer trains a critic and hands its values to prepare()
    needs_mc_values = False  # the trainer fills exp.values with Monte-Carlo values (VinePPO)
    needs_cost_critic = False  # the trainer scores costs and trains a cost critic (PPO-Lagrangian)

    def __init__(self, cfg: AlgorithmConfig, kl: KLConfig) -> None:
        self.cfg, self.kl = cfg, kl

    def token_kl(self, logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
        """The configured per-token KL estimate, clamped to ±kl.clip. (B, T) → (B, T)."""
        kl = kl_penalty(logp, ref_logp, self.kl.kind)
        return kl if self.kl.clip is None else kl.clamp(-self.kl.clip, self.kl.clip)

    def kl_in_reward(self, exp: Experience) -> torch.Tensor:
        """Per-token KL for the reward (0 when the KL sits in the loss), from the behaviour log-probs. (B, T)."""
        if self.kl.placement != "reward":
            return torch.zeros_like(exp.behaviour_logp)
        return self.token_kl(exp.behaviour_logp, exp.ref_logp) * exp.response_mask

    horizon = None  # the generation budget (max_new_tokens): the constant L of seq-mean-token-sum-norm

    def loss_units(self, mask: torch.Tensor) -> torch.Tensor:
        """The units the policy loss is an aggregate over (``algorithm.loss_agg``: tokens or sequences) in
        ``mask`` (B, T): what a micro-batch's share of the minibatch is counted in. → scalar."""
        return LOSS_AGGREGATIONS[self.cfg.loss_agg].units(mask)

    def kl_loss(self, mb: Experience, logp: torch.Tensor, kl_coef: float) -> torch.Tensor:
        """``β·agg(kl(logp, ref_logp))`` (the policy loss's aggregation) when ``kl.placement == loss``, else 0."""
        if self.kl.placement != "loss":
            return logp.new_zeros(())
        return kl_coef * aggregate(self.token_kl(logp, mb.ref_logp), mb.response_mask, self.cfg.loss_agg,
                                   self.horizon)

    regularizer = None  # a RegularizerConfig set by build_algorithm; kind none adds nothing

    def regularizer_loss(self, mb: Experience, logp: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``coef·R`` of the configured regulariser (e.g. ORPO's sqrt χ²) on the micro-batch, and its metrics."""
        r = self.regularizer
        if r is None or r.kind == "none":
            return logp.new_zeros(()), {}
        term, estimate = REGULARIZERS[r.kind](logp, mb.ref_logp, mb.response_mask, clip=r.clip)
        return r.coef * term, {f"loss/{r.kind}": estimate.item()}

    def prepare(self, exp: Experience, kl_coef: float) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What the algorithm carries from one iteration to the next (PPO-Lagrangian's λ), for exact resume."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    @property
    def clip(self) -> Clip:
        """The ratio's clip: ``clip_low``/``clip_high`` where set, else ``clip_eps``; ``dual_clip``."""
        c = self.cfg
        low = c.clip_eps if c.clip_low is None else c.clip_low
        return Clip(low, c.clip_eps if c.clip_high is None else c.clip_high, c.dual_clip)

    def tis(self, mb: Experience) -> tuple[torch.Tensor | None, dict]:
        """Truncated importance weights against an inexact generator's log-probs (``algorithm.tis_cap``; none when
        it is unset or the generator's log-probs were the trainer's) and their statistics."""
        if self.cfg.tis_cap is None or mb.engine_logp is None:
            return None, {}
        w = tis_weights(mb.behaviour_logp, mb.engine_logp, self.cfg.tis_cap)  # (B, T)
        capped = (mb.behaviour_logp - mb.engine_logp) > math.log(self.cfg.tis_cap)  # π_old / π_engine above the cap
        return w, {"tis/mean_weight": masked_mean(w, mb.response_mask).item(),
                   "tis/capped_fraction": masked_mean(capped.float(), mb.response_mask).item()}

    def policy_loss(self, mb: Experience, logp: torch.Tensor, kl_coef: float, entropy: torch.Tensor | None = None):
        """Clipped surrogate on ``mb.advantages`` (ratio to ``mb.old_logp``) plus the loss-side KL term; with the
        policy's per-token ``entropy`` (B, T) (from the same forward) its token mean is logged
        (``policy/entropy``) and ``algorithm.entropy_coef`` > 0 subtracts ``coef·agg(entropy)`` (a bonus)."""
        weights, tis_stats = self.tis(mb)
        c = self.cfg
        pg = policy_loss(logp, mb.old_logp, mb.advantages, mb.response_mask, self.clip, c.loss_agg, self.horizon,
                         weights, c.policy_loss)
        kl = self.kl_loss(mb, logp, kl_coef)
        reg, reg_stats = self.regularizer_loss(mb, logp)
        stats = {
            "loss/policy": pg.item(),
            "loss/kl": kl.item(),
            "loss/clipfrac": clip_fraction(logp.detach(), mb.old_logp, mb.response_mask, self.clip,
                                           c.policy_loss).item(),
            **reg_stats, **tis_stats,
        }
        bonus = logp.new_zeros(())
        if entropy is not None:
            stats["policy/entropy"] = masked_mean(entropy.detach(), mb.response_mask).item()
            if c.entropy_coef:
                bonus = c.entropy_coef * aggregate(entropy, mb.response_mask, c.loss_agg, self.horizon)
                stats["loss/entropy_bonus"] = bonus.item()
        return pg + kl + reg - bonus, stats

    def critic_loss(self, mb: Experience, values: torch.Tensor, critic: str = "critic"):
        raise NotImplementedError(f"{type(self).__name__} has no critic")
