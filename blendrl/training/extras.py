"""Per-batch steps between scoring and advantages that only some runs take (each off by default):

- dense rewards of a segment reward model (``rewards: [{kind: segment_rm}]``, docs/algorithms.md §10): the
  per-character rewards are summed onto the policy's tokens; what stays at the last token is the EOS penalty;
- PF-PPO's filter (``filter:``, §14): rows it leaves out get a zero response mask.
VinePPO's Monte-Carlo values (§15) are :mod:`blendrl.training.vine`'s.
"""
from __future__ import annotations

import torch

from ..core import dist
from ..core.types import Experience
from ..functional.filters import ROLLOUT_FILTERS
from .experience import dense_token_rewards


def after_scores(exp: Experience, valid: torch.Tensor, dense: list[list[float]] | None, tokenizer, filter_cfg,
                 samples_per_prompt: int, gen: torch.Generator) -> dict:
    """Apply the configured steps to ``exp`` (scored, masked); return their metrics. ``dense``: the reward's
    per-character rewards (its Scores' ``dense``; None without a dense source); ``filter_cfg``: the ``filter:``
    section; ``gen``: the generator a random filter draws from."""
    metrics = {}
    if dense is not None:
        exp.token_scores = dense_token_rewards(tokenizer, exp, dense).to(exp.scores.device)
        exp.scores = exp.scores - exp.token_scores.sum(1)
        metrics["reward/dense_token_mean"] = exp.token_scores[exp.response_mask > 0].mean().item()
    if filter_cfg.kind != "none":
        total = exp.scores if exp.token_scores is None else exp.scores + exp.token_scores.sum(1)  # (B,)
        kept = ROLLOUT_FILTERS[filter_cfg.kind](total.cpu(), valid.cpu(), samples_per_prompt, filter_cfg.keep, gen)
        exp.response_mask[~kept.to(exp.response_mask.device)] = 0.0
        metrics["filter/kept_fraction"] = dist.gather_rows(kept.float())[0].mean().item()
    return metrics
