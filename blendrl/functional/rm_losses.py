"""Reward-model losses on scores of chosen and rejected responses (Secrets of RLHF II; docs/algorithms.md §2).

Shapes: ``chosen``, ``rejected`` (N,) scalar rewards r(x, y_c), r(x, y_r); Δ = chosen − rejected. Per-pair
preference strength ``mu`` (N,) comes from :func:`preference_strength`. Every pair loss is
:func:`denoised_pair_loss` with a per-pair margin and smoothing; the paper's named forms below are its special
cases, and a reward-model run picks one by its recipe name (``blendrl.training.rm.recipes.RECIPES``, the one
registry of pair losses).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, mu=None, margin: float = 0.0) -> torch.Tensor:
    """Bradley–Terry with an optional fixed margin: ``−mean log σ(Δ − margin)``. (N,), (N,) → scalar."""
    return denoised_pair_loss(chosen, rejected, torch.full_like(chosen, margin), torch.zeros_like(chosen))


def label_smoothing_loss(chosen: torch.Tensor, rejected: torch.Tensor, mu=None, alpha: float = 0.1) -> torch.Tensor:
    """Secrets II eq. 5: ``−mean[(1−α)·log σ(Δ) + α·log(1 − σ(Δ))]``. α is not given in the paper (default 0.1)."""
    return denoised_pair_loss(chosen, rejected, torch.zeros_like(chosen), torch.full_like(chosen, alpha))


def adaptive_margin_loss(chosen: torch.Tensor, rejected: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Secrets II eq. 6, μ̂ read inside the sigmoid (as Llama-2's margin): ``−mean log σ(Δ − μ̂)``."""
    return denoised_pair_loss(chosen, rejected, mu, torch.zeros_like(chosen))


def soft_label_margin_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, mu: torch.Tensor, alpha: float = 0.1
) -> torch.Tensor:
    """Secrets II "Soft Label + Margin": adaptive margin on every pair; label smoothing only where μ̂ < 0.

    Per pair: ``−[(1−a_i)·log σ(Δ_i − μ̂_i) + a_i·log(1 − σ(Δ_i − μ̂_i))]`` with ``a_i = α·1[μ̂_i < 0]``.
    """
    return denoised_pair_loss(chosen, rejected, mu, alpha * (mu < 0).to(chosen.dtype))


def denoised_pair_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor,
                       smoothing: torch.Tensor) -> torch.Tensor:
    """The general form of every Secrets II pair loss: per pair ``z_i = Δ_i − m_i`` and
    ``ℓ_i = −[(1 − a_i)·log σ(z_i) + a_i·log σ(−z_i)]``, averaged. ``margin`` m (N,) and ``smoothing`` a (N,) are
    per-pair (zeros give Bradley–Terry). (N,) ×4 → scalar."""
    z = chosen - rejected - margin  # (N,)
    return -((1 - smoothing) * F.logsigmoid(z) + smoothing * F.logsigmoid(-z)).mean()


