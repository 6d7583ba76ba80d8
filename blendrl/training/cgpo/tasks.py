"""A CGPO task at run time: its prompts, reward, judges, optimizer, sampler and calibration baselines ā.

``TaskRuntime.score`` is the one place where a task's responses become (raw reward, calibrated reward, verdicts);
training and evaluation both call it, so the two never disagree on what a task's reward is.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import torch

from ...algorithms.cgpo import CGPO_OPTIMIZERS
from ...config.cgpo_schema import TaskConfig
from ...data import DataError, PromptSampler, load_prompt_set
from ...core import dist
from ...core.fsutil import atomic_write_text
from ...core.types import ModelPlacement
from ...functional.cgpo import calibrated_reward
from ...judges import MixtureOfJudges, build_judges
from ...rewards import build_reward, make_samples, score_batch
from ...rollout import SamplingParams


@dataclass
class ScoredBatch:
    raw: torch.Tensor  # (N,) task reward r(s, a); NaN where a source could not score
    reward: torch.Tensor  # (N,) R_calib = σ(r − r(ā)) (or r with calibration none); 0 where raw is NaN
    passed: torch.Tensor  # (N,) bool, every judge passed (False where raw is NaN)
    per_judge: dict[str, torch.Tensor]  # name → (N,) bool
    reasons: list[list[str]]
    valid: torch.Tensor  # (N,) bool, raw is finite
    finished: list[bool]  # the response ended with EOS
    judge_stats: dict[str, float]  # "<judge>/<stat>": what the judges saw (sandbox actions, violation kinds)


@dataclass
class TaskRuntime:
    cfg: TaskConfig
    prompts: list
    eval_prompts: list
    reward: object
    judges: MixtureOfJudges
    optimizer: object
    sampler: PromptSampler
    params: SamplingParams
    baselines: dict[tuple[str, int], tuple[str, bool]] = field(default_factory=dict)  # (source, row) → (ā, finished)
    generate: Optional[Callable] = None  # calibration "generate": prompts → (ā texts, finished) from π_ref
    baseline_path: Optional[Path] = None  # where generated ā are cached (the run folder; resume reads it)
    episodes: Optional[Callable] = None  # environment: generator → EpisodeRunner (None: one response per prompt)
    _baseline_scores: dict[tuple[str, int], float] = field(default_factory=dict)
    _baseline_passed: dict[tuple[str, int], bool] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cfg.name


    def baseline_of(self, p) -> tuple[str, bool] | None:
        """``(ā, finished)`` of a prompt (finished: ā ended with EOS), or None."""
        return self.baselines.get((p.source, p.row))

    def missing_baselines(self, prompts) -> list:
        """The distinct prompts that have no ā yet."""
        return list({(p.source, p.row): p for p in prompts if (p.source, p.row) not in self.baselines}.values())

    def add_baselines(self, prompts, texts: list[str], finished) -> None:
        """Store ā and whether it ended with EOS for ``prompts``; the cache file is rewritten atomically so a
        resumed run reuses exactly them."""
        finished = finished.tolist() if isinstance(finished, torch.Tensor) else list(finished)
        for p, text, done in zip(prompts, texts, finished, strict=True):
            self.baselines[(p.source, p.row)] = (text, bool(done))
        if self.baseline_path is not None and dist.is_main():  # every rank holds the same ā; rank 0 writes them
            self.baseline_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.baseline_path, json.dumps([[s, r, t, f] for (s, r), (t, f)
                                                              in self.baselines.items()]))

    def ensure_baselines(self, prompts) -> None:
        """Generate ā for prompts that have none yet (``calibration: generate``), lazily, once per prompt (the
        trainer prefetches a whole iteration's ā for all tasks in one batch; this covers everything else)."""
        missing = self.missing_baselines(prompts)
        if not missing:
            return
        if self.generate is None:
            raise DataError(f"task '{self.name}': no baseline response for {missing[0].source}, row {missing[0].row}")
        self.add_baselines(missing, *self.generate(missing))

    def baseline_scores(self, prompts) -> torch.Tensor:
        """r(s, ā) for each prompt, (N,); scored once per prompt and cached."""
        self.ensure_baselines(prompts)
        todo = list({(p.source, p.row): p for p in prompts
                     if (p.source, p.row) not in self._baseline_scores}.values())
        if todo:
            texts, finished = zip(*(self.baseline_of(p) for p in todo))
            scores = score_batch(self.reward, make_samples(todo, list(texts), finished)).total
            for p, s in zip(todo, scores.tolist()):
                self._baseline_scores[(p.source, p.row)] = s
        return torch.tensor([self._baseline_scores[(p.source, p.row)] for p in prompts])

    def baseline_passes(self, p) -> bool:
        """Whether ā ended with EOS and satisfies every judge (CRRAFT's fallback condition: a truncated ā is never
        trained on, whatever the judges say); judged once per prompt."""
        key = (p.source, p.row)
        self.ensure_baselines([p])
        if key not in self._baseline_passed:
            text, finished = self.baseline_of(p) or (None, False)
            if text is None or not finished:
                self._baseline_passed[key] = False
            else:
                verdict = self.judges.evaluate(make_samples([p], [text], [finished]))
                self._baseline_passed[key] = bool(verdict.passed[0])
        return self._baseline_passed[key]

    def score(self, prompts, responses: list[str], finished: torch.Tensor) -> ScoredBatch:
        samples = make_samples(prompts, responses, finished)
        raw = score_batch(self.reward, samples).total  # (N,)
        valid = torch.isfinite(raw)
        judged = self.judges.evaluate(samples)
        if self.cfg.calibration.baseline == "none":
            reward = raw
        else:
            reward = calibrated_reward(raw, self.baseline_scores(prompts))
        reward = torch.where(valid, reward, torch.zeros_like(reward))
        return ScoredBatch(raw, reward, judged.passed & valid, judged.per_judge, judged.reasons, valid,
                           [s.finished for s in samples], judged.stats)


def build_task(cfg: TaskConfig, tokenizer, data_cfg, default_max_new_tokens: int, generation, seed: int,
               placement: ModelPlacement | None = None) -> TaskRuntime:
    """One task at run time; its reward sources (and model-loading judges) are built with the run's ``placement``
    (device, dtype, offload)."""
    if cfg.columns is not None:  # the task's own table columns
        data_cfg = replace(data_cfg, columns=cfg.columns)
    load = lambda src: load_prompt_set(src, tokenizer, data_cfg, cfg.system_prompt)  # noqa: E731
    prompts = load(cfg.prompts)
    eval_prompts = load(cfg.eval_prompts) if cfg.eval_prompts else []
    params = SamplingParams(cfg.max_new_tokens or default_max_new_tokens, generation.temperature, generation.top_p)
    task = TaskRuntime(cfg, prompts, eval_prompts, build_reward(cfg.rewards, placement),
                       build_judges(cfg.judges, placement), CGPO_OPTIMIZERS[cfg.optimizer.name](cfg.optimizer),
                       PromptSampler(len(prompts), seed), params)
    if cfg.calibration.baseline == "reference_response":
        for p in prompts + eval_prompts:
            text = p.metadata.get(cfg.calibration.field)
            if not isinstance(text, str):
                raise DataError(f"{p.source}, row {p.row}, field 'metadata.{cfg.calibration.field}': task "
                                f"'{cfg.name}' calibrates against a reference response, and this prompt has none "
                                f"(or set calibration.baseline: generate)")
            task.baselines[(p.source, p.row)] = (text, True)  # a written reference response is complete
    return task


def use_generated_baselines(task: TaskRuntime, path: Path, generate) -> None:
    """``calibration.baseline: generate``: ā comes from ``generate(prompts) -> (texts, finished)`` (the
    initial policy, which is π_ref for a frozen reference) on first use of each prompt, cached in ``path``; a resumed
    run reads it. A cache row without its finished flag is read as unfinished (fail closed: never a fallback row)."""
    task.generate, task.baseline_path = generate, path
    if path.is_file():
        task.baselines = {(row[0], row[1]): (row[2], bool(row[3]) if len(row) > 3 else False)
                          for row in json.loads(path.read_text())}
