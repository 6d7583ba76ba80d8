"""The value types every layer shares: what a reward source or judge sees (:class:`Sample`), what a generator
returns (:class:`Rollout`), what the trainer and the algorithms pass around (:class:`Experience`). They sit below
everything that uses them; they hold tensors and text, and know nothing of models or configs."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import torch


@dataclass
class Sample:
    """What a reward source sees. ``messages`` is the prompt conversation; ``response`` the generated text."""

    messages: list[dict]
    response: str
    metadata: dict = field(default_factory=dict)
    where: str = ""  # "file, row N" of the prompt, for error messages
    finished: bool = True  # the response ended with EOS (False: cut at max_new_tokens)

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


def make_samples(prompts, responses: list[str], finished) -> list[Sample]:
    """The one way a loop builds ``Sample`` objects: prompt records (``.messages``, ``.metadata``, ``.source``,
    ``.row``), their decoded responses, and ``finished`` ((B,) bool tensor or list: the response ended with EOS).
    ``finished`` is required, so no consumer can let a truncated response pass the ``eos`` judge."""
    finished = finished.tolist() if isinstance(finished, torch.Tensor) else list(finished)
    if not len(prompts) == len(responses) == len(finished):
        raise ValueError(f"make_samples: {len(prompts)} prompts, {len(responses)} responses, {len(finished)} flags")
    return [Sample(p.messages, r, p.metadata, f"{p.source}, row {p.row}", bool(f))
            for p, r, f in zip(prompts, responses, finished)]


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
    step_ids: Optional[torch.Tensor] = None  # (B, T) long: VinePPO's step index of each response token
    token_scores: Optional[torch.Tensor] = None  # (B, T) dense rewards of a segment reward model, per token

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


def eos_ids(tokenizer, model) -> list[int]:
    """Every token id that ends a response: the tokenizer's EOS and the model's ``generation_config`` EOS id(s)."""
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return [i for i in ids if i is not None]
