"""VinePPO's Monte-Carlo values (docs/algorithms.md §15): the value of the state at the start of each reasoning
step is the mean shaped score of ``algorithm.vine.samples`` fresh continuations of that prefix by the current
policy, in place of a critic. Called by the trainer for an algorithm with ``needs_mc_values``.

Cost: one generation per (response, step, sample) — K·S times the rollout's sequences — in exchange for an
unbiased value with no critic to train.
"""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import torch

from ..core.types import Experience, SamplingParams
from ..functional.advantages import step_ids


@lru_cache(maxsize=4)
def newline_ids(tokenizer) -> tuple[int, ...]:
    """Token ids whose text contains a newline (the step separators of a reasoning trace); once per tokenizer."""
    return tuple(i for tok, i in tokenizer.get_vocab().items() if "\n" in tokenizer.convert_tokens_to_string([tok]))


def mc_values(exp: Experience, prompts, v, tokenizer, generator, params: SamplingParams, gen: torch.Generator,
              score) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(values (B, T), steps (B, T), metrics)``: each token's step index and the Monte-Carlo value of its step's
    start state. ``prompts``: the B prompt examples of ``exp``'s rows; ``v``: ``algorithm.vine``; ``generator``,
    ``params``, ``gen``: the rollout's sampler, its settings and random stream; ``score(prompts, texts, finished)
    -> (shaped (N,), scored (N,) bool)``: the shaped scores of continuations (the trainer's, counting nothing)."""
    mask = exp.response_mask  # (B, T)
    split = newline_ids(tokenizer) if v.split_on_newline else ()
    steps = step_ids(exp.response_ids, mask, v.step_tokens, split)  # (B, T)
    responses = exp.response_ids.tolist()
    jobs = []  # (row, step, start token of the step)
    for b in range(len(exp)):
        live = (mask[b] > 0).nonzero().flatten().tolist()
        starts = {}
        for t in live:
            starts.setdefault(int(steps[b, t]), t)
        jobs += [(b, j, t) for j, t in sorted(starts.items())]
    by_budget = defaultdict(list)  # generation budget → jobs (one generate call per budget)
    for job in jobs:
        by_budget[params.max_new_tokens - job[2]].append(job)
    step_value = {}
    for budget, group in sorted(by_budget.items()):
        flat = [job for job in group for _ in range(v.samples)]
        out = generator.sample([prompts[b].input_ids + responses[b][:t] for b, _, t in flat],
                               SamplingParams(budget, params.temperature, params.top_p), gen)
        lengths = (out.response_mask > 0).sum(1).tolist()
        texts = tokenizer.batch_decode(
            [responses[b][:t] + ids[:n] for (b, _, t), ids, n in zip(flat, out.response_ids.tolist(), lengths)],
            skip_special_tokens=True)
        shaped, ok = score([prompts[b] for b, _, _ in flat], texts, out.finished)
        shaped, ok = shaped.view(-1, v.samples), ok.view(-1, v.samples)  # (jobs, K)
        means = (shaped * ok).sum(1) / ok.sum(1).clamp_min(1)  # (jobs,) an unscorable job counts 0
        for (b, j, _), m in zip(group, means.tolist()):
            step_value[(b, j)] = m
    values = torch.zeros_like(mask)
    for b in range(len(exp)):
        for t in (mask[b] > 0).nonzero().flatten().tolist():
            values[b, t] = step_value[(b, int(steps[b, t]))]
    n_steps = torch.tensor([float(sum(1 for (bb, _) in step_value if bb == b)) for b in range(len(exp))])
    return values, steps, {"vine/steps_mean": n_steps.mean().item(), "vine/continuations": len(jobs) * v.samples}
