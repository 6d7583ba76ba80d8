"""A segment reward model as a dense reward source (docs/algorithms.md §10; kind ``segment_rm``).

For each response: its segments (where the folder's entropy model is uncertain about what comes next), the
reward head at each segment's end, the location-aware normaliser ``r̂ = (r − μ(p))/σ(p)`` with p = k/K, and r̂
spread evenly over the segment's tokens. Tokens belong to the reward model's tokenizer, so the dense reward is
handed on per *character* of the response (the ``dense`` rows of its :class:`~blendrl.core.types.Scores`): the
trainer re-buckets it onto the policy's tokens, whatever its tokenizer; ``total`` is each response's sum.

``aggregate`` (option): ``mean`` (default) divides a response's dense rewards by its number of segments K, so its
total is the mean of its r̂_k — the quantity the reward model was trained on — and repeating good segments does
not multiply the reward (a length game a policy finds); ``sum`` keeps the paper's Σ_k r̂_k.
"""
from __future__ import annotations

import torch

from ..functional.segments import location_normalize, segment_positions, spread_over_segments
from ..models.loading import load_causal_lm, resolve_model
from ..models.reward_model import load_reward_model
from ..models.segments import EntropyModel, encode_with_response, read_segments_file, right_padded, token_scores
from .base import Sample, Scores


class SegmentRewardModel:
    def __init__(self, path: str, name: str | None = None, batch_size: int = 16, max_length: int = 1024,
                 dtype: str = "float32", aggregate: str = "mean") -> None:
        if aggregate not in ("mean", "sum"):
            raise ValueError(f"segment_rm option aggregate: mean or sum, got {aggregate!r}")
        self.aggregate = aggregate
        self.settings = read_segments_file(path)
        self.model, self.tokenizer = load_reward_model(path, dtype)
        self.entropy = EntropyModel(load_causal_lm(resolve_model(self.settings["entropy_model"]), dtype), batch_size)
        self.name = name or f"segment_rm:{path}"
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def score(self, samples: list[Sample]) -> Scores:
        s = self.settings
        encoded = [encode_with_response(self.tokenizer, x.messages, x.response, self.max_length) for x in samples]
        ids = [e[0] for e in encoded]
        masks = [e[1] for e in encoded]
        ends_at = self.entropy.ends(ids, masks, s["threshold"], s["min_length"], self.tokenizer.pad_token_id)
        totals, per_char = [], []  # per sample: its total, the reward of each character of its response
        for i in range(0, len(samples), self.batch_size):
            chunk = slice(i, i + self.batch_size)
            tok_ids, attn = right_padded(ids[chunk], self.tokenizer.pad_token_id)  # (b, L)
            scores = token_scores(self.model, tok_ids, attn)  # (b, L)
            ends = torch.zeros_like(attn, dtype=torch.bool)
            resp = torch.zeros_like(attn, dtype=torch.float)
            for r, (e, m) in enumerate(zip(ends_at[chunk], masks[chunk])):
                ends[r, e] = True
                resp[r, : len(m)] = torch.tensor(m, dtype=torch.float)
            normed = location_normalize(scores[ends], segment_positions(ends)[1], s["normalizer"])  # (S,)
            dense = spread_over_segments(normed, ends, resp)  # (b, L) per reward-model token
            if self.aggregate == "mean":
                dense = dense / ends.sum(1, keepdim=True).clamp_min(1)
            for r, (sample, (_, _, spans)) in enumerate(zip(samples[chunk], encoded[chunk])):
                per_char.append(_per_char(dense[r], spans, len(sample.response)))
                totals.append(float(dense[r].sum()))
        return Scores(torch.tensor(totals, dtype=torch.float32), dense=per_char)


def _per_char(token_rewards: torch.Tensor, spans: list[tuple[int, int]], n_chars: int) -> list[float]:
    """Each token's reward spread evenly over its characters inside the response [0, n_chars)."""
    out = [0.0] * n_chars
    for value, (a, b) in zip(token_rewards.tolist(), spans):
        a, b = max(a, 0), min(b, n_chars)
        if value and b > a:
            for c in range(a, b):
                out[c] += value / (b - a)
    return out
