"""Build a task's judges from config; the ``judge_violations`` reward source (the judges a response fails, as
a cost or a penalty)."""
from __future__ import annotations

from ..core.types import ModelPlacement
from .base import MixtureOfJudges
from ..core.registries import REWARD_SOURCES
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


def _judge_configs(cfg) -> list:
    """The ``options.judges`` of a ``judge_violations`` source as JudgeConfigs (the loader's checks and errors)."""
    from ..config.cgpo_schema import JudgeConfig
    from ..config.loader import from_dict

    items = cfg.options.get("judges")
    if not isinstance(items, list) or not items or set(cfg.options) - {"judges"}:
        raise ValueError("options: a judge_violations source takes only 'judges', a non-empty list of judges "
                         "({kind, name, options} each)")
    configs = [from_dict(JudgeConfig, item, f"options.judges[{i}]") for i, item in enumerate(items)]
    for i, c in enumerate(configs):
        if c.kind not in JUDGES:
            raise ValueError(f"options.judges[{i}].kind: unknown judge '{c.kind}'; choose one of {JUDGES.names()}")
        try:
            JUDGES.validate(c.kind, c, None)  # the kind's own checks, as for a CGPO task's judge
        except (ValueError, TypeError) as exc:
            raise ValueError(f"options.judges[{i}].{exc}") from None
    return configs


class JudgeViolations:
    """A reward source that counts the judges a response fails: ``total`` (N,) the number of violated judges,
    ``components`` ``<judge>`` (N,) 1 where that judge failed. As a cost (PPO-Lagrangian's ``costs:``) it is
    safe-rlhf's cost from verifiers instead of a cost model; as a reward with a negative weight, a penalty."""

    def __init__(self, judges: MixtureOfJudges, name: str = "judge_violations") -> None:
        self.judges, self.name = judges, name

    def score(self, samples):
        from ..core.types import Scores

        failed = {k: (~v).float() for k, v in self.judges.evaluate(samples).per_judge.items()}  # name → (N,)
        return Scores(sum(failed.values()), components=failed)


@REWARD_SOURCES.register("judge_violations", check=lambda cfg, root=None: _judge_configs(cfg) and None)
def _judge_violations_source(cfg, placement: ModelPlacement | None = None):
    """``kind: judge_violations``, ``options: {judges: [{kind, name, options}, ...]}``: the number of judges each
    response fails (a model-loading judge gets the run's placement, as in a CGPO task)."""
    return JudgeViolations(build_judges(_judge_configs(cfg), placement), cfg.name or "judge_violations")
