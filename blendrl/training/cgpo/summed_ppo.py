"""Summed-reward PPO over a CGPO config's tasks: the baseline that CGPO is measured against (CGPO §5, "RLHF with
PPO" where the tasks' rewards are combined into one). ``blendrl cgpo-ppo --config CGPO.yaml``.

What changes from CGPO, and nothing else:
- one pool of prompts: every task's training prompts (with the task's system prompt), tagged ``metadata.cgpo_task``
  and repeated so that each task's share of a batch is its CGPO share ``P_l·K_l / Σ P·K``;
- one reward (:class:`TaskSumReward`, built here from the CGPO config's task rewards and judges): the sample's task
  reward plus ``judge_bonus`` when that task's judges pass, so judges are one more summed term instead of a
  constraint;
- one PPO loop (critic + GAE, per-token KL in the reward), ``blendrl ppo``'s trainer.
The same budget: the same number of responses per iteration (Σ P_l·K_l, one per prompt), the same iterations, lr,
seed, generation settings and reference. Evaluation is CGPO's per-task evaluation (same held-out prompts, judges,
reward, ā and sampling seed), so the two runs' tables compare line by line.
"""
from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import torch

from ...config import ConfigError, PPORunConfig, to_dict
from ...config.cgpo_schema import CGPORunConfig
from ...config.loader import apply_overrides, from_dict
from ...config.schema import LoopSettings
from ...core.fsutil import atomic_write_text
from ...core.types import Sample
from ...data.prompts import read_prompt_rows
from ...judges import build_judges
from ...rewards import RewardError, WeightedSum, build_reward
from .run import build_tasks, eval_table, reference_sampler
from .trainer import evaluate_tasks
from ..run import build_trainer, drive, ppo_report
from ..trainer import RLTrainer, StepOutput


TASK_FIELD = "cgpo_task"


class TaskSumReward:
    """``r(s, a) = r_l(s, a) + bonus · 1[every judge of task l passes]`` with l = ``metadata.cgpo_task``: the summed
    reward of summed-reward PPO. ``tasks``: task name → (reward source, MixtureOfJudges)."""

    def __init__(self, tasks: dict, judge_bonus: float = 1.0, name: str = "cgpo_tasks") -> None:
        self.tasks, self.judge_bonus, self.name = tasks, judge_bonus, name
        self.last_stats: dict[str, torch.Tensor] = {}

    def score(self, samples: list[Sample]) -> torch.Tensor:
        by_task: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            task = s.metadata.get(TASK_FIELD)
            if task not in self.tasks:
                raise RewardError(f"{s.where or 'a prompt'}, field 'metadata.{TASK_FIELD}': {task!r} is not one of "
                                  f"the tasks {sorted(self.tasks)}")
            by_task.setdefault(task, []).append(i)
        total, passed = torch.zeros(len(samples)), torch.zeros(len(samples))
        for task, rows in by_task.items():
            reward, judges = self.tasks[task]
            sub = [samples[i] for i in rows]
            ok, _, _ = judges.evaluate(sub)
            passed[rows] = ok.float()
            total[rows] = reward.score(sub).float() + self.judge_bonus * ok.float()
        self.last_stats = {"passed": passed}
        return total


def task_sum_reward(cfg: CGPORunConfig, judge_bonus: float = 1.0) -> WeightedSum:
    """The summed reward of ``cfg``'s tasks, from their own reward sources and judges (one weighted source, so its
    metrics are ``reward/cgpo_tasks`` and ``reward/cgpo_tasks/passed`` like any configured reward)."""
    tasks = {t.name: (build_reward(t.rewards), build_judges(t.judges)) for t in cfg.tasks}
    return WeightedSum([TaskSumReward(tasks, judge_bonus)], [1.0])


class SummedPPOTrainer(RLTrainer):
    """PPO whose held-out evaluation is CGPO's per-task table (``tasks`` set after construction)."""

    tasks: list = []

    def evaluate(self, n_prompts: int) -> StepOutput:
        return evaluate_tasks(self.tasks, self.generator, self.m, self.params.temperature,
                              self.cfg.train.forward_rows, self.cfg.train.seed, n_prompts)


def task_shares(cfg: CGPORunConfig) -> dict[str, float]:
    """Each task's share of the responses of one CGPO iteration: P_l·K_l / Σ_j P_j·K_j."""
    sizes = {t.name: t.prompts_per_iteration * t.samples_per_prompt for t in cfg.tasks}
    return {name: n / sum(sizes.values()) for name, n in sizes.items()}


