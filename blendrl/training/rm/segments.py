"""Training a segment reward model (docs/algorithms.md §10, ``segments.enabled``): the sequence score is the mean of
the per-token head at the ends of the response's segments (placed where an entropy model is uncertain about what
comes next), trained with the recipe's pair loss; after training the location-aware normaliser is fitted on the
training responses and written with the settings to ``final/segments.json``.
"""
from __future__ import annotations

import torch

from ...data.pair_encoding import EncodedPairs, pad_right
from ...data.prompts import DataError
from ...functional.segments import fit_location_normalizer, segment_mean, segment_positions
from ...models.heads import backbone, score_head
from ...models.loading import load_causal_lm, resolve_model
from ...models.segments import EntropyModel, encode_with_response, write_segments_file
from .trainer import ModelScorer


class SegmentScorer(ModelScorer):
    """Scores = mean of the head at each registered sequence's segment ends; hidden = the last token's state."""

    def __init__(self, model, tokenizer, settings, entropy_model: str, max_length: int, batch_size: int = 32) -> None:
        super().__init__(model, tokenizer.pad_token_id, batch_size)
        self.tokenizer, self.settings, self.max_length = tokenizer, settings, max_length
        self.entropy_name = entropy_model
        self.entropy = EntropyModel(load_causal_lm(resolve_model(entropy_model)), batch_size)
        self.ends: dict[tuple[int, ...], list[int]] = {}

    def register(self, enc: EncodedPairs) -> None:
        """Find the segment ends of every conversation of ``enc`` not seen yet."""
        todo = []
        for pair, chosen, rejected in zip(enc.pairs, enc.chosen, enc.rejected):
            for text, ids in ((pair.chosen, chosen), (pair.rejected, rejected)):
                if tuple(ids) in self.ends:
                    continue
                again, mask, _ = encode_with_response(self.tokenizer, pair.prompt, text, self.max_length)
                if again != list(ids):
                    raise DataError(f"{pair.where}: the conversation does not tokenise the same way twice")
                if not any(mask):
                    raise DataError(f"{pair.where}: no response token left within data.max_length")
                todo.append((ids, mask))
        s = self.settings
        found = self.entropy.ends([list(i) for i, _ in todo], [m for _, m in todo], s.threshold, s.min_length,
                                  self.pad_id)
        self.ends.update({tuple(ids): e for (ids, _), e in zip(todo, found)})

    def token_scores(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token head (B, L), the segment-end mask (B, L) and the last real token's hidden state (B, H)."""
        ids, mask = pad_right(seqs, self.pad_id)  # (B, L)
        hidden = backbone(self.model)(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
        ends = torch.zeros_like(mask, dtype=torch.bool)
        for r, s in enumerate(seqs):
            ends[r, self.ends[tuple(s)]] = True
        last = hidden[torch.arange(len(seqs)), mask.sum(1) - 1]  # (B, H)
        return score_head(self.model)(hidden)[..., 0].float(), ends, last

    def __call__(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        scores, ends, last = self.token_scores(seqs)
        return segment_mean(scores, ends), last  # (B,), (B, H)


def make_segment_scorer(model, tokenizer, cfg, pairs: EncodedPairs) -> SegmentScorer:
    """The run's :class:`SegmentScorer` (``cfg``: an RMRunConfig), with ``pairs``' segments found."""
    scorer = SegmentScorer(model, tokenizer, cfg.segments, cfg.segments.entropy_model or cfg.model.name,
                           cfg.data.max_length, cfg.eval.batch_size)
    scorer.register(pairs)
    return scorer


@torch.no_grad()
def fit_normalizer(scorer: SegmentScorer, enc: EncodedPairs) -> dict:
    """The location-aware normaliser fitted on every segment reward of ``enc``'s responses (both sides)."""
    seqs = enc.chosen + enc.rejected
    rewards, positions = [], []
    scorer.model.eval()
    for i in range(0, len(seqs), scorer.batch_size):
        scores, ends, _ = scorer.token_scores(seqs[i: i + scorer.batch_size])
        rewards.append(scores[ends])
        positions.append(segment_positions(ends)[1])
    return fit_location_normalizer(torch.cat(rewards), torch.cat(positions))


def save_segment_settings(scorer: SegmentScorer, enc: EncodedPairs, folder) -> dict:
    """Write ``segments.json`` (entropy model, threshold, minimum length, normaliser) into the final folder."""
    s = scorer.settings
    settings = {"entropy_model": scorer.entropy_name, "threshold": s.threshold, "min_length": s.min_length,
                "normalizer": fit_normalizer(scorer, enc)}
    write_segments_file(folder, settings)
    return settings
