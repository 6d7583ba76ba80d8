"""A Hugging Face sequence-classification reward model as a reward source.

The conversation (prompt messages + the response as the assistant turn) is rendered with the reward model's own
chat template and tokenizer, so the policy and the reward model may use different tokenizers.
"""
from __future__ import annotations

import torch

from ..models.heads import last_token_scores
from ..models.offload import OffloadedWeights, mapped
from ..models.reward_model import load_reward_model, render_conversation
from .base import Sample


class HFRewardModel:
    """Scores with ``AutoModelForSequenceClassification`` at ``path`` (read at the last real token)."""

    def __init__(self, path: str, name: str | None = None, batch_size: int = 16, max_length: int = 1024,
                 dtype: str = "float32", loaded: tuple | None = None, offload: bool = False) -> None:
        """``loaded``: an already loaded ``(model, tokenizer)`` to score with instead of reading ``path``.
        ``offload`` (default false): keep the weights in a memory-mapped file between calls
        (:class:`~blendrl.models.offload.OffloadedWeights`)."""
        self.model, self.tokenizer = loaded or load_reward_model(path, dtype)
        self.name = name or f"rm:{path}"
        self.batch_size, self.max_length = batch_size, max_length
        self.truncated = 0  # count of conversations cut to max_length
        self.offloaded = OffloadedWeights(self.model) if offload else None

    def render(self, sample: Sample) -> str:
        return render_conversation(self.tokenizer, sample.messages, sample.response)

    def batches(self, samples: list[Sample]):
        """Tokenized batches of ``batch_size`` conversations (right-padded, cut to ``max_length``)."""
        for i in range(0, len(samples), self.batch_size):
            texts = [self.render(s) for s in samples[i : i + self.batch_size]]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length, add_special_tokens=False)
            self.truncated += int((enc["attention_mask"].sum(1) >= self.max_length).sum())
            yield enc

    @torch.no_grad()
    def score(self, samples: list[Sample]) -> torch.Tensor:
        with mapped(self.offloaded):
            return torch.cat([last_token_scores(self.model, enc["input_ids"], enc["attention_mask"])
                              for enc in self.batches(samples)])  # (B,)
