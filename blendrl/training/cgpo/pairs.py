"""Offline preference pairs from a CGPO config (the DPO row of the head-to-head, ``benchmarks/cgpo_vs_ppo.py``):
the initial policy samples each task's prompts as a CGPO run would (same prompt order, K samples per prompt, the
same number of iterations, so the same budget of generated samples), the task's reward and judges score them, and
each prompt gives CODPO's pair (eqs. 13–14): the best-rewarded sample that passes every judge over the
worst-rewarded one that fails (a prompt where every sample passes, or none does, gives no pair). ``blendrl dpo``
trains on the file.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...config.cgpo_schema import CGPORunConfig
from ...data.preferences import write_preferences
from ...functional.cgpo import codpo_pairs
from ...rollout import decode_responses
from ..experience import Experience
from .trainer import sample_tasks


@torch.no_grad()
def judge_pairs(cfg: CGPORunConfig, iterations: int, output: str | Path) -> dict:
    """Sample ``iterations`` CGPO batches from the initial policy, pair them, write ``output`` (.jsonl or .parquet).
    Returns per-task counts of samples, passing samples and pairs."""
    from .run import build_cgpo_trainer

    trainer = build_cgpo_trainer(cfg)
    rows, counts = [], {t.name: {"samples": 0, "passed": 0, "pairs": 0} for t in trainer.tasks}
    for _ in range(iterations):
        batches = [trainer.next_prompts(task) for task in trainer.tasks]
        rollouts = sample_tasks(trainer.generator, trainer.tasks, batches, trainer.sampling_gen)
        for task, prompts, rollout in zip(trainer.tasks, batches, rollouts):
            k = task.cfg.samples_per_prompt
            responses = decode_responses(trainer.m.tokenizer, Experience.from_rollout(rollout))
            scored = task.score(prompts, responses, rollout.finished)
            passed = scored.passed & scored.valid
            chosen, rejected = codpo_pairs(torch.where(scored.valid, scored.reward, torch.zeros_like(scored.reward)),
                                           passed, k)
            for c, r in zip(chosen.tolist(), rejected.tolist()):
                if responses[c].strip() and responses[r].strip() and passed[c] and not passed[r]:
                    rows.append({"prompt": prompts[c].messages, "chosen": responses[c], "rejected": responses[r],
                                 "task": task.name, "rejected_reasons": list(scored.reasons[r])})
                    counts[task.name]["pairs"] += 1
            counts[task.name]["samples"] += len(responses)
            counts[task.name]["passed"] += int(passed.sum())
    if rows:
        write_preferences(rows, output)
    return {"pairs": len(rows), "tasks": counts, "output": str(output)}
