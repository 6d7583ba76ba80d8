"""MetaRM (Secrets of RLHF II §3.2, Alg. 1, first-order): keep the reward model discriminative on the shifted
policy's responses.

Meta set S: prompts with k unlabeled responses from the current policy (sampled once here, or read from a file).
Each optimizer step:

1. θ' = θ + η·∇_θ J_θ(S_batch), with J the difference loss of eq. 11 (:func:`metarm_difference_loss`);
2. the recipe loss on the preference batch is back-propagated at θ';
3. θ is restored and the optimizer applies that gradient to θ (α = ``train.lr``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...config.rm_schema import MetaRMConfig, RMRunConfig
from ...data.prompts import DataError
from ...functional.rm_losses import metarm_difference_loss
from ...models.reward_model import render_conversation
from .trainer import RMTrainer


def read_meta_responses(path: str, k: int) -> list[tuple[list[dict], list[str]]]:
    """Rows ``{"prompt": str | messages, "responses": [str, ...]}`` (≥ k each; the first k are used)."""
    from ...data.prompts import message_rows

    groups, file = [], Path(path)
    for file, where, messages, meta in message_rows(path, "metarm.responses"):
        responses = meta.get("responses")
        if not isinstance(responses, list) or len(responses) < k or not all(isinstance(r, str) for r in responses):
            raise DataError(f"{where}, field 'responses': expected a list of at least metarm.k={k} strings")
        groups.append((messages, responses[:k]))
    if not groups:
        raise DataError(f"{file}: no rows")
    return groups


def sample_meta_responses(cfg: MetaRMConfig, max_prompt_tokens: int, seed: int) -> list[tuple[list[dict], list[str]]]:
    """k responses per prompt of ``cfg.prompts`` from the policy ``cfg.policy`` (temperature sampling)."""
    from ...data.prompts import load_prompts
    from ...models.loading import load_causal_lm, load_tokenizer, resolve_model
    from ...rollout import SamplingParams, decode_responses
    from ...rollout.hf import HFGenerator
    from ...core.types import eos_ids

    path = resolve_model(cfg.policy)
    tokenizer, policy = load_tokenizer(path), load_causal_lm(path)
    prompts, _ = load_prompts(cfg.prompts, tokenizer, max_prompt_tokens, too_long="skip")
    generator = HFGenerator(policy, tokenizer.pad_token_id, eos_ids(tokenizer, policy))
    gen = torch.Generator().manual_seed(seed)
    groups = []
    for start in range(0, len(prompts), 8):
        chunk = prompts[start: start + 8]
        ids = [p.input_ids for p in chunk for _ in range(cfg.k)]
        out = generator.sample(ids, SamplingParams(cfg.max_new_tokens, cfg.temperature), gen)
        texts = decode_responses(tokenizer, out)
        groups += [(p.messages, texts[i * cfg.k: (i + 1) * cfg.k]) for i, p in enumerate(chunk)]
    return groups


def build_meta_set(cfg: MetaRMConfig, tokenizer, run_cfg: RMRunConfig) -> list[list[list[int]]]:
    """The meta set as token ids of the reward model: P groups of k conversations."""
    groups = (read_meta_responses(cfg.responses, cfg.k) if cfg.responses
              else sample_meta_responses(cfg, run_cfg.data.max_length, run_cfg.train.seed))
    max_len = run_cfg.data.max_length
    return [[tokenizer(render_conversation(tokenizer, prompt, r), add_special_tokens=False)["input_ids"][:max_len]
             for r in responses] for prompt, responses in groups]


class MetaRMTrainer(RMTrainer):
    """:class:`RMTrainer` with the MetaRM meta step around the same loss and optimizer step."""

    def __init__(self, cfg: RMRunConfig, model, tokenizer, train, meta_set: list[list[list[int]]], **kw) -> None:
        super().__init__(cfg, model, tokenizer, train, **kw)
        self.meta_set = meta_set

    def meta_batch(self, step: int) -> list[list[list[int]]]:
        """Groups of step ``step``, cycling through the meta set in order."""
        b, n = self.cfg.metarm.meta_batch_size, len(self.meta_set)
        return [self.meta_set[(step * b + i) % n] for i in range(min(b, n))]

    def gradient(self, idx: list[int]) -> dict:
        m = self.cfg.metarm
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = self.meta_batch(self.iteration)
        scores, _ = self.scorer([s for g in groups for s in g])
        meta_loss = metarm_difference_loss(scores.view(len(groups), m.k))  # J_θ, eq. 11
        grads = torch.autograd.grad(meta_loss, params, allow_unused=True)
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():  # θ' = θ + η ∇J (ascent)
            for p, g in zip(params, grads):
                if g is not None:
                    p.add_(g, alpha=m.eta)
        stats = self.accumulate(idx)  # ∇ of the pair loss at θ'
        with torch.no_grad():  # back to θ; the optimizer then applies the θ' gradient to θ
            for p, b in zip(params, backup):
                p.copy_(b)
        stats["metarm/difference_loss"] = meta_loss.item()
        return stats
