"""``kind: cgpo_tasks`` — the summed reward of a CGPO config's tasks, for summed-reward PPO (the baseline CGPO is
measured against, CGPO §5). A sample's task is ``metadata.cgpo_task``; its score is that task's own reward plus
``judge_bonus`` when every judge of the task passes. The judges' verdicts become one more summed term instead of a
constraint, which is what "one summed reward" means.

Options: ``config`` (the cgpo YAML), ``overrides`` (its ``--set`` list), ``judge_bonus`` (default 1.0).
"""
from __future__ import annotations

import torch

from .base import RewardError, Sample

TASK_FIELD = "cgpo_task"


class TaskSumReward:
    """``r(s, a) = r_l(s, a) + bonus · 1[every judge of task l passes]`` with l = ``metadata.cgpo_task``."""

    def __init__(self, tasks: dict, judge_bonus: float = 1.0, name: str = "cgpo_tasks") -> None:
        self.tasks, self.judge_bonus, self.name = tasks, judge_bonus, name  # tasks: name → (reward, MixtureOfJudges)
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


def build_task_sum(options: dict, name: str | None = None) -> TaskSumReward:
    from ..config import load_config
    from ..config.cgpo_schema import CGPORunConfig
    from ..judges import build_judges
    from .factory import build_reward

    options = dict(options)
    cfg = load_config(CGPORunConfig, options.pop("config"), list(options.pop("overrides", [])))
    bonus = float(options.pop("judge_bonus", 1.0))
    if options:
        raise ValueError(f"cgpo_tasks reward: unknown options {sorted(options)}")
    tasks = {t.name: (build_reward(t.rewards), build_judges(t.judges)) for t in cfg.tasks}
    return TaskSumReward(tasks, bonus, name or "cgpo_tasks")
