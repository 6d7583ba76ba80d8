"""Build a task's judges from config."""
from __future__ import annotations

from .registry import JUDGES
from .base import MixtureOfJudges


def build_judges(configs) -> MixtureOfJudges:
    """One judge per ``JudgeConfig`` (``kind``, ``name`` default the kind, ``options``)."""
    return MixtureOfJudges([JUDGES[c.kind](name=c.name or c.kind, **c.options) for c in configs])
