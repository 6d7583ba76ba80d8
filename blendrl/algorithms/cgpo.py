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

import dataclasses
from dataclasses import dataclass, field

import torch

from ..functional import cgpo as F
from ..core import dist
from ..core.registry import Registry
from ..core.types import Experience
from .base import batch_wide

CGPO_OPTIMIZERS: Registry = Registry("CGPO optimizer")


def _task_of(node, root):
    """The task whose ``optimizer`` section is ``node`` (None outside a CGPO config)."""
    return next((t for t in getattr(root, "tasks", []) if t.optimizer is node), None)


def reads(*options: str, check=None):
    """The optimizer's own check of its ``optimizer:`` section: it reads ``options`` (and ``kl_max``, every task's
    KL budget); any other optimizer's option set away from its default is an error (a setting that would silently
    do nothing), then ``check(node, task)``."""
    def validate(node, root=None) -> None:
        from ..config.cgpo_schema import OptimizerConfig

        default = OptimizerConfig()
        for f in dataclasses.fields(node):
            if f.name not in ("name", "kl_max", *options) and getattr(node, f.name) != getattr(default, f.name):
                raise ValueError(f"{f.name}: the {node.name} optimizer does not read it (it reads kl_max"
                                 f"{''.join(', ' + o for o in options)})")
        if check is not None:
            check(node, _task_of(node, root))

    return validate


def _codpo_check(node, task) -> None:
    if node.beta <= 0:
        raise ValueError("beta: must be > 0")
    if task is not None and task.samples_per_prompt < 2:
        raise ValueError("name: codpo needs the task's samples_per_prompt >= 2 to form pairs")


