"""A fast sampling loop over any Hugging Face causal LM (``generate`` without its per-step machinery).

One prefill per distinct prompt that keeps only the last logits (rows that repeat a prompt, as RLOO/GRPO's k
samples do, share its cache), then one forward per token with explicit position ids (left padding), inverse-CDF
sampling straight from the logits (no full log-softmax, no full-vocabulary cumsum), and an early exit once every
row has emitted EOS. Llama-layout models (SmolLM2, Llama, Qwen2, Mistral) decode through :class:`StaticKVDecoder`
(static KV buffers; on the CPU one kernel call per layer); others through HF's forward on a ``DynamicCache``.
Speed: ``benchmarks/generation.py`` (docs/performance.md).
"""
from __future__ import annotations

import math

import torch

from ..models.layout import is_llama_layout, is_sharded
from ..core.dist import Shard
from .base import GENERATORS, Rollout, SamplingParams, empty_rollout, left_pad
from .sampling import sample_from_logits
from .static_decode import StaticKVDecoder


@GENERATORS.register("hf")
class HFGenerator:
    """Sampling from ``model`` (a transformers or peft causal LM). ``eos_ids`` end a response."""

    exact_logprobs = True  # it samples from the trained module itself
    check_every, tolerance = 0, math.inf  # nothing to check: its log-probs are the training forward's

    def __init__(self, model, pad_id: int, eos_ids: list[int]) -> None:
        self.model, self.pad_id = model, pad_id
        self.eos_ids = torch.tensor(sorted(set(eos_ids)), dtype=torch.long)

    def sync_weights(self, policy) -> None:
        """Nothing to do: the generator holds the policy module, not a copy."""

    def release(self) -> None:
        """Nothing to release: no process of its own."""

    def _idle(self, params: SamplingParams, generator: torch.Generator, shard: Shard | None) -> Rollout:
        """No rows: take part in the other ranks' decode steps (their draws and their all-done checks) and return
        an empty rollout."""
        for t in range(params.max_new_tokens):
            if shard is None:
                break
            torch.rand((shard.total, 1), generator=generator, dtype=torch.float64)
            if shard.all_done(True) or t == params.max_new_tokens - 1:
                break
        return empty_rollout()

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], params: SamplingParams, generator: torch.Generator,
               shard: Shard | None = None) -> Rollout:
        """``shard``: these prompts are rows ``shard.rows`` of a global batch of ``shard.total`` sampled by
        several ranks; each step draws the whole batch's uniforms and uses this rank's, and the loop runs until every
        rank is done, so the rows get the tokens one process sampling the whole batch would give them."""
        from transformers import DynamicCache

        if not prompts:  # a rank with no rows this time (a multi-turn batch whose episodes here have all ended)
            return self._idle(params, generator, shard)
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device  # every tensor of the rollout lives on the model's device
        prompt_ids, prompt_mask = (x.to(device) for x in left_pad(prompts, self.pad_id))  # (B, P)
        B, N = prompt_ids.shape[0], params.max_new_tokens
        tokens = torch.full((B, N), self.pad_id, dtype=torch.long, device=device)  # (B, N)
        logps = torch.zeros((B, N), device=device)  # (B, N)
        mask = torch.zeros((B, N), device=device)  # (B, N)
        done = torch.zeros(B, dtype=torch.bool, device=device)  # (B,)
        eos_ids = torch.cat([self.eos_ids, torch.tensor(params.stop_ids, dtype=torch.long)]).to(device)
        attn = prompt_mask.clone()  # (B, P + t)
        positions = (prompt_mask.cumsum(-1) - 1).clamp_min(0)  # (B, P)
        # Prefill each distinct prompt once (RLOO/GRPO sample k responses per prompt), then give every row its
        # prompt's cache and logits; duplicates have the same length, so the padded width P does not change.
        distinct: dict[tuple[int, ...], int] = {}
        rows = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]  # each row's distinct prompt
        shared = len(distinct) < B
        keep = [rows.index(i) for i in range(len(distinct))] if shared else slice(None)  # first row of each
        cache = DynamicCache()
        out = self.model(
            input_ids=prompt_ids[keep], attention_mask=attn[keep], position_ids=positions[keep],
            past_key_values=cache, use_cache=True, logits_to_keep=1,
        )
        logits = out.logits[:, -1]  # (distinct prompts, V)
        if shared:
            index = torch.tensor(rows, device=device)
            logits = logits[index]  # (B, V)
            cache.reorder_cache(index)
        decoder = None
        sharded = is_sharded(self.model)  # FSDP: every rank runs every forward (its collectives gather the weights)
        if is_llama_layout(self.model) and device.type == "cpu" and not sharded:  # the CPU fast path
            decoder, cache = StaticKVDecoder(self.model, cache, prompt_mask, N), None  # the buffers hold the cache
        next_pos = positions[:, -1:] + 1  # (B, 1)
        steps = 0
        for t in range(N):
            u = None
            if shard is not None:  # the global batch's draws, this rank's rows
                u = torch.rand((shard.total, 1), generator=generator, dtype=torch.float64)
                u = u[shard.rows].to(device)  # (B, 1)
            tok, logp = sample_from_logits(logits, params.temperature, params.top_p, generator, u)  # (B,), (B,)
            tok = torch.where(done, torch.full_like(tok, self.pad_id), tok)
            tokens[:, t] = tok
            logps[:, t] = logp * (~done)
            mask[:, t] = (~done).float()
            done |= torch.isin(tok, eos_ids)
            steps = t + 1
            finished = bool(done.all()) if shard is None else shard.all_done(bool(done.all()))
            if finished or t == N - 1:
                break
            if done.all() and not sharded:  # this rank is done, another is not: keep drawing, skip the forward
                next_pos = next_pos + 1
                continue
            if decoder is not None:
                logits = decoder.step(tok, next_pos)
            else:
                attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=device)], dim=1)
                logits = self.model(
                    input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos, past_key_values=cache,
                    use_cache=True,
                ).logits[:, -1]
            next_pos = next_pos + 1
        if was_training:
            self.model.train()
        finished = (torch.isin(tokens, eos_ids) & mask.bool()).any(dim=1)
        return Rollout(prompt_ids, prompt_mask, tokens[:, :steps], mask[:, :steps], logps[:, :steps], finished)
