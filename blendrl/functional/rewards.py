"""Reward shaping: running normalisation and clipping, missing-EOS penalty, per-token reward with KL.

docs/algorithms.md §2 (PPO-max eq. 18, token-level KL penalty) and §11 (reward shaping, missing-EOS penalty).
"""
from __future__ import annotations

import torch


class RunningMoments:
    """Running mean and population std of every score seen so far (Chan et al.'s parallel update).

    ``normalize(x, clip)`` gives PPO-max eq. 18: ``clip((r − r̄)/σ(r), −δ, δ)`` with historical r̄, σ(r); the batch is
    folded into the history first. ``mode="scale"`` divides by σ only (MOSS-RLHF "scaling").
    """

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 1.0
        self.count = 0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double().flatten()
        n = x.numel()
        if n == 0:
            return
        b_mean = x.mean().item()
        b_var = x.var(unbiased=False).item()
        if self.count == 0:
            self.mean, self.var, self.count = b_mean, b_var, n
            return
        total = self.count + n
        delta = b_mean - self.mean
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> float:
        return max(self.var, 0.0) ** 0.5

    def normalize(self, x: torch.Tensor, clip: float | None = None, mode: str = "normalize",
                  update: bool = True) -> torch.Tensor:
        """Update with ``x`` (unless ``update`` is false) then return it normalised (``mode`` ``normalize`` or
        ``scale``) and clipped to ±clip."""
        if update:
            self.update(x)
        std = max(self.std, 1e-8)
        out = (x - self.mean) / std if mode == "normalize" else x / std
        return out if clip is None else out.clamp(-clip, clip)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = float(state["mean"]), float(state["var"]), int(state["count"])


def apply_missing_eos_penalty(scores: torch.Tensor, finished: torch.Tensor, penalty: float) -> torch.Tensor:
    """``score − penalty`` for every response without EOS (TRL, CGPO). Shapes: (N,), bool (N,) → (N,)."""
    return scores - penalty * (~finished).to(scores.dtype)


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int, penalty: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025): 0 up to ``max_len − buffer`` tokens, then falling linearly
    to ``−penalty`` at ``max_len``: ``−penalty · max(0, L − (max_len − buffer)) / buffer``. Shapes: (N,) → (N,)."""
    excess = (lengths.float() - (max_len - buffer)).clamp_min(0)
    return -penalty * excess.clamp_max(buffer) / buffer


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last valid token of each row (the EOS, or the last sampled token). (B, T) → long (B,)."""
    return (mask.sum(dim=1).long() - 1).clamp_min(0)


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token reward ``r_t = −β·kl_t·mask_t`` (β = ``kl_coef``, the config's ``kl.coef`` as the KL controller
    holds it) plus the sequence score on the last valid token (§11, §2).

    Shapes: ``scores`` (B,), ``kl``, ``mask`` (B, T) → (B, T).
    """
    rewards = -kl_coef * kl * mask  # (B, T)
    idx = last_token_index(mask)  # (B,)
    return rewards.scatter_add(1, idx[:, None], scores[:, None].to(rewards.dtype))
