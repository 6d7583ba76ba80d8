"""The judge seam (CGPO §1): ``judge(samples) -> [Verdict]``, batched; a mixture passes only if every judge passes.

A judge sees the same :class:`~blendrl.rewards.Sample` as a reward source (prompt messages, response, metadata,
``finished`` = the response ended with EOS) and returns one :class:`Verdict` per sample. CGPO's constraint indicator
is ``y = ∏_h J_h`` with ``J_h = 1`` meaning *satisfied* (docs/algorithms.md §1: follow the paper's text, not its ∨
formula). Judges are built by kind from :class:`~blendrl.config.cgpo_schema.JudgeConfig` through ``JUDGES``.

A judge that cannot decide because the *data* is wrong (a math prompt without ``answer``, an unknown instruction id)
raises :class:`JudgeDataError` naming the prompt's file and row; a judge never turns bad data into a silent pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..core.types import Sample


class JudgeDataError(ValueError):
    """The prompt's metadata does not carry what the judge needs."""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str = ""


class Verdicts(list):
    """A judge's verdicts with what it saw over the batch (``stats``: name → float, e.g. the code judge's count of
    programs that tried each blocked family of action): a value returned with the verdicts, read by the mixture."""

    def __init__(self, verdicts, stats: dict[str, float] | None = None) -> None:
        super().__init__(verdicts)
        self.stats = dict(stats or {})


class Judge(Protocol):
    name: str

    def judge(self, samples: list[Sample]) -> list[Verdict]:
        """One verdict per sample: a list, or :class:`Verdicts` to report batch statistics beside them."""
        ...


@dataclass
class Judgement:
    """A mixture's result for N samples: ``passed`` (N,) bool (every judge passed), ``per_judge`` (name → (N,)
    bool), ``reasons`` (per sample, the violated judges' reasons) and ``stats`` (``<judge>/<stat>`` → float)."""

    passed: torch.Tensor
    per_judge: dict[str, torch.Tensor]
    reasons: list[list[str]]
    stats: dict[str, float]


def require_metadata(sample: Sample, key: str, judge: str):
    """``sample.metadata[key]``, or a JudgeDataError naming the judge, the field and the prompt's file and row."""
    if key not in sample.metadata or sample.metadata[key] is None:
        raise JudgeDataError(f"judge '{judge}': prompt {sample.where or '?'} has no metadata field '{key}'")
    return sample.metadata[key]


class RuleJudge:
    """A judge from a per-sample function ``fn(sample) -> Verdict`` (rule judges)."""

    def __init__(self, name: str, fn) -> None:
        self.name, self.fn = name, fn

    def judge(self, samples: list[Sample]) -> list[Verdict]:
        return [self.fn(s) for s in samples]


class MixtureOfJudges:
    """All judges of a task. ``evaluate`` → :class:`Judgement`; a sample passes only if every judge passes (CGPO
    eq. 8's indicator 1[(s,a) ∈ Σ])."""

    def __init__(self, judges: list[Judge]) -> None:
        names = [j.name for j in judges]
        if len(set(names)) != len(names):
            raise ValueError(f"judge names must be unique within a task, got {names}")
        self.judges = judges

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.judges]

    def evaluate(self, samples: list[Sample]) -> Judgement:
        per_judge: dict[str, torch.Tensor] = {}
        reasons: list[list[str]] = [[] for _ in samples]
        stats: dict[str, float] = {}
        for judge in self.judges:
            verdicts = judge.judge(samples)
            stats.update({f"{judge.name}/{k}": float(v) for k, v in getattr(verdicts, "stats", {}).items()})
            if len(verdicts) != len(samples):
                raise RuntimeError(f"judge '{judge.name}' returned {len(verdicts)} verdicts for {len(samples)} samples")
            per_judge[judge.name] = torch.tensor([v.passed for v in verdicts], dtype=torch.bool)
            for i, v in enumerate(verdicts):
                if not v.passed:
                    reasons[i].append(f"{judge.name}: {v.reason}")
        passed = torch.ones(len(samples), dtype=torch.bool)
        for p in per_judge.values():
            passed &= p
        return Judgement(passed, per_judge, reasons, stats)
