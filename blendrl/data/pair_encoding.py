"""Tokenised preference pairs and right-padded batches for reward-model training and scoring."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..models.reward_model import render_conversation
from .preferences import PreferencePair
from .prompts import DataError


@dataclass
class EncodedPairs:
    """Token ids of each kept pair's two conversations. ``truncated`` / ``skipped`` count pairs past max_length."""

    pairs: list[PreferencePair]
    chosen: list[list[int]]
    rejected: list[list[int]]
    truncated: int = 0
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.pairs)


def encode_pairs(pairs: list[PreferencePair], tokenizer, max_length: int, too_long: str = "truncate",
                 source: str = "") -> EncodedPairs:
    """Render and tokenise both sides of every pair. A conversation longer than ``max_length`` tokens is cut on the
    right (``truncate``), drops its pair (``skip``) — both counted and logged — or raises (``error``)."""
    out = EncodedPairs([], [], [])
    for p in pairs:
        ids = [tokenizer(render_conversation(tokenizer, p.prompt, r), add_special_tokens=False)["input_ids"]
               for r in (p.chosen, p.rejected)]
        longest = max(len(x) for x in ids)
        if longest > max_length:
            if too_long == "error":
                raise DataError(f"{p.where}, field 'chosen'/'rejected': {longest} tokens exceed data.max_length="
                                f"{max_length} (raise it, or set data.too_long=truncate|skip)")
            if too_long == "skip":
                out.skipped += 1
                continue
            out.truncated += 1
            ids = [x[:max_length] for x in ids]
        out.pairs.append(p)
        out.chosen.append(ids[0])
        out.rejected.append(ids[1])
    if out.truncated or out.skipped:
        logging.getLogger("blendrl").warning(
            "%s: %d of %d pairs longer than max_length=%d were %s", source or "preference data",
            out.truncated + out.skipped, len(pairs), max_length, "truncated" if out.truncated else "skipped")
    if not out.pairs:
        raise DataError(f"{source}: every pair was longer than max_length={max_length}")
    return out


def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists. Returns ids (B, L) and attention mask (B, L)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def pair_batch(enc: EncodedPairs, idx: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen rows then rejected rows of pairs ``idx``: ids and mask (2n, L)."""
    return pad_right([enc.chosen[i] for i in idx] + [enc.rejected[i] for i in idx], pad_id)
