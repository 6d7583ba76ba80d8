"""Advantage estimators: GAE for critics; REINFORCE / RLOO / GRPO for critic-free algorithms.

Sequence-level estimators are registered in ``SEQUENCE_ADVANTAGES`` and share the signature
``fn(scores (N,), k) -> advantages (N,)`` where the N samples are N/k prompts × k consecutive samples.
"""
from __future__ import annotations

import torch

from ..core.registry import Registry

SEQUENCE_ADVANTAGES: Registry = Registry("sequence advantage estimator")


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (docs/algorithms.md §11, §2 "GAE in code").

    ``δ_t = r_t + γ·V_{t+1} − V_t``, ``A_t = δ_t + γ·λ·A_{t+1}``, over the tokens where ``mask`` is 1, with V past
    the last one = 0. t + 1 is the next masked-in token: a multi-turn episode's environment tokens (mask 0 between
    the policy's turns) are skipped, so the policy's turns chain as one sequence of actions (a single response's
    mask has no holes, and this is the usual recursion). Returns ``(advantages, returns)`` with ``returns =
    advantages + values`` (before any whitening); both are 0 where the mask is. Shapes: ``rewards``, ``values``,
    ``mask`` (B, T) → two (B, T).
    """
    values = values * mask  # (B, T) V = 0 on and after padding
    rewards = rewards * mask  # (B, T)
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)  # (B, T)
    next_adv = torch.zeros_like(rewards[:, 0])  # (B,) A of the next masked-in token
    next_value = torch.zeros_like(values[:, 0])  # (B,) V of the next masked-in token
    for t in reversed(range(T)):
        kept = mask[:, t] > 0  # (B,)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        here = (delta + gamma * lam * next_adv) * mask[:, t]
        adv[:, t] = here
        next_adv = torch.where(kept, here, next_adv)
        next_value = torch.where(kept, values[:, t], next_value)
    returns = (adv + values) * mask  # (B, T)
    return adv, returns


def constrained_advantages(reward_adv: torch.Tensor, cost_adv: torch.Tensor, lam: float) -> torch.Tensor:
    """safe-rlhf's PPO-Lagrangian advantage ``(A_r − λ·A_c) / (1 + λ)`` (docs/algorithms.md §16): the reward
    critic's GAE less λ times the cost critic's, divided by 1 + λ so its scale stays that of one advantage however
    large λ grows. (B, T), (B, T), λ ≥ 0 → (B, T)."""
    return (reward_adv - lam * cost_adv) / (1.0 + lam)


def _grouped(scores: torch.Tensor, k: int) -> torch.Tensor:
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D (N,), got shape {tuple(scores.shape)}")
    if k < 1 or scores.numel() % k:
        raise ValueError(f"{scores.numel()} scores cannot be grouped into groups of k={k}")
    return scores.view(-1, k)  # (N/k, k)


@SEQUENCE_ADVANTAGES.register("reinforce")
def reinforce_advantages(scores: torch.Tensor, k: int = 1) -> torch.Tensor:
    """REINFORCE with a batch-mean baseline: ``A_i = s_i − mean_j s_j`` over the whole batch (CGPO eq. 12 form).

    ``k`` is accepted for a uniform signature and ignored. Shapes: (N,) → (N,).
    """
    _grouped(scores, k)
    return scores - scores.mean()


@SEQUENCE_ADVANTAGES.register("rloo")
def rloo_advantages(scores: torch.Tensor, k: int) -> torch.Tensor:
    """REINFORCE leave-one-out: ``A_i = s_i − (Σ_{j≠i} s_j)/(k−1)`` within each group of k samples of a prompt.

    Needs k ≥ 2. Shapes: (N,) → (N,).
    """
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt")
    g = _grouped(scores, k)  # (N/k, k)
    baseline = (g.sum(dim=1, keepdim=True) - g) / (k - 1)  # (N/k, k)
    return (g - baseline).reshape(-1)


@SEQUENCE_ADVANTAGES.register("grpo")
def grpo_advantages(scores: torch.Tensor, k: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO group normalisation: ``A_i = (s_i − mean_g) / (std_g + eps)`` with the population std of the group.

    Shapes: (N,) → (N,).
    """
    g = _grouped(scores, k)  # (N/k, k)
    mean = g.mean(dim=1, keepdim=True)
    std = g.std(dim=1, unbiased=False, keepdim=True)
    return ((g - mean) / (std + eps)).reshape(-1)


def step_ids(response_ids: torch.Tensor, mask: torch.Tensor, step_tokens: int,
             split_ids: tuple[int, ...] = ()) -> torch.Tensor:
    """VinePPO's reasoning steps (docs/algorithms.md §15): the step index of every response token. A step ends after
    a token in ``split_ids`` (e.g. newlines) or after ``step_tokens`` tokens, whichever comes first; padding gets
    the last step's index. Shapes: ``response_ids``, ``mask`` (B, T) → (B, T) long."""
    B, T = response_ids.shape
    out = torch.zeros(B, T, dtype=torch.long)
    ids, m = response_ids.tolist(), (mask > 0).tolist()
    for b in range(B):
        step, used = 0, 0
        for t in range(T):
            if not m[b][t]:
                out[b, t] = step
                continue
            if used == step_tokens:
                step, used = step + 1, 0
            out[b, t] = step
            used += 1
            if ids[b][t] in split_ids and t + 1 < T and m[b][t + 1]:
                step, used = step + 1, 0
    return out.to(response_ids.device)


def step_advantages(rewards: torch.Tensor, values: torch.Tensor, steps: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """VinePPO's advantage (γ = 1): every token of step j gets ``A_j = Σ_{t∈j} r_t + V̂(s_{j+1}) − V̂(s_j)``, where
    V̂(s_j) is the Monte-Carlo value of the state at the start of step j (``values`` holds it on each of the step's
    tokens) and V̂ after the last step is 0. Shapes: ``rewards``, ``values``, ``steps``, ``mask`` (B, T) → (B, T)."""
    S = int(steps.max()) + 2 if steps.numel() else 1
    live = mask > 0
    step_r = torch.zeros(rewards.shape[0], S, dtype=rewards.dtype, device=rewards.device)
    step_r.scatter_add_(1, steps, rewards * mask)  # (B, S) Σ of each step's token rewards
    step_v = torch.zeros_like(step_r).scatter_(1, torch.where(live, steps, S - 1),
                                               torch.where(live, values, torch.zeros_like(values)))  # (B, S)
    step_v[:, -1] = 0.0  # the sink of padding; also "after the last step" for the longest row
    adv = step_r[:, :-1] + step_v[:, 1:] - step_v[:, :-1]  # (B, S−1)
    return adv.gather(1, steps.clamp_max(S - 2)) * mask
