"""PPO with a critic and GAE (docs/algorithms.md §11 standard PPO-for-LLM, §2 PPO-max).

Per-token reward ``r_t = −β·kl_t`` plus the (shaped) sequence score on the last token; GAE(γ, λ); advantages
whitened over the batch's valid tokens; loss = clipped policy loss (+ β·KL when the KL sits in the loss)
+ ``vf_coef`` × clipped value loss. Policy and critic are separate models, so the two terms are back-propagated
one after the other (same gradients as their sum, half the activation memory).
"""
from __future__ import annotations


from ..functional import gae, masked_mean, token_rewards, value_loss, whiten
from .base import ALGORITHMS, Algorithm, batch_wide


@ALGORITHMS.register("ppo")
class PPO(Algorithm):
    needs_critic = True

    def prepare(self, exp, kl_coef: float) -> dict:
        mask = exp.response_mask  # (B, T)
        kl = self.kl_in_reward(exp)  # (B, T)
        rewards = token_rewards(exp.scores, kl, mask, kl_coef)  # (B, T)
        if exp.token_scores is not None:  # a dense reward source (segment rewards, §10)
            rewards = rewards + exp.token_scores * mask
        if self.cfg.whiten_rewards:
            rewards = batch_wide(lambda r, m: whiten(r, m, shift_mean=False) * m, rewards, mask)
        adv, returns = gae(rewards, exp.values, mask, self.cfg.gamma, self.cfg.lam)  # (B, T) each
        exp.advantages = batch_wide(lambda a, m: whiten(a, m) * m, adv, mask) \
            if self.cfg.whiten_advantages is not False else adv
        exp.returns = returns
        return {
            "ppo/returns_mean": batch_wide(lambda x, m: masked_mean(x, m)[None], returns, mask, local=False).item(),
            "ppo/values_mean": batch_wide(lambda x, m: masked_mean(x, m)[None], exp.values, mask, local=False).item(),
            "ppo/token_reward_mean": batch_wide(lambda x, m: masked_mean(x, m)[None], rewards, mask,
                                                local=False).item(),
        }

    def critic_loss(self, mb, values):
        vf = value_loss(values, mb.values, mb.returns, mb.response_mask, self.cfg.value_clip_eps)
        return self.cfg.vf_coef * vf, {"loss/value": vf.item()}
