"""A Hugging Face sequence-classification reward model as a reward source.

The conversation (prompt messages + the response as the assistant turn) is rendered with the reward model's own
chat template and tokenizer, so the policy and the reward model may use different tokenizers. Conversations of
one prompt (RLOO/GRPO's k samples) share their common token prefix: it runs once per prompt
(:mod:`blendrl.models.prefix_sharing`), the same scores up to float rounding.
"""
from __future__ import annotations

import torch

from ..models.heads import backbone, last_token_hidden, score_head
from ..models.offload import OffloadedWeights, mapped
from ..models.prefix_sharing import shared_prefix_layout, suffix_hidden
from ..models.reward_model import load_reward_model, render_conversation
from .base import Sample, Scores


class HFRewardModel:
    """Scores with ``AutoModelForSequenceClassification`` at ``path`` (read at the last real token)."""

    def __init__(self, path: str, name: str | None = None, batch_size: int = 16, max_length: int = 1024,
                 dtype: str = "float32", loaded: tuple | None = None, offload: bool = False,
                 device: str = "cpu") -> None:
        """``loaded``: an already loaded ``(model, tokenizer)`` to score with instead of reading ``path``.
        ``offload`` (default false): keep the weights in a file between calls
        (:class:`~blendrl.models.offload.OffloadedWeights`)."""
        self.model, self.tokenizer = loaded or load_reward_model(path, dtype)
        self.model.to(device)
        self.device = torch.device(device)
        self.name = name or f"rm:{path}"
        self.batch_size, self.max_length = batch_size, max_length
        self.truncated = 0  # count of conversations cut to max_length
        self.offloaded = OffloadedWeights(self.model) if offload else None

    def render(self, sample: Sample) -> str:
        return render_conversation(self.tokenizer, sample.messages, sample.response)

    def batches(self, samples: list[Sample]):
        """Tokenized batches of ``batch_size`` conversations (right-padded, cut to ``max_length``), each with its
        samples."""
        for i in range(0, len(samples), self.batch_size):
            chunk = samples[i : i + self.batch_size]
            enc = self.tokenizer([self.render(s) for s in chunk], return_tensors="pt", padding=True,
                                 truncation=True, max_length=self.max_length, add_special_tokens=False)
            self.truncated += int((enc["attention_mask"].sum(1) >= self.max_length).sum())
            yield enc.to(self.device), chunk

    def last_hidden(self, enc, chunk: list[Sample]) -> torch.Tensor:
        """Backbone state at each conversation's last token; rows of the same prompt messages share their common
        token prefix. → (b, H)"""
        rows = [ids[m.bool()].tolist() for ids, m in zip(enc["input_ids"], enc["attention_mask"])]
        layout = shared_prefix_layout(rows, [repr(s.messages) for s in chunk], self.tokenizer.pad_token_id)
        if layout is None:
            return last_token_hidden(self.model, enc["input_ids"], enc["attention_mask"])
        ids, mask, positions, split, last = (x.to(self.device) if torch.is_tensor(x) else x for x in layout)
        hidden = suffix_hidden(backbone(self.model), ids, mask, positions, split)  # (b, R + 1, H)
        return hidden[torch.arange(len(rows), device=hidden.device), last]  # (b, H)

    @torch.no_grad()
    def score(self, samples: list[Sample]) -> Scores:
        with mapped(self.offloaded):
            head = score_head(self.model)
            return Scores(torch.cat([head(self.last_hidden(enc, chunk))[:, 0].float().cpu()
                                     for enc, chunk in self.batches(samples)]))  # (B,) on the CPU, like every source
