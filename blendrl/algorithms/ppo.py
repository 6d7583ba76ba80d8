"""PPO with a critic and GAE (docs/algorithms.md §11 standard PPO-for-LLM, §2 PPO-max).

Per-token reward ``r_t = −β·kl_t`` plus the (shaped) sequence score on the last token; GAE(γ, λ); advantages
whitened over the batch's valid tokens; loss = clipped policy loss (+ β·KL when the KL sits in the loss)
+ ``vf_coef`` × clipped value loss. Policy and critic are separate models, so the two terms are back-propagated
one after the other (same gradients as their sum, half the activation memory).
"""
from __future__ import annotations


from ..functional import gae, masked_mean, token_rewards, value_loss, whiten
from .base import ALGORITHMS, Algorithm


@ALGORITHMS.register("ppo")
class PPO(Algorithm):
    needs_critic = True

    def prepare(self, exp, kl_coef: float) -> dict:
        mask = exp.response_mask  # (B, T)
        kl = self.kl_in_reward(exp)  # (B, T)
        rewards = token_rewards(exp.scores, kl, mask, kl_coef)  # (B, T)
        if self.cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False) * mask
        adv, returns = gae(rewards, exp.values, mask, self.cfg.gamma, self.cfg.lam)  # (B, T) each
        exp.advantages = whiten(adv, mask) * mask if self.cfg.whiten_advantages is not False else adv
        exp.returns = returns
        return {
            "ppo/returns_mean": masked_mean(returns, mask).item(),
            "ppo/values_mean": masked_mean(exp.values, mask).item(),
            "ppo/token_reward_mean": masked_mean(rewards, mask).item(),
        }

    def critic_loss(self, mb, values):
        vf = value_loss(values, mb.values, mb.returns, mb.response_mask, self.cfg.value_clip_eps)
        return self.cfg.vf_coef * vf, {"loss/value": vf.item()}
