"""PPO with a critic and GAE (docs/algorithms.md §11 standard PPO-for-LLM, §2 PPO-max), and safe-rlhf's
PPO-Lagrangian (§16: a reward critic and a cost critic under a cost constraint).

Per-token reward ``r_t = −β·kl_t`` plus the (shaped) sequence score on the last token; GAE(γ, λ); advantages
whitened over the batch's valid tokens; loss = clipped policy loss (+ β·KL when the KL sits in the loss)
+ ``vf_coef`` × clipped value loss. Policy and critic are separate models, so the two terms are back-propagated
one after the other (same gradients as their sum, half the activation memory).
"""
from __future__ import annotations

import torch

from ..functional import constrained_advantages, gae, masked_mean, token_rewards, value_loss, whiten
from ..functional.cgpo import dual_ascent
from .base import ALGORITHMS, Algorithm, batch_wide


def _batch_mean(x, mask) -> float:
    """The mean of ``x`` (B, T) over the whole batch's valid tokens (every rank's)."""
    return batch_wide(lambda v, m: masked_mean(v, m)[None], x, mask, local=False).item()


@ALGORITHMS.register("ppo")
class PPO(Algorithm):
    needs_critic = True

    def prepare(self, exp, kl_coef: float) -> dict:
        adv, rewards = self.reward_advantages(exp, self.kl_in_reward(exp), kl_coef)
        exp.advantages = self.whitened(adv, exp.response_mask)
        return self.value_metrics(exp, rewards)

    def reward_advantages(self, exp, kl: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE over the per-token rewards (KL penalty, the score on the last token, a dense source's token
        rewards); sets ``exp.returns``. → (advantages (B, T), token rewards (B, T))."""
        mask = exp.response_mask  # (B, T)
        rewards = token_rewards(exp.scores, kl, mask, kl_coef)  # (B, T)
        if exp.token_scores is not None:  # a dense reward source (segment rewards, §10)
            rewards = rewards + exp.token_scores * mask
        if self.cfg.whiten_rewards:
            rewards = batch_wide(lambda r, m: whiten(r, m, shift_mean=False) * m, rewards, mask)
        adv, exp.returns = gae(rewards, exp.values, mask, self.cfg.gamma, self.cfg.lam)  # (B, T) each
        return adv, rewards

    def whitened(self, adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The advantages whitened over the whole batch's valid tokens, unless ``whiten_advantages`` is False."""
        return batch_wide(lambda a, m: whiten(a, m) * m, adv, mask) if self.cfg.whiten_advantages is not False \
            else adv

    def value_metrics(self, exp, rewards: torch.Tensor) -> dict:
        mask = exp.response_mask
        return {"ppo/returns_mean": _batch_mean(exp.returns, mask), "ppo/values_mean": _batch_mean(exp.values, mask),
                "ppo/token_reward_mean": _batch_mean(rewards, mask)}

    def critic_loss(self, mb, values, critic: str = "critic"):
        """The clipped value loss of ``critic`` (``critic``: V_old ``mb.values``, targets ``mb.returns``;
        ``cost_critic``: ``mb.cost_values``, ``mb.cost_returns``), times ``vf_coef``."""
        old, returns = (mb.values, mb.returns) if critic == "critic" else (mb.cost_values, mb.cost_returns)
        vf = value_loss(values, old, returns, mb.response_mask, self.cfg.value_clip_eps)
        return self.cfg.vf_coef * vf, {"loss/value" if critic == "critic" else "loss/cost_value": vf.item()}


@ALGORITHMS.register("ppo-lagrangian")
class PPOLagrangian(PPO):
    """safe-rlhf's PPO-Lagrangian (docs/algorithms.md §16). Before each update λ moves by dual ascent on the batch's
    mean episode cost J_c against ``lagrangian.threshold`` d: ``λ ← min(max(0, λ + η·(J_c − d)), λ_max)``; the
    policy then steps on ``(A_r − λ·A_c) / (1 + λ)`` with the new λ, A_r and A_c the GAE of the reward and the cost
    critic. The KL penalty enters both sides (``−β·kl_t`` in the reward, ``+β·kl_t`` in the cost), so the combined
    advantage carries it at β whatever λ is (safe-rlhf splits β in halves the same way)."""

    needs_cost_critic = True

    def __init__(self, cfg, kl) -> None:
        super().__init__(cfg, kl)
        self.lam = float(cfg.lagrangian.lambda_init)

    def prepare(self, exp, kl_coef: float) -> dict:
        c, mask = self.cfg.lagrangian, exp.response_mask  # mask (B, T)
        kept = batch_wide(lambda x, m: torch.stack([(x * (m.sum(1) > 0)).sum(), (m.sum(1) > 0).sum()]),
                          exp.costs.to(mask.dtype), mask, local=False)  # (2,): the kept rows' cost sum and count
        episode_cost = (kept[0] / kept[1]).item() if kept[1] > 0 else None
        if episode_cost is not None:
            lam = dual_ascent(torch.tensor([self.lam]), torch.tensor([episode_cost]), torch.tensor([c.threshold]),
                              c.lambda_lr).item()
            self.lam = lam if c.lambda_max is None else min(lam, c.lambda_max)
        kl = self.kl_in_reward(exp)  # (B, T)
        reward_adv, rewards = self.reward_advantages(exp, kl, kl_coef)
        costs = token_rewards(exp.costs.to(kl.dtype), -kl, mask, kl_coef)  # (B, T) +β·kl_t, the cost on the last
        cost_adv, exp.cost_returns = gae(costs, exp.cost_values, mask, self.cfg.gamma, self.cfg.lam)
        exp.advantages = self.whitened(constrained_advantages(reward_adv, cost_adv, self.lam), mask)
        return {**self.value_metrics(exp, rewards), "lagrangian/lambda": self.lam,  # J_c is logged as cost/mean
                "ppo/cost_returns_mean": _batch_mean(exp.cost_returns, mask),
                "ppo/cost_values_mean": _batch_mean(exp.cost_values, mask)}

    def state_dict(self) -> dict:
        return {"lambda": self.lam}

    def load_state_dict(self, state: dict) -> None:
        self.lam = float(state["lambda"])
