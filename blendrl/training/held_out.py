"""Held-out evaluation, one computation for every loop (PPO family, CGPO per task, summed-reward PPO): the sampled
responses decoded, their KL to the reference (k1 per sequence, :func:`~blendrl.functional.kl.sequence_kl`), and the
metrics every evaluation reports under one name each (``reward/mean``, ``kl/seq_k1``, ``response/length``,
``response/eos_rate``, the ``hack/*`` signals). The draws come from the ``evaluation`` stream
(:mod:`blendrl.core.seeds`), the same at every evaluation, so evaluations of one run compare."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.types import Experience, Rollout
from ..functional import sequence_kl
from ..judges.signals import hack_signals
from .metrics import episode_metrics
from ..rollout import decode_responses


@dataclass
class HeldOut:
    """One held-out rollout: ``exp`` (with ``ref_logp``), the decoded ``responses`` and ``seq_kl`` (N,)."""

    exp: Experience
    responses: list[str]
    seq_kl: torch.Tensor


@torch.no_grad()
def held_out_pass(rollout: Rollout, tokenizer, reference, temperature: float, forward_batch_size: int) -> HeldOut:
    """Decode ``rollout`` and take its reference log-probs and sequence KL."""
    exp = Experience.from_rollout(rollout)
    responses = decode_responses(tokenizer, exp)
    exp.ref_logp = reference.logprobs(exp, temperature, forward_batch_size)
    return HeldOut(exp, responses, sequence_kl(exp.behaviour_logp, exp.ref_logp, exp.response_mask))


def held_out_metrics(prefix: str, h: HeldOut, raw: torch.Tensor, prompts) -> dict:
    """The metrics every evaluation reports, each under ``prefix`` (``eval/`` or ``eval/<task>/``); ``raw`` (N,):
    the reward (NaN: not scored, left out of the mean)."""
    valid = torch.isfinite(raw)
    finished = h.exp.finished.tolist()
    return {
        f"{prefix}reward/mean": raw[valid].mean().item() if valid.any() else math.nan,
        f"{prefix}kl/seq_k1": h.seq_kl.mean().item(),
        f"{prefix}response/length": h.exp.response_mask.sum(1).mean().item(),
        f"{prefix}response/eos_rate": h.exp.finished.float().mean().item(),
        **{f"{prefix}{k}": v for k, v in hack_signals(h.responses, finished, [p.user_text for p in prompts]).items()},
        **{f"{prefix}{k}": v for k, v in episode_metrics(h.exp.transcripts, every_rank=False).items()},
    }
