"""The value types every layer shares: what a reward source or judge sees (:class:`Sample`), what a generator
returns (:class:`Rollout`), what the trainer and the algorithms pass around (:class:`Experience`). They sit below
everything that uses them; they hold tensors and text, and know nothing of models or configs."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import torch


@dataclass
class Sample:
    """What a reward source sees. ``messages`` is the prompt conversation; ``response`` the generated text (in a
    multi-turn episode, the policy's last turn). ``turns``: a multi-turn episode after the prompt, in order
    (``{"role": "assistant", "content", "tool_calls": [...]}`` for the policy's turns, ``{"role": "tool" | "user",
    "content"}`` for the environment's); None for one response."""

    messages: list[dict]
    response: str
    metadata: dict = field(default_factory=dict)
    where: str = ""  # "file, row N" of the prompt, for error messages
    finished: bool = True  # the response ended with EOS (False: cut at max_new_tokens)
    turns: Optional[list[dict]] = None

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


class Transcript(str):
    """A multi-turn episode where a response's text is expected: the text of the policy's last turn, carrying the
    whole episode (``turns``, as :class:`Sample`'s) and what the environment counted in it (``stats``)."""

    turns: list[dict]
    stats: dict

    def __new__(cls, text: str, turns: list[dict], stats: dict | None = None) -> "Transcript":
        out = super().__new__(cls, text)
        out.turns, out.stats = turns, dict(stats or {})
        return out

    def __reduce__(self):  # pickled (gathered across ranks, sent to a worker) with its episode
        return Transcript, (str(self), self.turns, self.stats)


def make_samples(prompts, responses: list[str], finished) -> list[Sample]:
    """The one way a loop builds ``Sample`` objects: prompt records (``.messages``, ``.metadata``, ``.source``,
    ``.row``), their decoded responses (a :class:`Transcript` brings its episode's turns), and ``finished`` ((B,)
    bool tensor or list: the response ended with EOS). ``finished`` is required, so no consumer can let a truncated
    response pass the ``eos`` judge."""
    finished = finished.tolist() if isinstance(finished, torch.Tensor) else list(finished)
    if not len(prompts) == len(responses) == len(finished):
        raise ValueError(f"make_samples: {len(prompts)} prompts, {len(responses)} responses, {len(finished)} flags")
    return [Sample(p.messages, str(r), p.metadata, f"{p.source}, row {p.row}", bool(f), getattr(r, "turns", None))
            for p, r, f in zip(prompts, responses, finished)]


@dataclass
class Scores:
    """What a reward source returns for N samples, as one value (nothing is left behind on the source to be read
    after the call). ``total`` (N,) float: the score the trainer optimises (NaN: a sample that could not be scored).
    For logging and shaping: ``components`` (name → (N,): the scores of the sources a sum is made of), ``stats``
    (name → (N,): what a source saw, e.g. an ensemble's disagreement, a judge bonus's pass indicator) and ``dense``
    (per sample, per response character: a dense source's rewards, already summed into ``total``)."""

    total: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    dense: Optional[list[list[float]]] = None

    def __len__(self) -> int:
        return len(self.total)

    @classmethod
    def of(cls, value, n: int, name: str) -> "Scores":
        """A source's return value as Scores: a :class:`Scores`, or a plain (N,) tensor or list of floats (what a
        user's own source may return). Raises ValueError naming the source when the shapes are not N rows."""
        out = value if isinstance(value, Scores) else cls(torch.as_tensor(value, dtype=torch.float32))
        out.total = torch.as_tensor(out.total).float()
        shapes = {k: tuple(torch.as_tensor(v).shape) for k, v in {"total": out.total, **out.components,
                                                                   **out.stats}.items()}
        bad = {k: s for k, s in shapes.items() if s != (n,)}
        if bad or (out.dense is not None and len(out.dense) != n):
            raise ValueError(f"reward '{name}' returned {bad or 'dense rows'} for {n} samples; want ({n},) each")
        return out

    def select(self, idx: torch.Tensor) -> "Scores":
        """The rows ``idx`` (long) of every field."""
        rows = idx.tolist()
        return Scores(self.total[idx], {k: v[idx] for k, v in self.components.items()},
                      {k: v[idx] for k, v in self.stats.items()},
                      None if self.dense is None else [self.dense[i] for i in rows])

    @classmethod
    def cat(cls, parts: list["Scores"]) -> "Scores":
        """The rows of ``parts`` one after another (the shares of a batch scored by several workers)."""
        if not parts:
            return cls(torch.zeros(0))
        first = parts[0]
        dense = None if first.dense is None else [row for p in parts for row in p.dense]
        return cls(torch.cat([p.total for p in parts]),
                   {k: torch.cat([p.components[k] for p in parts]) for k in first.components},
                   {k: torch.cat([p.stats[k] for p in parts]) for k in first.stats}, dense)


@dataclass(frozen=True)
class ModelPlacement:
    """Where a run's frozen scoring models live: the policy's ``device``, the run's ``dtype`` (``model.dtype``) and
    whether reward models ``offload`` their weights to files between uses (``model.offload_frozen``, CPU only). One
    value per run (:meth:`blendrl.config.schema.ModelConfig.placement`), handed to every builder of reward sources,
    so PPO, CGPO tasks, summed PPO, the lab and best-of-n place them alike; a source's own ``options`` win."""

    device: str = "cpu"
    dtype: str = "float32"
    offload: bool = False


@dataclass
class SamplingParams:
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 1.0
    stop_ids: tuple = ()  # token ids that also end a response (an episode's turn), besides the EOS ids


@dataclass
class Rollout:
    """Sampled responses. B = number of sequences, P = padded prompt length, T = padded response length."""

    prompt_ids: torch.Tensor  # (B, P) long, left-padded
    prompt_mask: torch.Tensor  # (B, P) long, 1 on prompt tokens
    response_ids: torch.Tensor  # (B, T) long, right-padded
    response_mask: torch.Tensor  # (B, T) float, 1 up to and including EOS
    logp: torch.Tensor  # (B, T) float, behaviour log-probs of the sampled tokens
    finished: torch.Tensor  # (B,) bool: the response ended with EOS (False: cut at max_new_tokens)
    # multi-turn episodes (blendrl.envs): the environment's tokens sit between the policy's turns in the response,
    # attended to (attention (B, T) long, 1 on every token) but out of the loss (response_mask 0 on them); one
    # Transcript per row. None: one response per row, attention = response_mask > 0
    attention: Optional[torch.Tensor] = None
    transcripts: Optional[list] = None

    @property
    def num_tokens(self) -> int:
        return int(self.response_mask.sum().item())

    def select(self, idx: torch.Tensor | slice) -> "Rollout":
        return Rollout(*(_rows(getattr(self, f), idx) for f in self.__dataclass_fields__))

    def to(self, device) -> "Rollout":
        return Rollout(*(v.to(device) if isinstance(v := getattr(self, f), torch.Tensor) else v
                         for f in self.__dataclass_fields__))

    @classmethod
    def cat(cls, parts: list["Rollout"], pad_id: int) -> "Rollout":
        """The rows of ``parts`` one after another, prompts left-padded and responses right-padded to the widest."""
        P = max(r.prompt_ids.shape[1] for r in parts)
        T = max(r.response_ids.shape[1] for r in parts)
        F = torch.nn.functional

        def left(x, value):  # (b, p) → (b, P)
            return F.pad(x, (P - x.shape[1], 0), value=value)

        def right(x, value):  # (b, t) → (b, T)
            return F.pad(x, (0, T - x.shape[1]), value=value)

        multi = any(r.transcripts is not None for r in parts)
        return cls(torch.cat([left(r.prompt_ids, pad_id) for r in parts]), torch.cat([left(r.prompt_mask, 0)
                                                                                   for r in parts]),
                   torch.cat([right(r.response_ids, pad_id) for r in parts]),
                   torch.cat([right(r.response_mask, 0.0) for r in parts]),
                   torch.cat([right(r.logp, 0.0) for r in parts]), torch.cat([r.finished for r in parts]),
                   torch.cat([right(r.response_attention, 0) for r in parts]) if multi else None,
                   [t for r in parts for t in r.transcripts] if multi else None)

    @property
    def response_attention(self) -> torch.Tensor:
        """(B, T) long: 1 on every response token the model attends to (the policy's and the environment's)."""
        return self.attention if self.attention is not None else (self.response_mask > 0).long()

    def compact(self) -> "Rollout":
        """The same rows without prompt columns that are padding in every row and response columns past the longest
        response (what remains after :meth:`select` of a few rows from a larger batch)."""
        start = int((self.prompt_mask.sum(0) > 0).nonzero().min()) if self.prompt_mask.any() else 0
        width = int(self.response_attention.sum(1).max()) if len(self.response_mask) else 0
        return Rollout(self.prompt_ids[:, start:], self.prompt_mask[:, start:], self.response_ids[:, :width],
                       self.response_mask[:, :width], self.logp[:, :width], self.finished,
                       None if self.attention is None else self.attention[:, :width], self.transcripts)


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
    finished: Optional[torch.Tensor] = None  # (B,) bool: the response ended with EOS (the generator's flag)
    engine_logp: Optional[torch.Tensor] = None  # (B, T) an inexact generator's own log-probs (TIS weights)
    costs: Optional[torch.Tensor] = None  # (B,) episode costs (ppo-lagrangian's cost sources, not shaped)
    cost_values: Optional[torch.Tensor] = None  # (B, T) the cost critic before the update
    cost_returns: Optional[torch.Tensor] = None  # (B, T)
    transcripts: Optional[list] = None  # multi-turn episodes: one Transcript per row (Rollout's)

    @property
    def prompt_len(self) -> int:
        return self.input_ids.shape[1] - self.response_mask.shape[1]

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len:]  # (B, T)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: torch.Tensor) -> "Experience":
        return Experience(**{f.name: _rows(getattr(self, f.name), idx) for f in fields(self)})

    def trimmed(self) -> "Experience":
        """The same rows without the prompt columns that are padding in every row and the response columns past
        every row's last sampled token: what a micro-batch of a few rows needs. Per-token outputs come back
        (b, T') with T' ≤ T; :func:`pad_response` restores the width. Padding is masked out of every pass, so the
        numbers are those of the padded rows (up to float rounding of the smaller matrices)."""
        P = self.prompt_len
        start = int((self.attention_mask[:, :P].sum(0) > 0).nonzero().min()) if self.attention_mask[:, :P].any() else P
        width = int((self.attention_mask[:, P:] > 0).sum(1).max()) if len(self) else 0

        def cut(name: str, v: torch.Tensor | None) -> torch.Tensor | None:
            if not isinstance(v, torch.Tensor) or v.dim() == 1:  # absent, per sequence (B,), or the transcripts
                return v
            if name in ("input_ids", "attention_mask", "position_ids"):  # (B, L)
                return v[:, start: P + width]
            return v[:, :width]  # (B, T)

        return Experience(**{f.name: cut(f.name, getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def from_rollout(cls, rollout: Rollout) -> "Experience":
        input_ids = torch.cat([rollout.prompt_ids, rollout.response_ids], dim=1)  # (B, L)
        resp_attn = rollout.response_attention.to(rollout.prompt_mask.dtype)  # (B, T)
        attention_mask = torch.cat([rollout.prompt_mask, resp_attn], dim=1)  # (B, L)
        position_ids = (attention_mask.cumsum(1) - 1).clamp_min(0)  # (B, L)
        return cls(input_ids, attention_mask, position_ids, rollout.response_mask.clone(), rollout.logp,
                   finished=rollout.finished, transcripts=rollout.transcripts)


def _rows(value, idx):
    """Rows ``idx`` (a tensor of indices, a bool mask or a slice) of a per-row field: a tensor or a list."""
    if value is None or isinstance(value, torch.Tensor):
        return None if value is None else value[idx]
    if isinstance(idx, slice):
        return value[idx]
    idx = torch.as_tensor(idx)
    rows = idx.nonzero().flatten() if idx.dtype == torch.bool else idx.flatten()
    return [value[i] for i in rows.tolist()]


def pad_response(x: torch.Tensor, width: int) -> torch.Tensor:
    """(b, T') per-token values of a :meth:`Experience.trimmed` batch → (b, width), zeros on the right."""
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))


def eos_ids(tokenizer, model) -> list[int]:
    """Every token id that ends a response: the tokenizer's EOS and the model's ``generation_config`` EOS id(s)."""
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return [i for i in ids if i is not None]
