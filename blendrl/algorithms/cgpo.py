"""CGPO's constrained optimizers as registered pieces of the CGPO trainer (docs/algorithms.md §1).

An optimizer sees one task's scored batch and says which rows to train and how:

- ``select(exp, reward, passed, seq_kl, k) -> (Selection, metrics)``: the rows (an Experience with
  ``seq_weights`` set where the loss needs them), ``group`` (rows that must share a micro-batch: CODPO's pairs)
  and, for CRRAFT, the prompts that need the baseline fallback;
- ``loss(mb, logp) -> scalar``: the loss *summed* over the micro-batch's units;
- ``units(rows) -> float``: what the task's summed loss is divided by (sequences, pairs, nonzero winners).

The math is in :mod:`blendrl.functional.cgpo`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..functional import cgpo as F
from ..core import dist
from ..core.registry import Registry
from ..core.types import Experience
from .base import batch_wide

CGPO_OPTIMIZERS: Registry = Registry("CGPO optimizer")


@dataclass
class Selection:
    rows: Experience
    group: int = 1
    fallback_prompts: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


class ConstrainedOptimizer:
    def __init__(self, cfg) -> None:  # cfg: OptimizerConfig
        self.cfg = cfg

    def units(self, rows: Experience) -> float:
        return float(len(rows))

    def select(self, exp: Experience, reward, passed, seq_kl, k: int) -> tuple[Selection, dict]:
        raise NotImplementedError

    def loss(self, mb: Experience, logp: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@CGPO_OPTIMIZERS.register("crpg")
class CRPG(ConstrainedOptimizer):
    """Constrained regularized policy gradient (eqs. 10–12): REINFORCE on ``max(1 − KL/KL_max, 0)·R_calib·y``
    with a batch-mean baseline; every sample is trained, averaged over sequences."""

    def select(self, exp, reward, passed, seq_kl, k):
        # the batch-mean baseline is the whole batch's (every rank's rows in a data-parallel run)
        adv = batch_wide(lambda r, p, s: F.crpg_advantages(r, p, s, self.cfg.kl_max), reward, passed, seq_kl)  # (N,)
        rows = exp.select(torch.arange(len(exp)))
        rows.seq_weights = adv
        factor = batch_wide(lambda s: (1 - s / self.cfg.kl_max).clamp_min(0).mean()[None], seq_kl, local=False)
        return Selection(rows), {"crpg/kl_factor_mean": factor.item()}

    def loss(self, mb, logp):
        return F.crpg_loss(logp, mb.response_mask, mb.seq_weights)


@CGPO_OPTIMIZERS.register("codpo")
class CODPO(ConstrainedOptimizer):
    """Constrained online DPO (eqs. 13–15) on (best passing, worst failing) pairs; averaged over pairs."""

    def select(self, exp, reward, passed, seq_kl, k):
        chosen, rejected = F.codpo_pairs(reward, passed, k)
        order = torch.stack([chosen, rejected], dim=1).flatten()  # (2P,) [a⁺₀, a⁻₀, a⁺₁, …]
        pairs, n_prompts = dist.all_sum(torch.tensor([len(chosen), len(exp) // k])).tolist()  # every rank's
        return Selection(exp.select(order), group=2), {"codpo/pairs_per_prompt": pairs / max(n_prompts, 1)}

    def units(self, rows):
        return len(rows) / 2

    def loss(self, mb, logp):
        return F.codpo_loss(logp, mb.ref_logp, mb.response_mask, self.cfg.beta, self.cfg.lam)


@CGPO_OPTIMIZERS.register("crraft")
class CRRAFT(ConstrainedOptimizer):
    """Calibrated regularized reward ranking fine-tuning (eqs. 16–18): weighted SFT on the best surviving sample
    per prompt; prompts without a survivor fall back to the baseline ā (the trainer adds it with weight σ(0)=0.5
    when ā passes every judge and is within KL_max) or are skipped."""

    fallback_weight = 0.5  # R_calib(s, ā) = σ(r(ā) − r(ā)) = σ(0)

    def select(self, exp, reward, passed, seq_kl, k):
        winners, empty = F.crraft_winners(reward, passed, seq_kl, self.cfg.kl_max, k)
        rows = exp.select(winners)
        rows.seq_weights = reward[winners]
        won, n_prompts = dist.all_sum(torch.tensor([len(winners), len(exp) // k])).tolist()  # every rank's
        return Selection(rows, fallback_prompts=empty), {"crraft/prompts_with_winner": won / max(n_prompts, 1)}

    def units(self, rows):
        return float((rows.seq_weights != 0).sum())

    def loss(self, mb, logp):
        return F.crraft_loss(logp, mb.response_mask, mb.seq_weights)