def _lagrangian_check(node, task) -> None:
    if task is not None:
        judges = {j.name or j.kind for j in task.judges}
        unknown = sorted(set(node.thresholds) - judges)
        if unknown:
            raise ValueError(f"thresholds.{unknown[0]}: no judge of task '{task.name}' is called that "
                             f"(its judges: {sorted(judges)})")


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

    def select(self, exp: Experience, reward, passed, seq_kl, k: int, per_judge=None) -> tuple[Selection, dict]:
        """The rows to train and their weights. ``per_judge``: judge name → (N,) bool passed (the mixture's parts;
        ``passed`` is their AND)."""
        raise NotImplementedError

    def loss(self, mb: Experience, logp: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@CGPO_OPTIMIZERS.register("crpg", check=reads())
class CRPG(ConstrainedOptimizer):
    """Constrained regularized policy gradient (eqs. 10–12): REINFORCE on ``max(1 − KL/KL_max, 0)·R_calib·y``
    with a batch-mean baseline; every sample is trained, averaged over sequences."""

    def select(self, exp, reward, passed, seq_kl, k, per_judge=None):
        # the batch-mean baseline is the whole batch's (every rank's rows in a data-parallel run)
        adv = batch_wide(lambda r, p, s: F.crpg_advantages(r, p, s, self.cfg.kl_max), reward, passed, seq_kl)  # (N,)
        rows = exp.select(torch.arange(len(exp)))
        rows.seq_weights = adv
        factor = batch_wide(lambda s: (1 - s / self.cfg.kl_max).clamp_min(0).mean()[None], seq_kl, local=False)
        return Selection(rows), {"crpg/kl_factor_mean": factor.item()}

    def loss(self, mb, logp):
        return F.crpg_loss(logp, mb.response_mask, mb.seq_weights)


@CGPO_OPTIMIZERS.register("codpo", check=reads("beta", "lam", check=_codpo_check))
class CODPO(ConstrainedOptimizer):
    """Constrained online DPO (eqs. 13–15) on (best passing, worst failing) pairs; averaged over pairs."""

    def select(self, exp, reward, passed, seq_kl, k, per_judge=None):
        chosen, rejected = F.codpo_pairs(reward, passed, k)
        order = torch.stack([chosen, rejected], dim=1).flatten()  # (2P,) [a⁺₀, a⁻₀, a⁺₁, …]
        pairs, n_prompts = dist.all_sum(torch.tensor([len(chosen), len(exp) // k])).tolist()  # every rank's
        return Selection(exp.select(order), group=2), {"codpo/pairs_per_prompt": pairs / max(n_prompts, 1)}

    def units(self, rows):
        return len(rows) / 2

    def loss(self, mb, logp):
        return F.codpo_loss(logp, mb.ref_logp, mb.response_mask, self.cfg.beta, self.cfg.lam)


@CGPO_OPTIMIZERS.register("crraft", check=reads())
class CRRAFT(ConstrainedOptimizer):
    """Calibrated regularized reward ranking fine-tuning (eqs. 16–18): weighted SFT on the best surviving sample
    per prompt; prompts without a survivor fall back to the baseline ā (the trainer adds it with weight σ(0)=0.5
    when ā passes every judge and is within KL_max) or are skipped."""

    fallback_weight = 0.5  # R_calib(s, ā) = σ(r(ā) − r(ā)) = σ(0)

    def select(self, exp, reward, passed, seq_kl, k, per_judge=None):
        winners, empty = F.crraft_winners(reward, passed, seq_kl, self.cfg.kl_max, k)
        rows = exp.select(winners)
        rows.seq_weights = reward[winners]
        won, n_prompts = dist.all_sum(torch.tensor([len(winners), len(exp) // k])).tolist()  # every rank's
        return Selection(rows, fallback_prompts=empty), {"crraft/prompts_with_winner": won / max(n_prompts, 1)}

    def units(self, rows):
        return float((rows.seq_weights != 0).sum())

    def loss(self, mb, logp):
        return F.crraft_loss(logp, mb.response_mask, mb.seq_weights)


@CGPO_OPTIMIZERS.register("lagrangian-reinforce", check=reads("threshold", "thresholds", "lambda_init",
                                                              "lambda_lr", check=_lagrangian_check))
class LagrangianReinforce(ConstrainedOptimizer):
    """REINFORCE with Lagrange multipliers in CGPO's task loop (safe-rlhf's treatment of a cost as a constraint,
    without its critics; safe-rlhf's PPO-Lagrangian is ``blendrl ppo``'s ``ppo-lagrangian``): each judge of the task
    is a constraint "violation rate ≤ ``threshold``" (``thresholds`` per judge name) with a multiplier λ_h
    (``lambda_init``) updated by dual ascent (``lambda_lr``) on the batch's violation rate, then REINFORCE with a
    batch-mean baseline on ``R_calib`` times CGPO's KL factor minus ``Σ_h λ_h·1[violated]``. Unlike CRPG, violating
    samples are trained on, at a price that rises until the constraint holds. The multipliers are logged
    (``lagrangian/lambda/<judge>``) and checkpointed."""

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.multipliers: dict[str, float] = {}

    def select(self, exp, reward, passed, seq_kl, k, per_judge=None):
        judges = sorted(per_judge or {})
        costs = torch.stack([(~per_judge[j]).float() for j in judges] or [reward.new_zeros(len(exp))], 1)  # (N, H)
        costs = costs[:, : len(judges)]  # a task without judges has no constraint: (N, 0)
        violation = batch_wide(lambda c: c.mean(0), costs, local=False)  # (H,) the whole batch's rates
        threshold = torch.tensor([self.cfg.thresholds.get(j, self.cfg.threshold) for j in judges])
        lam = torch.tensor([self.multipliers.get(j, self.cfg.lambda_init) for j in judges])
        lam = F.dual_ascent(lam, violation, threshold, self.cfg.lambda_lr)
        self.multipliers = dict(zip(judges, lam.tolist()))
        adv = batch_wide(lambda r, c, s: F.lagrangian_advantages(r, c, lam, s, self.cfg.kl_max), reward, costs, seq_kl)
        rows = exp.select(torch.arange(len(exp)))
        rows.seq_weights = adv
        metrics = {**{f"lagrangian/lambda/{j}": v for j, v in self.multipliers.items()},
                   **{f"lagrangian/violation/{j}": v for j, v in zip(judges, violation.tolist())}}
        return Selection(rows), metrics

    def loss(self, mb, logp):
        return F.crpg_loss(logp, mb.response_mask, mb.seq_weights)

    def state_dict(self) -> dict:
        return {"multipliers": dict(self.multipliers)}

    def load_state_dict(self, state: dict) -> None:
        self.multipliers = dict(state["multipliers"])
