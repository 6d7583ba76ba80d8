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

from dataclasses import fields, replace

import torch

from ...config import ConfigError, PPORunConfig, to_dict
from ...config.cgpo_schema import CGPORunConfig
from ...config.loader import apply_overrides, from_dict
from ...config.schema import AlgorithmConfig, DataConfig, LoopSettings, TrainConfig
from ...core.types import Sample
from ...data.prompts import PromptExample
from ...rewards import RewardError, Scores, WeightedSum, score_batch
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

    def score(self, samples: list[Sample]) -> Scores:
        """The summed reward, with ``stats["passed"]``: 1 where the sample's task judges passed."""
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
            ok = judges.evaluate(sub).passed.float()
            passed[rows] = ok
            total[rows] = score_batch(reward, sub).total + self.judge_bonus * ok
        return Scores(total, stats={"passed": passed})


def task_sum_reward(tasks, judge_bonus: float = 1.0) -> WeightedSum:
    """The summed reward of the CGPO ``tasks`` (built once, :func:`~blendrl.training.cgpo.run.build_tasks`), from
    their own reward sources and judges (one weighted source, so its metrics are ``reward/cgpo_tasks`` and
    ``reward/cgpo_tasks/passed`` like any configured reward)."""
    return WeightedSum([TaskSumReward({t.name: (t.reward, t.judges) for t in tasks}, judge_bonus)], [1.0])


class SummedPPOTrainer(RLTrainer):
    """PPO whose held-out evaluation is CGPO's per-task table (``tasks`` set after construction)."""

    tasks: list = []

    def evaluate(self, n_prompts: int) -> StepOutput:
        return evaluate_tasks(self.tasks, self.generator, self.m, self.params.temperature,
                              self.cfg.train.forward_batch_size, self.cfg.train.seed, n_prompts)


def task_shares(cfg: CGPORunConfig) -> dict[str, float]:
    """Each task's share of the responses of one CGPO iteration: P_l·K_l / Σ_j P_j·K_j."""
    sizes = {t.name: t.prompts_per_iteration * t.samples_per_prompt for t in cfg.tasks}
    return {name: n / sum(sizes.values()) for name, n in sizes.items()}


def task_pool(cfg: CGPORunConfig, tasks) -> list[PromptExample]:
    """Every task's training prompts (as the task loaded them: its system prompt, its file and row) tagged with
    ``metadata.cgpo_task``, each task's prompts repeated ``r_l`` times so that uniform sampling from the pool gives
    task l about its CGPO share of every batch."""
    shares = task_shares(cfg)
    scale = max(len(t.prompts) / shares[t.name] for t in tasks)
    pool = []
    for t in tasks:
        tagged = [replace(p, metadata={**p.metadata, TASK_FIELD: t.name}) for p in t.prompts]
        pool += tagged * max(1, round(shares[t.name] * scale / len(tagged)))
    return pool


POOL = "cgpo:tasks"  # data.prompts of the derived config: the pool comes from the CGPO config's tasks


def summed_ppo_config(cfg: CGPORunConfig, ppo_overrides: list[str] | None = None) -> PPORunConfig:
    """The PPO config with the same model, reference, generation, optimizer settings and budget as the CGPO config
    (its ``rewards`` empty and its prompts the tasks' pool: both are built from the CGPO config's tasks), built from
    the CGPO config's sections; ``ppo_overrides`` (``key=value``) then change any PPO setting (``algorithm.epochs``,
    ``kl.coef``, ...) and the result is validated like a loaded config."""
    lengths = {t.max_new_tokens or cfg.generation.max_new_tokens for t in cfg.tasks}
    if len(lengths) > 1:
        raise ConfigError(f"tasks: summed-reward PPO samples every task with one max_new_tokens; got {sorted(lengths)}")
    t, d = cfg.train, cfg.data
    built = PPORunConfig(
        model=cfg.model, reference=cfg.reference, generation=replace(cfg.generation, max_new_tokens=lengths.pop()),
        rewards=[],
        data=DataConfig(prompts=POOL, eval_prompts=None, max_prompt_tokens=d.max_prompt_tokens,
                        chat_template=d.chat_template, too_long=d.too_long, on_empty=d.on_empty),
        algorithm=AlgorithmConfig(name="ppo", epochs=1),
        # every optimizer and loop setting CGPO has (one type, LoopSettings), then PPO's own batch shape
        train=TrainConfig(**{f.name: getattr(t, f.name) for f in fields(LoopSettings)},
                          prompts_per_iteration=sum(x.prompts_per_iteration * x.samples_per_prompt for x in cfg.tasks),
                          samples_per_prompt=1),
        logging=replace(cfg.logging, output_dir=cfg.logging.output_dir + "_ppo"), perf=cfg.perf,
        plugins=list(cfg.plugins))
    return from_dict(PPORunConfig, apply_overrides(to_dict(built), list(ppo_overrides or [])))


def build_summed_ppo(cfg: CGPORunConfig, judge_bonus: float = 1.0, ppo_overrides: list[str] | None = None,
                     resume: str | None = None) -> SummedPPOTrainer:
    """The summed-reward PPO trainer: the CGPO config's tasks are built once, on the loaded models, and give the
    reward (:func:`task_sum_reward`), the prompt pool (:func:`task_pool`) and the per-task evaluation."""
    ppo_cfg = summed_ppo_config(cfg, ppo_overrides)
    eval_cfg = replace(cfg, logging=replace(cfg.logging, output_dir=ppo_cfg.logging.output_dir))  # ā cached here
    tasks: list = []

    def parts(m, placement):
        sampler = reference_sampler(cfg, m.tokenizer, m.policy, m.reference)
        tasks.extend(build_tasks(eval_cfg, m.tokenizer, m.reference, sampler, placement))
        return task_sum_reward(tasks, judge_bonus), task_pool(cfg, tasks)

    trainer = build_trainer(ppo_cfg, resume, trainer_cls=SummedPPOTrainer, parts=parts)
    trainer.tasks = tasks
    return trainer


def run_summed_ppo(cfg: CGPORunConfig, judge_bonus: float = 1.0, ppo_overrides: list[str] | None = None,
                   resume: str | None = None, stop_after: int | None = None) -> dict:
    trainer = build_summed_ppo(cfg, judge_bonus, ppo_overrides, resume)
    has_eval = any(task.eval_prompts for task in trainer.tasks)
    report = ppo_report(has_eval, lambda label, m: f"[eval {label}]\n" + eval_table(m, trainer.tasks))
    report.desc = "cgpo-ppo"
    return drive(trainer, trainer.cfg, report, stop_after)
