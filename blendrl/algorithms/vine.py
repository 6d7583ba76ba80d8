"""VinePPO (Kazemnejad et al. 2024; docs/algorithms.md §15): PPO whose advantages come from Monte-Carlo values.

The trainer splits each response into steps and estimates the value of the state at the start of every step by
sampling continuations from the current policy (:mod:`blendrl.training.vine`, ``needs_mc_values``). Every token
of step j then gets ``A_j = Σ_{t∈j} r_t + V̂(s_{j+1}) − V̂(s_j)`` with the per-token rewards of PPO (the score on
the last token, −β·kl_t when the KL sits in the reward); no critic is trained. Advantages are whitened over the
batch's tokens unless ``algorithm.whiten_advantages`` is false. The loss is PPO's clipped surrogate.
"""
from __future__ import annotations

from ..functional import masked_mean, token_rewards, whiten
from ..functional.advantages import step_advantages
from .base import ALGORITHMS, Algorithm, batch_wide


@ALGORITHMS.register("vineppo")
class VinePPO(Algorithm):
    needs_critic = False
    needs_mc_values = True

    def prepare(self, exp, kl_coef: float) -> dict:
        mask = exp.response_mask  # (B, T)
        rewards = token_rewards(exp.scores, self.kl_in_reward(exp), mask, kl_coef)  # (B, T)
        adv = step_advantages(rewards, exp.values, exp.step_ids, mask)  # (B, T)
        exp.advantages = batch_wide(lambda a, m: whiten(a, m) * m, adv, mask) \
            if self.cfg.whiten_advantages is not False else adv
        return {"vine/value_mean": batch_wide(lambda x, m: masked_mean(x, m)[None], exp.values, mask,
                                              local=False).item(),
                "vine/advantage_abs_mean": batch_wide(lambda x, m: masked_mean(x.abs(), m)[None], adv, mask,
                                                      local=False).item()}
