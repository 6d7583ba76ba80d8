"""Per-batch steps between scoring and advantages that only some runs take (each off by default):

- dense rewards of a segment reward model (``rewards: [{kind: segment_rm}]``, docs/algorithms.md §10): the
  per-character rewards are summed onto the policy's tokens; what stays at the last token is the EOS penalty;
- PF-PPO's filter (``filter:``, §14): rows it leaves out get a zero response mask;
- VinePPO's Monte-Carlo values (``algorithm.name: vineppo``, §15) in place of a critic's.
"""
from __future__ import annotations

import torch

from ..core import dist
from ..core.types import Experience
from ..functional.filters import ROLLOUT_FILTERS
from .experience import dense_token_rewards


def after_scores(trainer, exp: Experience, valid: torch.Tensor, prompts) -> dict:
    """Apply the configured steps to ``exp`` (scored, masked); return their metrics."""
    metrics = {}
    if (dense := getattr(trainer.reward, "last_dense", None)) is not None:
        exp.token_scores = dense_token_rewards(trainer.m.tokenizer, exp, dense).to(exp.scores.device)
        exp.scores = exp.scores - exp.token_scores.sum(1)
        metrics["reward/dense_token_mean"] = exp.token_scores[exp.response_mask > 0].mean().item()
    f = trainer.cfg.filter
    if f.kind != "none":
        total = exp.scores if exp.token_scores is None else exp.scores + exp.token_scores.sum(1)  # (B,)
        kept = ROLLOUT_FILTERS[f.kind](total.cpu(), valid.cpu(), trainer.cfg.train.samples_per_prompt, f.keep,
                                       trainer.sampling_gen)
        exp.response_mask[~kept.to(exp.response_mask.device)] = 0.0
        metrics["filter/kept_fraction"] = dist.gather_rows(kept.float())[0].mean().item()
    if getattr(trainer.algorithm, "needs_mc_values", False):
        from .vine import mc_values

        exp.values, exp.step_ids, vine = mc_values(trainer, exp, prompts)
        metrics.update(vine)
    return metrics
