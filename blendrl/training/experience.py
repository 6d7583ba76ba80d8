"""One iteration's experience: the rollout laid out for training forwards, plus what scoring added."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import torch

from ..functional.logprobs import token_logprobs
from ..models.layout import decoder_and_head, decoder_and_value_head
from ..models.prefix_sharing import suffix_hidden
from ..models.tied_grads import grads_in_place
from ..rollout import Rollout


@dataclass
class Experience:
    """B sequences of prompt (P, left-padded) + response (T, right-padded); L = P + T."""

    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)
    response_mask: torch.Tensor  # (B, T) float; 0 on padding and on skipped samples
    behaviour_logp: torch.Tensor  # (B, T) from the sampler
    old_logp: Optional[torch.Tensor] = None  # (B, T) π_old from a training forward (exact)
    ref_logp: Optional[torch.Tensor] = None  # (B, T)
    values: Optional[torch.Tensor] = None  # (B, T) critic before the update
    scores: Optional[torch.Tensor] = None  # (B,) shaped sequence scores
    advantages: Optional[torch.Tensor] = None  # (B, T)
    returns: Optional[torch.Tensor] = None  # (B, T)
    seq_weights: Optional[torch.Tensor] = None  # (B,) per-sequence weight of the CGPO optimizers (advantage, R_calib)

    @property
    def prompt_len(self) -> int:
        return self.input_ids.shape[1] - self.response_mask.shape[1]

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len:]  # (B, T)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: torch.Tensor) -> "Experience":
        return Experience(**{f.name: (None if (v := getattr(self, f.name)) is None else v[idx]) for f in fields(self)})

    def trimmed(self) -> "Experience":
        """The same rows without the prompt columns that are padding in every row and the response columns past
        every row's last sampled token: what a micro-batch of a few rows needs. Per-token outputs come back
        (b, T') with T' ≤ T; :func:`pad_response` restores the width. Padding is masked out of every pass, so the
        numbers are those of the padded rows (up to float rounding of the smaller matrices)."""
        P = self.prompt_len
        start = int((self.attention_mask[:, :P].sum(0) > 0).nonzero().min()) if self.attention_mask[:, :P].any() else P
        width = int((self.attention_mask[:, P:] > 0).sum(1).max()) if len(self) else 0

        def cut(name: str, v: torch.Tensor | None) -> torch.Tensor | None:
            if v is None or v.dim() == 1:  # absent, or per sequence (B,)
                return v
            if name in ("input_ids", "attention_mask", "position_ids"):  # (B, L)
                return v[:, start: P + width]
            return v[:, :width]  # (B, T)

        return Experience(**{f.name: cut(f.name, getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def from_rollout(cls, rollout: Rollout) -> "Experience":
        input_ids = torch.cat([rollout.prompt_ids, rollout.response_ids], dim=1)  # (B, L)
        resp_attn = (rollout.response_mask > 0).long()  # (B, T)
        attention_mask = torch.cat([rollout.prompt_mask, resp_attn], dim=1)  # (B, L)
        position_ids = (attention_mask.cumsum(1) - 1).clamp_min(0)  # (B, L)
        return cls(input_ids, attention_mask, position_ids, rollout.response_mask.clone(), rollout.logp)


def pad_response(x: torch.Tensor, width: int) -> torch.Tensor:
    """(b, T') per-token values of a :meth:`Experience.trimmed` batch → (b, width), zeros on the right."""
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))


def micro_batches(exp: Experience, idx: torch.Tensor, size: int) -> list[torch.Tensor]:
    """``idx`` split into micro-batches of ``size`` rows after ordering them by prompt length, then response length,
    so that each :meth:`Experience.trimmed` micro-batch pads to rows like its own (dynamic batching as in
    OpenRLHF/verl). A gradient accumulated over the micro-batches, or a per-row output written back by index, does
    not depend on how rows are grouped."""
    P = exp.prompt_len
    prompt_len = exp.attention_mask[idx, :P].sum(1)  # (n,)
    response_len = exp.attention_mask[idx, P:].sum(1)  # (n,)
    order = torch.argsort(prompt_len * (exp.attention_mask.shape[1] + 1) + response_len, stable=True)
    return list(idx[order].split(size))


