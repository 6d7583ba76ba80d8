"""Rollout filters of PF-PPO (policy filtration, Shen et al. 2024; docs/algorithms.md §14).

A reward model is more reliable on some responses than on others — in PF-PPO's measurements, at the high and low
ends of its reward range more than in the middle — so PF-PPO samples N responses per prompt and trains on a subset
chosen by reward. Each filter is registered in ``ROLLOUT_FILTERS`` as
``fn(scores (B,), valid (B,) bool, k, keep, gen) -> kept (B,) bool`` over B = G·k rows, the k responses of each of
G prompts consecutive. A row that is not ``valid`` (its reward could not be computed) is never kept; a group with
at most ``keep`` valid rows keeps all of them.
"""
from __future__ import annotations

import torch

from ..core.registry import Registry

ROLLOUT_FILTERS: Registry = Registry("rollout filter")


def _needs_ppo_groups(node, root=None) -> None:
    """A filter's own check of a run config: PPO with a critic (group baselines would still see the filtered rows'
    rewards) and fewer rows kept than sampled per prompt."""
    if root is None or not hasattr(root, "algorithm"):
        return
    if root.algorithm.name != "ppo":
        raise ValueError("kind: policy filtration needs algorithm.name ppo (group baselines would still see the "
                         "filtered rows' rewards)")
    if node.keep >= root.train.samples_per_prompt:
        raise ValueError("keep: must be < train.samples_per_prompt (there is nothing to filter otherwise)")


def _ranked(scores: torch.Tensor, valid: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group: row positions sorted best-first among valid rows (invalid last) and the valid counts.
    (B,) → (G, k) long, (G,) long."""
    s = torch.where(valid, scores, torch.full_like(scores, float("-inf"))).view(-1, k)  # (G, k)
    return torch.argsort(s, dim=1, descending=True, stable=True), valid.view(-1, k).sum(1)


def _mark(order: torch.Tensor, take: torch.Tensor, k: int) -> torch.Tensor:
    """kept (B,) from per-group positions ``order`` (G, k) and a (G, k) bool of which ranks to take."""
    kept = torch.zeros_like(take)
    kept.scatter_(1, order, take)
    return kept.view(-1)


@ROLLOUT_FILTERS.register("best_of_n", check=_needs_ppo_groups)
def best_of_n(scores, valid, k: int, keep: int, gen=None) -> torch.Tensor:
    """The ``keep`` highest-reward responses of each prompt (PF-PPO's BoN)."""
    order, n_valid = _ranked(scores, valid, k)
    ranks = torch.arange(k)[None, :]  # (1, k)
    return _mark(order, (ranks < keep) & (ranks < n_valid[:, None]), k)


@ROLLOUT_FILTERS.register("best_worst", check=_needs_ppo_groups)
def best_worst(scores, valid, k: int, keep: int, gen=None) -> torch.Tensor:
    """The ⌈keep/2⌉ highest- and ⌊keep/2⌋ lowest-reward valid responses of each prompt (PF-PPO's BW: both ends
    of the reward range, where the reward model is most reliable)."""
    order, n_valid = _ranked(scores, valid, k)
    ranks, nv = torch.arange(k)[None, :], n_valid[:, None]  # (1, k), (G, 1)
    top, bottom = (keep + 1) // 2, keep // 2
    take = ((ranks < top) | ((ranks >= nv - bottom) & (ranks >= top))) & (ranks < nv)
    return _mark(order, take, k)


@ROLLOUT_FILTERS.register("best_random", check=_needs_ppo_groups)
def best_random(scores, valid, k: int, keep: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """The highest-reward response of each prompt plus ``keep − 1`` others drawn at random among its valid ones
    (PF-PPO's BR)."""
    order, n_valid = _ranked(scores, valid, k)
    noise = torch.rand(order.shape, generator=gen)  # (G, k) random priority for ranks 1..
    ranks = torch.arange(k)[None, :].expand_as(order)
    priority = torch.where(ranks == 0, torch.full_like(noise, 2.0), noise)
    priority = torch.where(ranks < n_valid[:, None], priority, torch.full_like(noise, -1.0))
    chosen_ranks = torch.argsort(priority, dim=1, descending=True)[:, :keep]  # (G, keep) ranks to take
    take = torch.zeros_like(ranks, dtype=torch.bool).scatter_(1, chosen_ranks, True) & (ranks < n_valid[:, None])
    return _mark(order, take, k)
