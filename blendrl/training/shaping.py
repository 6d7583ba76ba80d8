"""Sequence-score shaping before advantages (§11, PPO-max eq. 18): what ``shaping:`` of a PPO-family run does to
the raw scores of a batch, in order: the missing-EOS penalty, DAPO's overlong penalty, running normalisation, the
clip."""
from __future__ import annotations

import torch

from ..functional import RunningMoments, apply_missing_eos_penalty, overlong_penalty


def shape_scores(raw: torch.Tensor, finished: torch.Tensor, s, moments: RunningMoments, max_new_tokens: int,
                 update: bool = True, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores (B,), valid (B,) bool)`` of ``raw`` (B,) under the ShapingConfig ``s``: NaN scores are not valid
    (they get a neutral score); ``lengths`` (B,): response tokens (the overlong penalty's). ``update=False``
    normalises with the running ``moments`` as they are (scores that are not the batch's own samples)."""
    valid = torch.isfinite(raw)  # (B,)
    if not valid.any():
        if not update:
            return torch.zeros_like(raw), valid
        raise FloatingPointError("every reward in the batch was NaN/inf; check the reward sources")
    scores = torch.where(valid, raw, raw[valid].mean())  # (B,) skipped rows get a neutral score
    if s.missing_eos_penalty is not None:
        scores = apply_missing_eos_penalty(scores, finished, s.missing_eos_penalty)
    if s.overlong_buffer is not None and lengths is not None:
        scores = scores + overlong_penalty(lengths, max_new_tokens, s.overlong_buffer, s.overlong_penalty)
    if s.normalize != "none":
        normed = moments.normalize(scores[valid], None, s.normalize, update=update)
        scores = scores.clone()
        scores[valid] = normed
        scores[~valid] = 0.0 if s.normalize == "normalize" else scores[~valid] / max(moments.std, 1e-8)
    if s.clip is not None:
        scores = scores.clamp(-s.clip, s.clip)
    return scores, valid