def forward_rows(fn, exp: Experience, size: int) -> torch.Tensor:
    """``fn(micro-batch) -> (b, T')`` over every row of ``exp`` in :func:`micro_batches` of trimmed rows, written back
    in row order: (B, T)."""
    T = exp.response_mask.shape[1]
    out = None
    for micro in micro_batches(exp, torch.arange(len(exp)), size):
        part = pad_response(fn(exp.select(micro).trimmed()), T)  # (b, T)
        if out is None:
            out = part.new_zeros((len(exp), T))
        out[micro] = part
    return out if out is not None else exp.response_mask.new_zeros(exp.response_mask.shape)


def response_logprobs(model, exp: Experience, temperature: float) -> torch.Tensor:
    """Log-probs of the response tokens under ``softmax(logits / temperature)``. → (B, T), 0 on padding.

    Every sampled token gets its log-prob (padding is what the attention mask leaves out, past EOS), including the
    rows of skipped samples whose ``response_mask`` was zeroed after scoring. For plain-head models
    (:func:`blendrl.models.layout.decoder_and_head`) the decoder's hidden states at those positions go through
    :func:`blendrl.functional.token_logprobs` (chunked: no (B, T, V) logits tensor, forward or backward), and a
    prompt that several rows share runs once (:func:`blendrl.models.prefix_sharing.suffix_hidden`); a tied head
    switched by :func:`blendrl.models.tied_grads.accumulate_tied_grads_in_place` adds its gradient in place.
    Other models: only the last T+1 positions go through the LM head (``logits_to_keep``). Both give the numbers
    of a full forward (up to float rounding).
    """
    T = exp.response_mask.shape[1]
    keep = exp.attention_mask[:, exp.prompt_len :] > 0  # (B, T) the sampled tokens
    parts = decoder_and_head(model)
    if parts is None:
        logits = model(
            input_ids=exp.input_ids, attention_mask=exp.attention_mask, position_ids=exp.position_ids,
            logits_to_keep=T + 1, use_cache=False,
        ).logits[:, :-1].float() / temperature  # (B, T, V)
        picked = logits.gather(-1, exp.response_ids[..., None])[..., 0]  # (B, T)
        return (picked - torch.logsumexp(logits, dim=-1)) * keep  # (B, T)
    decoder, head = parts
    hidden = suffix_hidden(decoder, exp.input_ids, exp.attention_mask, exp.position_ids, exp.prompt_len)  # (B, T+1, H)
    states = hidden[:, :T][keep]  # (n, H): the state before each kept response token
    logp = token_logprobs(states, head.weight, exp.response_ids[keep], temperature,
                          accumulate_grad=grads_in_place(head.weight))  # (n,)
    return torch.zeros(keep.shape, dtype=logp.dtype, device=logp.device).masked_scatter(keep, logp)  # (B, T)


def response_values(critic, exp: Experience) -> torch.Tensor:
    """Critic values of the states before each response token (a shared prompt runs once, as in
    :func:`response_logprobs`). → (B, T)."""
    P, T = exp.prompt_len, exp.response_mask.shape[1]
    parts = decoder_and_value_head(critic)
    if parts is not None:
        decoder, head = parts
        hidden = suffix_hidden(decoder, exp.input_ids, exp.attention_mask, exp.position_ids, P)  # (B, T+1, H)
        return head(hidden[:, :T])[..., 0].float()  # (B, T)
    values = critic(
        input_ids=exp.input_ids, attention_mask=exp.attention_mask, position_ids=exp.position_ids, use_cache=False
    ).logits[..., 0]  # (B, L)
    return values[:, P - 1 : P + T - 1].float()  # (B, T)
