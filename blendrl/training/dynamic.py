"""DAPO's dynamic sampling (``dynamic_sampling``; docs/algorithms.md §11): a prompt group whose k rewards are all
equal gives a group baseline no signal, so it is dropped and more prompts are sampled until the batch holds the
configured number of groups, at most ``max_extra_rounds`` more rounds.

Data parallel: each round every rank samples its share of the round's prompts (the seeds one process would use),
scores its rows, and the rounds' rows are gathered to every rank, so the groups kept are the first ones in the
global order (round by round, prompt by prompt) whatever the number of ranks; each rank then trains on its
contiguous share of them.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core import dist
from ..core.types import Rollout, Scores


def varied_groups(total: torch.Tensor, k: int) -> torch.Tensor:
    """Groups of ``k`` consecutive rows with at least two finite scores that differ. (N,) → bool (N / k,)."""
    groups = total.reshape(-1, k)  # (G, k)
    finite = torch.isfinite(groups)
    lo = torch.where(finite, groups, torch.inf).amin(1)
    hi = torch.where(finite, groups, -torch.inf).amax(1)
    return (finite.sum(1) >= 2) & (hi > lo)


def dynamic_batch(draw: Callable, score: Callable, k: int, n_groups: int, max_extra_rounds: int, pad_id: int):
    """``draw() -> (prompts, rollout)``: this rank's rows of one round (k per prompt); ``score(prompts, rollout) ->
    Scores`` of those rows. Returns this rank's ``(prompts, rollout, scores, metrics)``: the first ``n_groups``
    groups with a signal in global order, topped up, when the rounds run out, with the earliest dropped ones (a
    group baseline gives those zero advantages; the batch keeps its size, so every rank keeps rows)."""
    kept: list[tuple] = []  # (prompts, rollout, scores) per round: the groups with a signal
    spare: list[tuple] = []  # the same for the dropped groups
    rounds = dropped = n_kept = 0
    device = None
    while rounds <= max_extra_rounds and n_kept < n_groups:
        prompts, rollout = draw()
        scored = score(prompts, rollout)
        device = rollout.response_ids.device
        all_prompts = dist.gather_objects(list(prompts))
        all_rollout = Rollout.cat(dist.gather_objects([rollout.to("cpu")]), pad_id)  # every rank's rows, in order
        all_scores = Scores.cat(dist.gather_objects([scored]))
        keep = varied_groups(all_scores.total, k)  # (G,)
        take = keep.nonzero()[:, 0][: n_groups - n_kept]  # the first groups with a signal
        for groups, into in ((take, kept), ((~keep).nonzero()[:, 0], spare)):
            rows = (groups[:, None] * k + torch.arange(k)).flatten()
            into.append(([all_prompts[i] for i in rows.tolist()], all_rollout.select(rows), all_scores.select(rows)))
        n_kept, dropped, rounds = n_kept + len(take), dropped + int((~keep).sum()), rounds + 1
    parts = kept + spare  # the kept groups, then the dropped ones in the order they came
    prompts = [p for part in parts for p in part[0]][: n_groups * k]
    start, stop = dist.shard_range(n_groups)  # this rank's contiguous share of the groups
    mine = torch.arange(start * k, stop * k)
    rollout = Rollout.cat([part[1] for part in parts], pad_id).select(mine).compact().to(device)
    scores = Scores.cat([part[2] for part in parts]).select(mine)
    metrics = {"sampling/rounds": rounds, "sampling/dropped_groups": dropped, "sampling/kept_groups": n_kept}
    return [prompts[i] for i in mine.tolist()], rollout, scores, metrics
