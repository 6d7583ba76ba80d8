"""Exact categorical sampling without ``torch.multinomial`` (23 ms per call on (16, 49152) here vs ~1 ms).

Inverse-CDF sampling on the (optionally nucleus-filtered) distribution; top-p looks inside a ``topk`` first and
falls back to a full sort only when the nucleus is wider than that, so the result is the same as a full sort.
"""
from __future__ import annotations

import torch

_TOPK_FIRST = 256


def _nucleus_keep(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep token i (in descending order) iff the probability mass strictly before it is < top_p."""
    before = sorted_probs.cumsum(-1) - sorted_probs  # (B, K)
    return before < top_p


def sample_tokens(logp: torch.Tensor, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one token per row from ``exp(logp)`` restricted to the top-p nucleus. (B, V) → long (B,)."""
    B, V = logp.shape
    u = torch.rand((B, 1), generator=generator, dtype=torch.float64)  # (B, 1)
    if top_p >= 1.0:
        cdf = logp.exp().double().cumsum(-1)  # (B, V)
        idx = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(V - 1)
        return idx[:, 0]
    k = min(_TOPK_FIRST, V)
    vals, ids = torch.topk(logp, k, dim=-1)  # (B, k) descending
    probs = vals.exp()
    if (probs.sum(-1) < top_p).any() and k < V:  # nucleus may be wider than k: full sort
        vals, ids = torch.sort(logp, dim=-1, descending=True)
        probs = vals.exp()
    kept = probs * _nucleus_keep(probs, top_p)  # (B, K)
    cdf = kept.double().cumsum(-1)
    pos = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(cdf.shape[1] - 1)  # (B, 1)
    return ids.gather(1, pos)[:, 0]
