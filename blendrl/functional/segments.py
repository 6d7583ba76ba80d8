"""Segment-level rewards (Yin et al. 2025; docs/algorithms.md §10): entropy segmentation, the segment-average
sequence score a reward model trains on, the location-aware normaliser and the spread over a segment's tokens.

Shapes: B rows of T tokens; ``mask`` (B, T) marks the response tokens a segmentation covers.
"""
from __future__ import annotations

import torch


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy (nats) of the next-token distribution at every position. (B, T, V) → (B, T)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def segment_ends(entropy: torch.Tensor, mask: torch.Tensor, threshold: float, min_length: int = 1) -> torch.Tensor:
    """Where segments end: at a masked token whose predictive entropy (of what comes next) exceeds ``threshold``
    once its segment has at least ``min_length`` tokens, and at every row's last masked token. (B, T) → (B, T)
    bool."""
    ends = torch.zeros_like(mask, dtype=torch.bool)
    live, high = (mask > 0).tolist(), (entropy > threshold).tolist()
    for b in range(mask.shape[0]):
        tokens = [t for t, m in enumerate(live[b]) if m]
        run = 0
        for t in tokens:
            run += 1
            if high[b][t] and run >= min_length:
                ends[b, t], run = True, 0
        if tokens:
            ends[b, tokens[-1]] = True
    return ends


def segment_mean(token_scores: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """A sequence's score as the mean of its segment rewards (the per-token head read at each segment's last
    token), the score the segment reward model trains on with the BT loss. (B, T), (B, T) bool → (B,)."""
    e = ends.to(token_scores.dtype)
    return (token_scores * e).sum(1) / e.sum(1).clamp_min(1)


def segment_positions(ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every segment end: its row and its relative position p = k/K (k = 1..K, K the row's segments).
    (B, T) bool → rows (S,), p (S,) in the order of ``ends.nonzero()``."""
    rows = ends.nonzero()[:, 0]
    k = ends.long().cumsum(1)[ends]  # (S,) 1..K
    total = ends.sum(1)[rows]  # (S,)
    return rows, k.float() / total.float()


def fit_location_normalizer(rewards: torch.Tensor, p: torch.Tensor, bins: int = 10) -> dict:
    """The location-aware normaliser ``μ(p) = a·log p + c``, ``σ(p) = b·log p + d`` fitted to segment rewards
    (S,) at positions p (S,): the rewards are binned by p, and each line is a count-weighted least-squares fit to
    the bins' means and population standard deviations against the bins' mean log p. → {a, c, b, d}."""
    logp = torch.log(p.double())
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    which = torch.clamp(torch.bucketize(p.double(), edges, right=False) - 1, 0, bins - 1)
    xs, means, stds, weights = [], [], [], []
    for b in range(bins):
        sel = which == b
        if sel.sum() >= 2:
            r = rewards.double()[sel]
            xs.append(logp[sel].mean()), means.append(r.mean()), stds.append(r.std(unbiased=False))
            weights.append(float(sel.sum()))
    if len(xs) < 2:
        r = rewards.double()
        return {"a": 0.0, "c": r.mean().item(), "b": 0.0, "d": max(r.std(unbiased=False).item(), 1e-6)}
    x, w = torch.stack(xs), torch.tensor(weights, dtype=torch.float64)

    def line(y: torch.Tensor) -> tuple[float, float]:
        xm, ym = (w * x).sum() / w.sum(), (w * y).sum() / w.sum()
        var = (w * (x - xm) ** 2).sum()
        slope = ((w * (x - xm) * (y - ym)).sum() / var).item() if var > 0 else 0.0
        return slope, (ym - slope * xm).item()

    a, c = line(torch.stack(means))
    b, d = line(torch.stack(stds))
    return {"a": a, "c": c, "b": b, "d": d}


def location_normalize(rewards: torch.Tensor, p: torch.Tensor, params: dict, min_std: float = 1e-3) -> torch.Tensor:
    """``r̂ = (r − μ(p))/σ(p)`` with the fitted lines (σ floored at ``min_std``). (S,), (S,) → (S,)."""
    logp = torch.log(p.to(rewards.dtype))
    mu = params["a"] * logp + params["c"]
    sigma = (params["b"] * logp + params["d"]).clamp_min(min_std)
    return (rewards - mu) / sigma


def spread_over_segments(segment_rewards: torch.Tensor, ends: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Dense per-token rewards: segment k's reward (S,) (one per end, in ``ends.nonzero()`` order) divided evenly
    over its tokens. (S,), (B, T) bool, (B, T) → (B, T); each row sums to its segments' total."""
    live = mask > 0
    # segment index of each token: ends strictly before it on its row
    seg = (ends.long().cumsum(1) - ends.long()) * live  # (B, T)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), ends.sum(1).cumsum(0)[:-1]])  # (B,) first segment id
    flat = (offsets[:, None] + seg)[live]  # (N_tokens,) global segment id per live token
    lengths = torch.bincount(flat, minlength=segment_rewards.numel()).clamp_min(1)
    out = torch.zeros(mask.shape, dtype=segment_rewards.dtype)
    out[live] = (segment_rewards / lengths)[flat]
    return out

