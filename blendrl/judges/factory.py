"""Build a task's judges from config."""
from __future__ import annotations

from ..core.types import ModelPlacement
from .base import MixtureOfJudges
from .registry import JUDGES


def build_judges(configs, placement: ModelPlacement | None = None) -> MixtureOfJudges:
    """One judge per ``JudgeConfig`` (``kind``, ``name`` default the kind, ``options``). A kind that loads a model
    and takes a ``device`` or ``dtype`` option (the ``llm`` judge's ``dtype``) gets the run's ``placement`` there
    unless its options set it."""
    judges = []
    for c in configs:
        takes = JUDGES.option_names(c.kind) or frozenset()
        placed = {k: getattr(placement, k) for k in ("device", "dtype") if placement is not None and k in takes}
        judges.append(JUDGES[c.kind](name=c.name or c.kind, **{**placed, **c.options}))
    return MixtureOfJudges(judges)
