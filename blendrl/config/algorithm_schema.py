"""The typed configuration of the loop's optimiser (``algorithm:`` of ``blendrl ppo``): its name, clipping, loss
options, and the settings of VinePPO and PPO-Lagrangian. Each default has one home: its field here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .settings import _require


@dataclass
class VineConfig:
    """VinePPO's Monte-Carlo values (docs/algorithms.md §15): ``samples`` continuations of the current policy from
    the start of every step; a step ends after a newline token (``split_on_newline``) or after ``step_tokens``."""

    samples: int = 4
    step_tokens: int = 16
    split_on_newline: bool = True

    def validate(self) -> None:
        _require(self.samples >= 1 and self.step_tokens >= 1, "samples and step_tokens: must be >= 1")


@dataclass
class LagrangianConfig:
    """safe-rlhf's PPO-Lagrangian (docs/algorithms.md §16): the constraint "the batch's mean episode cost ≤
    ``threshold``" with a multiplier λ ≥ 0 from ``lambda_init``, moved by dual ascent at ``lambda_lr`` before each
    update and capped at ``lambda_max`` (None: no cap). Threshold 0 and λ from 1 as safe-rlhf."""

    threshold: float = 0.0
    lambda_init: float = 1.0
    lambda_lr: float = 0.1
    lambda_max: Optional[float] = None

    def validate(self) -> None:
        _require(self.lambda_init >= 0, "lambda_init: must be >= 0")
        _require(self.lambda_lr > 0, "lambda_lr: must be > 0")
        _require(self.lambda_max is None or self.lambda_max >= self.lambda_init,
                 "lambda_max: must be >= lambda_init (or null: no cap)")


@dataclass
class AlgorithmConfig:
    """The optimiser over the loop. ``name``: ppo (critic + GAE), vineppo (PPO with Monte-Carlo step values from
    ``vine`` in place of the critic), ppo-lagrangian (PPO with a reward and a cost critic under the constraint
    ``lagrangian``; the costs come from the run's ``costs`` sources) or a critic-free estimator: reinforce, rloo,
    grpo.
    Defaults follow TRL's PPO (ε 0.2, ε_v 0.2, c_v 0.1, γ 1, λ 0.95, 4 epochs)."""

    name: str = "ppo"
    epochs: int = 4
    clip_eps: float = 0.2
    value_clip_eps: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    # None: the algorithm's own default (PPO and VinePPO whiten; reinforce, rloo and grpo do not, their
    # baselines already centre the advantage); True or False: every algorithm obeys it
    whiten_advantages: Optional[bool] = None
    whiten_rewards: bool = False  # PPO: whiten per-token rewards (no mean shift) before GAE, as TRL/AlpacaFarm
    # how the per-token policy loss becomes one number: token-mean (default), seq-mean-token-mean,
    # seq-mean-token-sum, seq-mean-token-sum-norm (Dr. GRPO; L = generation.max_new_tokens), or any name in
    # blendrl.functional.losses.LOSS_AGGREGATIONS
    loss_agg: str = "token-mean"
    # the per-token surrogate: ppo (clipped ratio), gspo (the sequence's length-normalised ratio), cispo (clipped,
    # stopped importance weight × REINFORCE), or any name in blendrl.functional.surrogates.POLICY_LOSSES
    policy_loss: str = "ppo"
    clip_low: Optional[float] = None  # ε_low (ratio floor 1 − ε_low); None: clip_eps
    clip_high: Optional[float] = None  # ε_high (ceiling 1 + ε_high; DAPO's clip-higher: 0.28); None: clip_eps
    dual_clip: Optional[float] = None  # c > 1: a negative-advantage token's loss is at most −c·A (dual-clip PPO)
    entropy_coef: float = 0.0  # > 0: loss − coef·agg(policy entropy), a bonus (policy/entropy is always logged)
    # truncated importance sampling against an inexact generator's log-probs (vLLM in bfloat16): each token's loss
    # times min(π_old / π_engine, tis_cap); None: off. Ignored where the generator's log-probs are the trainer's
    tis_cap: Optional[float] = None
    vine: VineConfig = field(default_factory=VineConfig)
    lagrangian: LagrangianConfig = field(default_factory=LagrangianConfig)

    def validate(self) -> None:
        _require(self.epochs >= 1, "epochs: must be >= 1")
        _require(not self.whiten_rewards or self.name == "ppo", "whiten_rewards: only ppo whitens per-token rewards "
                 "(before GAE); the critic-free estimators use sequence rewards")
        _require(self.clip_eps > 0, "clip_eps: must be > 0")
        _require(self.tis_cap is None or self.tis_cap > 0, "tis_cap: must be > 0 (or null: off)")
        for name in ("clip_low", "clip_high"):
            _require(getattr(self, name) is None or getattr(self, name) > 0, f"{name}: must be > 0 (or null)")
        _require(self.dual_clip is None or self.dual_clip > 1, "dual_clip: must be > 1 (or null: off)")
        _require(self.entropy_coef >= 0, "entropy_coef: must be >= 0")
