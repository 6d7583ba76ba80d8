"""CGPO's constrained optimizers as pure tensor math (docs/algorithms.md §1, Xu et al. 2024 "The Perfect Blend").

Notation: N = B prompts × K consecutive samples; ``reward`` (N,) the calibrated reward R_calib = σ(r − r(ā))
(eq. 5); ``passed`` (N,) bool, y = ∏_h J_h (every judge satisfied); ``seq_kl`` (N,) the sequence log-ratio
Σ_t (log π_w − log π_ref) of the sampled response, taken at generation time (no gradient); ``logp``/``ref_logp``
(n, T) token log-probs of the rows being trained and ``mask`` (n, T).

Selections return row indices; losses return a *sum* over their units (sequences, pairs, winners) so that the
trainer divides once by the units of the whole task batch, however it is split into micro-batches.
"""
from __future__ import annotations

import torch

from .masked import masked_sum


def calibrated_reward(reward: torch.Tensor, baseline_reward: torch.Tensor) -> torch.Tensor:
    """``R_calib = σ(r(s,a) − r(s,ā))`` (CGPO eq. 5). (N,), (N,) → (N,) in (0, 1)."""
    return torch.sigmoid(reward - baseline_reward)


def crpg_advantages(reward: torch.Tensor, passed: torch.Tensor, seq_kl: torch.Tensor, kl_max: float) -> torch.Tensor:
    """CRPG's advantage (eqs. 8, 11, 12): ``R_cr = R_calib·y``; ``R̃ = max(1 − seq_kl/KL_max, 0)·R_cr``;
    advantage ``R̃ − mean(R̃)`` over the task batch. (N,) ×3 → (N,)."""
    r_cr = reward * passed.float()  # (N,) eq. 8
    r_tilde = (1.0 - seq_kl / kl_max).clamp_min(0.0) * r_cr  # (N,) eq. 11
    return r_tilde - r_tilde.mean()  # (N,) eq. 12's batch-mean baseline


def crpg_loss(logp: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """``−Σ_i A_i · log π_w(a_i|s_i)`` with the sequence log-prob ``Σ_t logp`` (eq. 12; divide by n for the mean).
    (n, T), (n, T), (n,) → scalar."""
    return -(advantages * masked_sum(logp, mask, dim=1)).sum()


def _groups(x: torch.Tensor, k: int) -> torch.Tensor:
    if x.dim() != 1 or x.numel() % k:
        raise ValueError(f"expected a 1-D tensor of B×K={k} samples, got shape {tuple(x.shape)}")
    return x.view(-1, k)  # (B, K)


def codpo_pairs(reward: torch.Tensor, passed: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CODPO's pairs (eqs. 13–14): per prompt a⁺ = argmax r over X⁺ (passing samples) and a⁻ = argmin r over X⁻;
    when every sample passes, a⁻ = argmin r over all K (another sample than a⁺). A prompt with no passing sample
    (or K = 1 with nothing to pair) is skipped. Returns row indices ``(chosen (P,), rejected (P,))``."""
    r, ok = _groups(reward, k), _groups(passed, k)  # (B, K)
    chosen, rejected = [], []
    for b in range(r.shape[0]):
        pos = ok[b].nonzero().flatten()
        if len(pos) == 0:
            continue
        best = pos[r[b, pos].argmax()]
        neg = (~ok[b]).nonzero().flatten()
        if len(neg) == 0:
            neg = torch.tensor([j for j in range(k) if j != int(best)], dtype=torch.long)
            if len(neg) == 0:
                continue
        worst = neg[r[b, neg].argmin()]
        chosen.append(b * k + int(best))
        rejected.append(b * k + int(worst))
    return torch.tensor(chosen, dtype=torch.long), torch.tensor(rejected, dtype=torch.long)


def codpo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float = 0.1,
               lam: float = 5.0) -> torch.Tensor:
    """CODPO (eq. 15) summed over pairs. Rows come as pairs ``[a⁺₀, a⁻₀, a⁺₁, a⁻₁, …]``:
    ``ℓ = −log σ(β[(log π/π_ref)(a⁺) − (log π/π_ref)(a⁻)]) − (λ/|a⁺|)·log π_w(a⁺|s)``. Defaults β 0.1, λ 5 (TRL's
    CGPO config). (2P, T) ×3 → scalar."""
    ratio = masked_sum(logp - ref_logp, mask, dim=1).view(-1, 2)  # (P, 2) sequence log-ratios
    logp_pos = masked_sum(logp, mask, dim=1).view(-1, 2)[:, 0]  # (P,)
    len_pos = mask.sum(1).view(-1, 2)[:, 0].clamp_min(1.0)  # (P,)
    dpo = -torch.nn.functional.logsigmoid(beta * (ratio[:, 0] - ratio[:, 1]))  # (P,)
    return (dpo - lam * logp_pos / len_pos).sum()


def crraft_winners(reward: torch.Tensor, passed: torch.Tensor, seq_kl: torch.Tensor, kl_max: float,
                   k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CRRAFT's selection (eqs. 16–17): drop samples that fail a judge or have ``seq_kl > KL_max``; per prompt keep
    a* = argmax R_calib of the rest. Returns ``(winner rows (W,), prompts with no survivor (F,))``; the caller may
    fall back to the baseline ā for the latter (eq. 18)."""
    r = _groups(reward, k)  # (B, K)
    alive = _groups(passed, k) & (_groups(seq_kl, k) <= kl_max)  # (B, K)
    winners, empty = [], []
    for b in range(r.shape[0]):
        rows = alive[b].nonzero().flatten()
        if len(rows) == 0:
            empty.append(b)
            continue
        winners.append(b * k + int(rows[r[b, rows].argmax()]))
    return torch.tensor(winners, dtype=torch.long), torch.tensor(empty, dtype=torch.long)


def crraft_loss(logp: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``−Σ_i R_calib(s_i, a*_i) · log π_w(a*_i|s_i)`` (eq. 18: SFT on the winners weighted by their calibrated
    reward, a constant; divide by the number of nonzero weights, as TRL). (n, T), (n, T), (n,) → scalar."""
    return -(weights * masked_sum(logp, mask, dim=1)).sum()


def lagrangian_advantages(reward: torch.Tensor, costs: torch.Tensor, multipliers: torch.Tensor, seq_kl: torch.Tensor,
                          kl_max: float) -> torch.Tensor:
    """The Lagrangian penalised reward (safe-rlhf's cost penalty) with CGPO's KL factor (docs/algorithms.md §13):
    ``r̃ = max(1 − seq_kl/KL_max, 0)·R_calib − Σ_h λ_h·c_h``, and the advantage ``r̃ − mean(r̃)``.
    reward (N,), costs (N, H) (1 where judge h is violated), multipliers (H,), seq_kl (N,) → (N,)."""
    r_tilde = (1.0 - seq_kl / kl_max).clamp_min(0.0) * reward - costs @ multipliers  # (N,)
    return r_tilde - r_tilde.mean()


def dual_ascent(multipliers: torch.Tensor, violation: torch.Tensor, threshold: torch.Tensor,
                lr: float) -> torch.Tensor:
    """``λ_h ← max(0, λ_h + lr·(v_h − d_h))``: a multiplier grows while its constraint's violation rate v_h is above
    its threshold d_h and shrinks (to 0 at most) below it. (H,) ×3 → (H,)."""
    return (multipliers + lr * (violation - threshold)).clamp_min(0.0)
