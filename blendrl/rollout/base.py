"""The rollout seam: a Generator turns prompt token ids into a :class:`Rollout`.

Backends register in ``GENERATORS`` (``hf`` now; vLLM or a remote server later plug in here without touching the
trainer). A backend must return the behaviour log-probs of the sampled tokens under ``softmax(logits / temperature)``
over the full vocabulary, which is what the training forward computes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..functional.registry import Registry

GENERATORS: Registry = Registry("generation backend")


@dataclass
class SamplingParams:
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 1.0


@dataclass
class Rollout:
    """Sampled responses. B = number of sequences, P = padded prompt length, T = padded response length."""

    prompt_ids: torch.Tensor  # (B, P) long, left-padded
    prompt_mask: torch.Tensor  # (B, P) long, 1 on prompt tokens
    response_ids: torch.Tensor  # (B, T) long, right-padded
    response_mask: torch.Tensor  # (B, T) float, 1 up to and including EOS
    logp: torch.Tensor  # (B, T) float, behaviour log-probs of the sampled tokens
    has_eos: torch.Tensor  # (B,) bool

    @property
    def num_tokens(self) -> int:
        return int(self.response_mask.sum().item())

    def select(self, idx: torch.Tensor | slice) -> "Rollout":
        return Rollout(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def compact(self) -> "Rollout":
        """The same rows without prompt columns that are padding in every row and response columns past the longest
        response (what remains after :meth:`select` of a few rows from a larger batch)."""
        start = int((self.prompt_mask.sum(0) > 0).nonzero().min()) if self.prompt_mask.any() else 0
        width = int((self.response_mask > 0).sum(1).max()) if len(self.response_mask) else 0
        return Rollout(self.prompt_ids[:, start:], self.prompt_mask[:, start:], self.response_ids[:, :width],
                       self.response_mask[:, :width], self.logp[:, :width], self.has_eos)


class Generator(Protocol):
    def sample(self, prompts: list[list[int]], params: SamplingParams, generator: torch.Generator) -> Rollout: ...


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists. Returns ids (B, P) and mask (B, P)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask


def decode_responses(tokenizer, rollout) -> list[str]:
    """Responses of a :class:`Rollout` (or an Experience) as text, up to EOS, special tokens dropped."""
    lengths = (rollout.response_mask > 0).sum(1).tolist()
    return tokenizer.batch_decode([ids[:n] for ids, n in zip(rollout.response_ids.tolist(), lengths)],
                                  skip_special_tokens=True)