def pool_rows(cfg: CGPORunConfig) -> list[dict]:
    """Every task's training prompts as jsonl rows (messages with the task's system prompt, metadata with the task
    name), each task's rows repeated ``r_l`` times so that uniform sampling from the pool gives task l about its
    CGPO share of every batch."""
    shares = task_shares(cfg)
    per_task = {}
    for t in cfg.tasks:
        rows = []
        for messages, metadata, _, _ in read_prompt_rows(t.prompts, cfg.data.on_empty):
            if t.system_prompt and messages[0]["role"] != "system":
                messages = [{"role": "system", "content": t.system_prompt}, *messages]
            rows.append({"messages": messages, "metadata": {**metadata, TASK_FIELD: t.name}})
        per_task[t.name] = rows
    scale = max(len(rows) / shares[name] for name, rows in per_task.items())
    pool = []
    for name, rows in per_task.items():
        pool += rows * max(1, round(shares[name] * scale / len(rows)))
    return pool


def summed_ppo_config(cfg: CGPORunConfig, ppo_overrides: list[str] | None = None) -> PPORunConfig:
    """The PPO config with the same model, reference, generation, optimizer settings and budget as the CGPO config
    (its ``rewards`` empty: the reward is :func:`task_sum_reward`, built from the CGPO config); ``ppo_overrides``
    (``key=value``) then change any PPO setting (``algorithm.epochs``, ``kl.coef``, ...)."""
    lengths = {t.max_new_tokens or cfg.generation.max_new_tokens for t in cfg.tasks}
    if len(lengths) > 1:
        raise ConfigError(f"tasks: summed-reward PPO samples every task with one max_new_tokens; got {sorted(lengths)}")
    out = Path(cfg.logging.output_dir + "_ppo")
    t = cfg.train
    data = {
        "model": to_dict(cfg.model), "reference": to_dict(cfg.reference),
        "generation": {**to_dict(cfg.generation), "max_new_tokens": lengths.pop()},
        "rewards": [],
        "data": {"prompts": str(out / "prompts.jsonl"), "eval_prompts": None,
                 "max_prompt_tokens": cfg.data.max_prompt_tokens, "chat_template": cfg.data.chat_template,
                 "too_long": cfg.data.too_long},
        "algorithm": {"name": "ppo", "epochs": 1},
        # every optimizer and loop setting CGPO has (one type, LoopSettings), then PPO's own batch shape
        "train": {**{f.name: getattr(t, f.name) for f in fields(LoopSettings)},
                  "prompts_per_iteration": sum(x.prompts_per_iteration * x.samples_per_prompt for x in cfg.tasks),
                  "samples_per_prompt": 1},
        "logging": {**to_dict(cfg.logging), "output_dir": str(out)},
        "perf": to_dict(cfg.perf), "plugins": list(cfg.plugins),
    }
    return from_dict(PPORunConfig, apply_overrides(data, list(ppo_overrides or [])))


def run_summed_ppo(cfg: CGPORunConfig, judge_bonus: float = 1.0, ppo_overrides: list[str] | None = None,
                   resume: str | None = None, stop_after: int | None = None) -> dict:
    ppo_cfg = summed_ppo_config(cfg, ppo_overrides)
    out = Path(ppo_cfg.logging.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pool = Path(ppo_cfg.data.prompts)
    if not pool.is_file() or resume is None:
        atomic_write_text(pool, "".join(json.dumps(r) + "\n" for r in pool_rows(cfg)))
    trainer = build_trainer(ppo_cfg, resume, trainer_cls=SummedPPOTrainer,
                            reward=task_sum_reward(cfg, judge_bonus))
    eval_cfg = replace(cfg, logging=replace(cfg.logging, output_dir=str(out)))  # ā cached in this run's folder
    m = trainer.m
    trainer.tasks = build_tasks(eval_cfg, m.tokenizer, m.reference, reference_sampler(cfg, m.tokenizer, m.policy,
                                                                                      m.reference))
    has_eval = any(task.eval_prompts for task in trainer.tasks)
    report = ppo_report(has_eval, lambda label, m: f"[eval {label}]\n" + eval_table(m, trainer.tasks))
    report.desc = "cgpo-ppo"
    return drive(trainer, ppo_cfg, report, stop_after)
