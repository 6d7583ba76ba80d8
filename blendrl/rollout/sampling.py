"""Exact categorical sampling without ``torch.multinomial`` (23 ms per call on (16, 49152) here vs ~1 ms).

Inverse-CDF sampling on the (optionally nucleus-filtered) distribution. Over the full vocabulary the CDF is searched
in two levels — block sums first, then a cumulative sum inside the one block that holds the draw — so no
sequential scan over all V entries is needed (``cumsum`` of (16, 49152) float64 alone took 2.8 ms here; the two
levels take ~0.4 ms). Top-p looks inside a ``topk`` first and falls back to a full sort only when the nucleus is
wider than that, so the result is the same as a full sort.
"""
from __future__ import annotations

import torch

_TOPK_FIRST = 256
_BLOCK = 1024


def _nucleus_keep(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep token i (in descending order) iff the probability mass strictly before it is < top_p."""
    before = sorted_probs.cumsum(-1) - sorted_probs  # (B, K)
    return before < top_p


def inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index i of each row with CDF(i-1) < u·total ≤ CDF(i), for non-negative ``weights`` (B, V) (unnormalised)
    and ``u`` (B, 1) float64 in [0, 1). The CDF is accumulated in float64, block by block.
    → (index long (B,), total float64 (B,))."""
    B, V = weights.shape
    if V <= 2 * _BLOCK:
        cdf = weights.double().cumsum(-1)  # (B, V)
        return torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(V - 1)[:, 0], cdf[:, -1]
    n_blocks = -(-V // _BLOCK)
    padded = torch.nn.functional.pad(weights, (0, n_blocks * _BLOCK - V)) if V % _BLOCK else weights
    blocks = padded.view(B, n_blocks, _BLOCK)  # (B, nb, bs)
    block_cdf = blocks.sum(-1, dtype=torch.float64).cumsum(-1)  # (B, nb)
    target = u * block_cdf[:, -1:]  # (B, 1)
    blk = torch.searchsorted(block_cdf, target).clamp_max(n_blocks - 1)  # (B, 1)
    before = torch.where(blk > 0, block_cdf.gather(1, (blk - 1).clamp_min(0)), torch.zeros_like(target))  # (B, 1)
    inner = blocks[torch.arange(B), blk[:, 0]].double().cumsum(-1) + before  # (B, bs)
    pos = torch.searchsorted(inner, target).clamp_max(_BLOCK - 1)  # (B, 1)
    return (blk * _BLOCK + pos)[:, 0].clamp_max(V - 1), block_cdf[:, -1]


def sample_tokens(logp: torch.Tensor, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one token per row from ``exp(logp)`` restricted to the top-p nucleus. (B, V) → long (B,)."""
    u = torch.rand((logp.shape[0], 1), generator=generator, dtype=torch.float64).to(logp.device)  # (B, 1)
    if top_p >= 1.0:
        return inverse_cdf(logp.exp(), u)[0]
    return _sample_nucleus(logp, top_p, u)


def _sample_nucleus(logp: torch.Tensor, top_p: float, u: torch.Tensor) -> torch.Tensor:
    V = logp.shape[1]
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


def sample_from_logits(logits: torch.Tensor, temperature: float, top_p: float,
                       generator: torch.Generator | None, u: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from ``softmax(logits / temperature)`` (top-p nucleus if ``top_p < 1``) and return the tokens and
    their log-probs under the *full* tempered distribution — what the training forward computes.
    ``u`` (B, 1) float64: the uniform draws to use (default: drawn from ``generator``).
    ``logits`` (B, V) is overwritten. → (tokens long (B,), logp (B,))."""
    z = logits.float().div_(temperature)  # (B, V)
    z = z.sub_(z.amax(-1, keepdim=True))  # (B, V) shifted: max 0, the same softmax
    if u is None:  # drawn on the CPU generator, then moved: the same draws on every device
        u = torch.rand((z.shape[0], 1), generator=generator, dtype=torch.float64).to(z.device)  # (B, 1)
    if top_p >= 1.0:
        tokens, total = inverse_cdf(z.exp(), u)  # the weights are unnormalised probabilities
        log_total = total.log().float()  # (B,)
    else:
        log_total = z.exp().sum(-1, dtype=torch.float64).log().float()
        tokens = _sample_nucleus(z - log_total[:, None], top_p, u)
    logp = z.gather(1, tokens[:, None])[:, 0] - log_total  # (B,)
    return tokens, logp
