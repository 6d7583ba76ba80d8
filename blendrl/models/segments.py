"""Segment reward models (docs/algorithms.md §10) on the model side: which tokens of a rendered conversation are
the response, where its segments end (a causal LM's predictive entropy), and the per-token reward head.

A segment reward model is a plain sequence-classification folder (the ``score`` head is applied to every
position) plus ``segments.json``: the entropy model, threshold, minimum length and the fitted location-aware
normaliser. Training: :mod:`blendrl.training.rm.segments`; scoring in PPO: :mod:`blendrl.rewards.segment_rm`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..functional.segments import segment_ends, token_entropy
from .heads import backbone, score_head
from .reward_model import render_conversation

SEGMENTS_FILE = "segments.json"
_SENTINEL = "\u2063SEGMENT-SENTINEL\u2063"


def response_span(tokenizer, prompt: list[dict], response: str) -> tuple[str, int]:
    """The rendered conversation and the character offset where the response starts in it."""
    text = render_conversation(tokenizer, prompt, response)
    start = render_conversation(tokenizer, prompt, _SENTINEL).find(_SENTINEL)
    if start < 0 or text[start: start + len(response)] != response:
        raise ValueError("the chat template changes the response text; segment rewards need it verbatim")
    return text, start


def encode_with_response(tokenizer, prompt: list[dict], response: str, max_length: int | None = None):
    """``(ids, response_mask, spans)``: token ids of the rendered conversation (cut to ``max_length``), whether each
    token overlaps the response, and each token's character span relative to the response start."""
    text, start = response_span(tokenizer, prompt, response)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"][:max_length], enc["offset_mapping"][:max_length]
    end = start + len(response)
    mask = [a < end and b > start and b > a for a, b in offsets]
    return ids, mask, [(a - start, b - start) for a, b in offsets]


class EntropyModel:
    """A causal LM whose predictive entropy places the segment boundaries (it must share the reward model's
    tokenizer)."""

    def __init__(self, model, batch_size: int = 16) -> None:
        self.model, self.batch_size = model.eval(), batch_size

    @torch.no_grad()
    def ends(self, seqs: list[list[int]], masks: list[list[bool]], threshold: float, min_length: int,
             pad_id: int) -> list[list[int]]:
        """For each token list, the positions where its response's segments end."""
        out = []
        for i in range(0, len(seqs), self.batch_size):
            ids, attn = right_padded(seqs[i: i + self.batch_size], pad_id)  # (b, L)
            entropy = token_entropy(self.model(input_ids=ids, attention_mask=attn).logits)  # (b, L)
            resp = torch.zeros_like(attn, dtype=torch.float)
            for r, m in enumerate(masks[i: i + self.batch_size]):
                resp[r, : len(m)] = torch.tensor(m, dtype=torch.float)
            ends = segment_ends(entropy, resp, threshold, min_length)
            out += [row.nonzero().flatten().tolist() for row in ends]
        return out


def right_padded(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask (B, L)."""
    width = max(len(x) for x in seqs)
    ids = torch.tensor([x + [pad_id] * (width - len(x)) for x in seqs])
    return ids, torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs])


def token_scores(model, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The reward head at every position. (B, L) → (B, L)."""
    hidden = backbone(model)(input_ids=ids, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
    return score_head(model)(hidden)[..., 0].float()


def write_segments_file(folder: Path, settings: dict) -> None:
    from ..core.fsutil import atomic_write_text

    atomic_write_text(Path(folder) / SEGMENTS_FILE, json.dumps(settings, indent=2))


def read_segments_file(folder: str | Path) -> dict:
    path = Path(folder) / SEGMENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a segment reward model (train one with segments.enabled: true)")
    return json.loads(path.read_text())
