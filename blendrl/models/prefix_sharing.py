"""Decoder forwards that compute a prompt shared by several rows once (RLOO/GRPO's k samples per prompt).

Rows are laid out as prefix columns ``[:split]`` (the left-padded prompt) and suffix columns ``[split:]`` (the
right-padded response). Rows whose prefix ids and mask are equal form a group: the prefix runs once per group with
``use_cache=True``, its KV cache is gathered to the rows (``index_select``, so in backward autograd sums every row's
gradient into the one prefix computation) and the suffix columns run over that cache. With U distinct prompts of P
columns in B rows, a forward (and its backward) processes ``U·P + B·T`` tokens instead of ``B·(P + T)``: on the
ppo_iteration benchmark's RLOO batch (8 prompts × 2 samples, P = 44, T = 48) 1120 instead of 1472.

The numbers are those of one full forward up to float rounding (other matmul shapes; ≤ 1e-5 on the log-probs in
``tests/test_prefix_sharing.py``). Without repeated prompts, or while gradient checkpointing is switched on
(transformers drops the cache inside a checkpointed layer), it is one plain forward.
"""
from __future__ import annotations

import torch


def prompt_groups(prefix_ids: torch.Tensor, prefix_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(first row of each distinct prefix (U,), each row's group (B,)), or None when all B prefixes differ."""
    key = torch.cat([prefix_ids, prefix_mask.to(prefix_ids.dtype)], dim=1)  # (B, 2S)
    uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
    if uniq.shape[0] == key.shape[0]:
        return None
    first = torch.empty(uniq.shape[0], dtype=torch.long, device=key.device).scatter_(
        0, inverse, torch.arange(key.shape[0], device=key.device))
    return first, inverse


def _checkpointing(decoder: torch.nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) is True and m.training for m in decoder.modules())


def suffix_hidden(decoder, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                  split: int) -> torch.Tensor:
    """Last hidden states of columns ``split - 1 … L - 1`` (the last prefix column and the suffix), each distinct
    prefix computed once. ``decoder`` returns ``last_hidden_state`` (a transformers base model). Shapes: ids, mask,
    positions (B, L) → (B, L - split + 1, H)."""
    groups = None if split < 1 or split >= input_ids.shape[1] or _checkpointing(decoder) else prompt_groups(
        input_ids[:, :split], attention_mask[:, :split])
    if groups is None:
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False).last_hidden_state  # (B, L, H)
        return hidden[:, split - 1:]
    from transformers import DynamicCache

    first, inverse = groups
    cache = DynamicCache()
    prefix = decoder(input_ids=input_ids[first, :split], attention_mask=attention_mask[first, :split],
                     position_ids=position_ids[first, :split], past_key_values=cache,
                     use_cache=True).last_hidden_state  # (U, split, H)
    cache.reorder_cache(inverse)  # every layer's keys/values (U, ...) → (B, ...)
    rest = decoder(input_ids=input_ids[:, split:], attention_mask=attention_mask, position_ids=position_ids[:, split:],
                   past_key_values=cache, use_cache=True).last_hidden_state  # (B, L - split, H)
    return torch.cat([prefix[inverse, -1:], rest], dim=1)  # (B, L - split + 1, H)


def shared_prefix_layout(rows: list[list[int]], groups: list, pad_id: int):
    """Token lists laid out so that the rows of a group (equal keys in ``groups``) share their longest common
    prefix: prefixes left-padded to ``split`` columns, the rest right-padded after them.

    Returns ``(input_ids, attention_mask, position_ids, split, last)`` with ``last`` (B,) the index of each row's
    last token in :func:`suffix_hidden`'s output (0 = the last prefix column), or None when no two rows share a
    group (the plain right-padded batch is then narrower). Shapes: (B, split + R) for ids, mask, positions.
    """
    members: dict = {}
    for i, key in enumerate(groups):
        members.setdefault(key, []).append(i)
    if len(members) == len(rows):
        return None
    cut = [0] * len(rows)  # each row's prefix length
    for idx in members.values():
        common = min(len(rows[i]) for i in idx)
        if len(idx) > 1:
            first = rows[idx[0]]
            common = next((j for j in range(common) if any(rows[i][j] != first[j] for i in idx)), common)
        for i in idx:
            cut[i] = min(max(common, 1), len(rows[i])) if len(idx) > 1 else len(rows[i])  # a lone row: all prefix
    split = max(cut)
    rest = max(len(r) - c for r, c in zip(rows, cut))
    ids = torch.full((len(rows), split + rest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (r, c) in enumerate(zip(rows, cut)):
        ids[i, split - c: split] = torch.tensor(r[:c], dtype=torch.long)
        ids[i, split: split + len(r) - c] = torch.tensor(r[c:], dtype=torch.long)
        mask[i, split - c: split + len(r) - c] = 1
    positions = (mask.cumsum(1) - 1).clamp_min(0)
    last = torch.tensor([len(r) - c for r, c in zip(rows, cut)], dtype=torch.long)
    return ids, mask, positions, split, last
