"""Best-of-n measurement (Gao et al.; Coste et al. App.; docs/algorithms.md §3).

From a pool of N samples per prompt, the expected score of best-of-n (pick the highest *proxy* score among n drawn
without replacement) is estimated without bias by sorting the pool by proxy score ascending and weighting the
i-th sample (1-based) by ``C(i−1, n−1) / C(N, n)`` — the probability that it is the maximum of a random n-subset.
The same weights apply to any other score of the sample (the gold score). ``KL_bon = log n − (n−1)/n`` nats.
"""
from __future__ import annotations

import math

import torch


def bon_weights(N: int, n: int) -> torch.Tensor:
    """(N,) float64 weights over samples sorted by proxy score ascending; they sum to 1. Needs 1 ≤ n ≤ N."""
    if not 1 <= n <= N:
        raise ValueError(f"best-of-n needs 1 <= n <= N, got n={n}, N={N}")
    i = torch.arange(1, N + 1, dtype=torch.float64)
    log_choose = torch.lgamma(i) - math.lgamma(n) - torch.lgamma((i - n + 1).clamp(min=1))  # log C(i−1, n−1)
    log_total = math.lgamma(N + 1) - math.lgamma(n + 1) - math.lgamma(N - n + 1)  # log C(N, n)
    return torch.where(i >= n, (log_choose - log_total).exp(), torch.zeros_like(i))


def best_of_n(proxy: torch.Tensor, others: torch.Tensor | None, n: int) -> tuple[float, float | None]:
    """Expected proxy score (and ``others``' score, e.g. gold) of best-of-n by proxy over one prompt's pool.

    ``proxy`` (N,), ``others`` (N,) or None → (E[proxy of the pick], E[other of the pick]). Ties in proxy are
    broken by position (stable sort).
    """
    order = torch.argsort(proxy, stable=True)
    w = bon_weights(proxy.numel(), n)
    e_proxy = float((w * proxy[order].double()).sum())
    e_other = float((w * others[order].double()).sum()) if others is not None else None
    return e_proxy, e_other


def kl_bon(n: int) -> float:
    """Analytic KL of best-of-n to the sampling policy: ``log n − (n − 1)/n`` nats."""
    return math.log(n) - (n - 1) / n
