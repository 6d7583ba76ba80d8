"""The rollout seam: a Generator turns prompt token ids into a :class:`Rollout`.

Backends register in ``GENERATORS`` (``hf``; another backend, such as vLLM or a remote server, plugs in here without
touching the trainer). A backend must return the behaviour log-probs of the sampled tokens under ``softmax(logits /
temperature)`` over the full vocabulary, which is what the training forward computes.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..core.registry import Registry
from ..core.types import Rollout, SamplingParams

GENERATORS: Registry = Registry("generation backend", builtins=("blendrl.rollout.hf",))


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
