"""The rollout seam: a Generator turns prompt token ids into a :class:`Rollout`.

Backends register in ``GENERATORS`` (``hf``: the policy module itself; ``ray``: a copy of the policy on a Ray
actor, :mod:`.on_ray`). A backend is built as ``cls(policy, pad_id, eos_ids, **generation.options)``; the
:class:`Generator` protocol is everything the trainers read from it:
- ``sample(prompts, params, generator, shard=None)`` returns a :class:`Rollout`: the behaviour log-probs of the
  sampled tokens under ``softmax(logits / temperature)`` over the full vocabulary, and ``finished`` (each response
  ended with EOS or one of ``params.stop_ids``, which end a response as EOS does: an episode's turn). ``shard``
  (data-parallel runs): the prompts are rows ``shard.rows`` of a global batch, sampled as one process would sample
  them (:class:`blendrl.core.dist.Shard`), possibly none of them (the rank still takes part); a backend that cannot
  do that raises.
- ``exact_logprobs``: whether those log-probs equal the training forward's (to float rounding); when they do not
  (another dtype or engine), the trainer recomputes them with a no-grad policy forward and takes the KL from those.
- ``check_every``, ``tolerance``: a generator that claims exactness but computes with other code (an inference
  engine) is checked every ``check_every`` batches (0: never): the trainer recomputes the log-probs and stops the
  run when the largest gap exceeds ``tolerance``.
- ``sync_weights(policy)`` is called after every update and after resume: a backend that holds its own copy of the
  weights refreshes it there.
- ``release()`` at the end of a run: a backend with a process of its own (an engine) stops it; sampling again
  starts it afresh.
Backends: ``hf`` (:mod:`.hf`), ``ray`` (:mod:`.on_ray`), ``vllm`` (:mod:`.on_vllm`: a vLLM engine in a worker
process, weight versions stamped on every rollout).
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..core.registry import Registry
from ..core.dist import Shard
from ..core.types import Rollout, SamplingParams

GENERATORS: Registry = Registry("generation backend", builtins=("blendrl.rollout.hf", "blendrl.rollout.on_ray",
                                                                   "blendrl.rollout.on_vllm"))


class Generator(Protocol):
    exact_logprobs: bool
    check_every: int
    tolerance: float

    def sample(self, prompts: list[list[int]], params: SamplingParams, generator: torch.Generator,
               shard: Shard | None = None) -> Rollout: ...

    def sync_weights(self, policy) -> None: ...

    def release(self) -> None: ...


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists. Returns ids (B, P) and mask (B, P)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask


def empty_rollout() -> Rollout:
    """The rollout of no rows (a data-parallel rank whose episodes have all ended while another's go on)."""
    empty = torch.zeros((0, 0), dtype=torch.long)
    return Rollout(empty, empty, empty, empty.float(), empty.float(), torch.zeros(0, dtype=torch.bool))


def decode_responses(tokenizer, rollout) -> list[str]:
    """Responses of a :class:`Rollout` (or an Experience) as text, up to EOS, special tokens dropped; a multi-turn
    rollout's are its :class:`~blendrl.core.types.Transcript` objects (the last turn's text, with the episode)."""
    if getattr(rollout, "transcripts", None) is not None:
        return list(rollout.transcripts)
    lengths = (rollout.response_mask > 0).sum(1).tolist()
    return tokenizer.batch_decode([ids[:n] for ids, n in zip(rollout.response_ids.tolist(), lengths)],
                                  skip_special_tokens=True)
