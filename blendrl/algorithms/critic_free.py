"""Critic-free policy gradient: REINFORCE (batch-mean baseline), RLOO and GRPO.

The sequence reward is the shaped score minus ``β·Σ_t kl_t`` (KL in the reward) or the score alone (KL in the
loss); its sequence advantage (``SEQUENCE_ADVANTAGES[name]``) is broadcast to every response token and optimised
with the clipped surrogate (ratio = 1 in the first epoch, so one epoch is plain policy gradient).
``algorithm.whiten_advantages: true`` whitens the broadcast advantages over the batch's response tokens; by
default (None) they are left as the estimator made them.
"""
from __future__ import annotations

from ..functional import SEQUENCE_ADVANTAGES, masked_sum, whiten
from .base import ALGORITHMS, Algorithm, batch_wide


class SequenceAdvantagePG(Algorithm):
    estimator = ""

    def __init__(self, cfg, kl, samples_per_prompt: int = 1) -> None:
        super().__init__(cfg, kl)
        self.k = samples_per_prompt

    def prepare(self, exp, kl_coef: float) -> dict:
        mask = exp.response_mask  # (B, T)
        seq_kl = masked_sum(self.kl_in_reward(exp), mask, dim=1)  # (B,)
        rewards = exp.scores - kl_coef * seq_kl  # (B,)
        adv = batch_wide(lambda r: SEQUENCE_ADVANTAGES[self.estimator](r, self.k), rewards)  # (B,)
        exp.advantages = adv[:, None] * mask  # (B, T)
        if self.cfg.whiten_advantages:
            exp.advantages = batch_wide(lambda a, m: whiten(a, m) * m, exp.advantages, mask)
        return {"pg/sequence_reward_mean": batch_wide(lambda r: r.mean()[None], rewards, local=False).item(),
                "pg/advantage_abs_mean": batch_wide(lambda a: a.abs().mean()[None], adv, local=False).item()}


@ALGORITHMS.register("reinforce")
class Reinforce(SequenceAdvantagePG):
    estimator = "reinforce"


def _leave_one_out_needs_two(node, root=None) -> None:
    if root is not None and hasattr(root, "train") and root.train.samples_per_prompt < 2:
        raise ValueError("name: rloo needs train.samples_per_prompt >= 2 (each sample's baseline is the others')")


@ALGORITHMS.register("rloo", check=_leave_one_out_needs_two)
class RLOO(SequenceAdvantagePG):
    estimator = "rloo"


@ALGORITHMS.register("grpo")
class GRPO(SequenceAdvantagePG):
    estimator = "grpo"


def build_algorithm(cfg, kl, samples_per_prompt: int, regularizer=None, horizon: int | None = None):
    """The configured algorithm; ``horizon``: the generation budget (``seq-mean-token-sum-norm``'s constant)."""
    cls = ALGORITHMS[cfg.name]
    algo = cls(cfg, kl, samples_per_prompt) if issubclass(cls, SequenceAdvantagePG) else cls(cfg, kl)
    algo.regularizer, algo.horizon = regularizer, horizon
    return algo