def preference_strength(diffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Secrets II eq. 4. ``diffs`` (M, N) = r_m(x, y_c) − r_m(x, y_r) for M reward models.

    Returns ``(mu, sigma)``, each (N,): the mean over models and the population std (÷M).
    """
    return diffs.mean(0), diffs.std(0, unbiased=False)


def flip_lowest(mu: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask (N,) of the ``fraction`` of pairs with the lowest μ̂ — the pairs the Flip recipe swaps."""
    n = int(round(fraction * mu.numel()))
    mask = torch.zeros_like(mu, dtype=torch.bool)
    if n > 0:
        mask[torch.argsort(mu)[:n]] = True
    return mask


def flip_confident(mu: torch.Tensor, sigma: torch.Tensor, z: float) -> torch.Tensor:
    """Boolean mask (N,) of pairs the strength ensemble is confident are mislabelled: ``μ̂ < −z·σ̂`` (z = 0: every
    pair with μ̂ < 0). Unlike :func:`flip_lowest` the number flipped follows the data, not a fixed fraction."""
    return mu < -z * sigma


def fit_temperature(delta: torch.Tensor, steps: int = 100) -> float:
    """The temperature T > 0 minimising the held-out pair NLL ``−mean log σ(Δ/T)``, Δ (N,) = r(y_c) − r(y_r) on
    labelled pairs (temperature scaling, Guo et al. 2017), by Newton steps on β = 1/T (the NLL is convex in β); a
    set the model ranks all right (or all wrong) has no finite optimum and is an error. (N,) → float."""
    if not ((delta > 0).any() and (delta < 0).any()):
        raise ValueError("fit_temperature: the calibration pairs are all ranked one way (no finite temperature)")
    d = delta.double()
    inv = torch.tensor(1.0, dtype=torch.float64)  # β = 1/T; NLL(β) = −mean log σ(β·Δ) is convex in β
    for _ in range(steps):
        p = torch.sigmoid(-inv * d)  # (N,)
        grad = -(d * p).mean()
        hess = (d * d * p * (1 - p)).mean()
        step = grad / hess.clamp_min(1e-12)
        inv = torch.clamp(inv - step, min=inv / 10)  # stay positive
        if step.abs() < 1e-10:
            break
    return float(1.0 / inv)


def simcse_loss(h_s: torch.Tensor, h_t: torch.Tensor, tau: float) -> torch.Tensor:
    """Secrets II eq. 9 (InfoNCE over cosine similarity of two dropout views). (N, H), (N, H) → scalar.

    ``ℓ_i = −log( e^{sim(h_s^i, h_t^i)/τ} / Σ_j e^{sim(h_s^i, h_t^j)/τ} )``, averaged over i.
    """
    sim = F.cosine_similarity(h_s[:, None, :], h_t[None, :, :], dim=-1) / tau  # (N, N)
    return F.cross_entropy(sim, torch.arange(sim.shape[0], device=sim.device))


def sinkhorn_codes(scores: torch.Tensor, eps: float = 0.05, iters: int = 3) -> torch.Tensor:
    """SwAV's codes: an equal-partition soft assignment of N samples to K prototypes by Sinkhorn–Knopp on
    ``exp(scores/ε)`` (each row sums to 1, each prototype gets N/K in total). No gradient. (N, K) → (N, K)."""
    with torch.no_grad():
        n, k = scores.shape
        q = torch.exp((scores - scores.max()) / eps).T  # (K, N)
        q /= q.sum()
        for _ in range(iters):
            q /= q.sum(1, keepdim=True) * k  # each prototype's total → 1/K
            q /= q.sum(0, keepdim=True) * n  # each sample's total → 1/N
        return (q * n).T  # (N, K)


def swav_loss(h_s: torch.Tensor, h_t: torch.Tensor, prototypes: torch.Tensor, tau: float, eps: float = 0.05,
              iters: int = 3) -> torch.Tensor:
    """Secrets II eqs. 7–8 (SwAV swapped prediction) over two views. (N, H), (N, H), (K, H) → scalar.

    With z the L2-normalised views and c_k the normalised prototypes, scores ``s = zᵀc``; codes q from
    :func:`sinkhorn_codes`; ``ℓ(z_t, q_s) = −Σ_k q_s^k log softmax_k(z_tᵀc_k/τ)``; the loss is
    ``½·mean_i[ℓ(z_t^i, q_s^i) + ℓ(z_s^i, q_t^i)]`` (each view predicts the other's code).
    """
    c = F.normalize(prototypes, dim=1)  # (K, H)
    s_s, s_t = F.normalize(h_s, dim=1) @ c.T, F.normalize(h_t, dim=1) @ c.T  # (N, K) each
    q_s, q_t = sinkhorn_codes(s_s, eps, iters), sinkhorn_codes(s_t, eps, iters)
    swapped = (q_s * F.log_softmax(s_t / tau, dim=1)).sum(1) + (q_t * F.log_softmax(s_s / tau, dim=1)).sum(1)
    return -0.5 * swapped.mean()


def metarm_difference_loss(rewards: torch.Tensor) -> torch.Tensor:
    """Secrets II eq. 11: ``J = (2/k²)·Σ_{i<j} σ(|r_i − r_j|)`` per prompt, averaged over prompts.

    ``rewards`` (P, k): k responses sampled from the shifted policy for each of P prompts. → scalar.
    """
    k = rewards.shape[1]
    diff = (rewards[:, :, None] - rewards[:, None, :]).abs()  # (P, k, k)
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=rewards.device), diagonal=1)
    return (2.0 / k**2 * torch.sigmoid(diff[:, upper]).sum(-1)).mean()
