"""The episode costs of a constrained run (PPO-Lagrangian, docs/algorithms.md §16): the cost source's scores put on
the experience, and their metrics over the whole batch."""
from __future__ import annotations

import torch

from ..core import dist
from ..core.types import Experience, Scores


def take_costs(exp: Experience, scored: Scores, counters: dict) -> dict:
    """Set ``exp.costs`` (B,) from the cost source's :class:`Scores` (not shaped: the threshold is in the cost's
    own units). A row whose cost is NaN cannot be priced, so it leaves the update like a row whose reward is NaN
    (counted in ``counters["skipped_samples"]`` when it was still in). → ``cost/mean``, ``cost/<source>`` and
    ``cost/<source>/<stat>`` over the rows the update keeps, every rank's."""
    mask = exp.response_mask  # (B, T)
    total = scored.total.to(mask.device)  # (B,)
    bad = ~torch.isfinite(total)
    if dist.gather_rows(bad.cpu())[0].all():
        raise FloatingPointError("every cost in the batch was NaN/inf; check the cost sources")
    counters["skipped_samples"] += int((bad & (mask.sum(1) > 0)).sum())
    mask[bad] = 0.0
    exp.costs = torch.where(bad, torch.zeros_like(total), total)
    kept = dist.gather_rows((mask.sum(1) > 0).cpu())[0]  # (N,) every rank's rows
    if not kept.any():
        return {}
    values = {"mean": exp.costs, **scored.components, **scored.stats}
    return {f"cost/{k}": dist.gather_rows(v.float().cpu())[0][kept].mean().item() for k, v in values.items()}
