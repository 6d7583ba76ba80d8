"""Every name a config holds, checked against its registry before a model loads, and each named kind's own checks.

Configs validate shapes and ranges only; which names exist, and what a kind needs (its options, the settings it
depends on), is the registries' business (a user's ``plugins:`` add to them). :func:`check_names` imports the
config's plugins, then walks the config, checks each named field against its registry and runs that entry's own
checks once (:meth:`blendrl.core.registry.Registry.validate`), so a typo or a missing option fails in a second with
the field's path (``tasks[1].judges[0].options.regex``), not after the models have loaded.
"""
from __future__ import annotations

import dataclasses

from ..algorithms import ALGORITHMS
from ..algorithms.cgpo import CGPO_OPTIMIZERS
from ..config import ConfigError
from ..config.cgpo_schema import JudgeConfig, OptimizerConfig
from ..config.settings import TrackerConfig
from ..config.schema import (
    AlgorithmConfig, EnvironmentConfig, FilterConfig, GenerationConfig, KLConfig, ReferenceConfig, RegularizerConfig,
    RewardSourceConfig,
)
from ..core.registries import REWARD_SOURCES
from ..judges.registry import JUDGES
from ..core.registry import load_plugins
from ..functional import KL_ESTIMATORS
from ..functional.filters import ROLLOUT_FILTERS
from ..functional.losses import LOSS_AGGREGATIONS
from ..functional.surrogates import POLICY_LOSSES
from ..functional.regularizers import REGULARIZERS
from ..rollout import GENERATORS
from .reference import REFERENCES
from .trackers import TRACKERS
from ..envs import ENVIRONMENTS

# (config type, field) → (registry, names allowed besides the registry's)
NAMED_FIELDS = {
    (RewardSourceConfig, "kind"): (REWARD_SOURCES, ()),
    (JudgeConfig, "kind"): (JUDGES, ()),
    (KLConfig, "kind"): (KL_ESTIMATORS, ()),
    (AlgorithmConfig, "name"): (ALGORITHMS, ()),
    (ReferenceConfig, "kind"): (REFERENCES, ()),
    (GenerationConfig, "backend"): (GENERATORS, ()),
    (RegularizerConfig, "kind"): (REGULARIZERS, ("none",)),
    (OptimizerConfig, "name"): (CGPO_OPTIMIZERS, ()),
    (FilterConfig, "kind"): (ROLLOUT_FILTERS, ("none",)),
    (AlgorithmConfig, "loss_agg"): (LOSS_AGGREGATIONS, ()),
    (AlgorithmConfig, "policy_loss"): (POLICY_LOSSES, ()),
    (TrackerConfig, "kind"): (TRACKERS, ()),
    (EnvironmentConfig, "kind"): (ENVIRONMENTS, ("none",)),
}


def _walk(obj, path: str):
    """(path, dataclass) for ``obj`` and every dataclass inside it (fields, list items)."""
    if dataclasses.is_dataclass(obj):
        yield path, obj
        for f in dataclasses.fields(obj):
            yield from _walk(getattr(obj, f.name), f"{path}.{f.name}" if path else f.name)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _walk(item, f"{path}[{i}]")


def check_names(cfg, more: dict | None = None) -> None:
    """Load ``cfg.plugins``, then raise :class:`ConfigError` naming the first field whose name no registry holds
    (the fields of :data:`NAMED_FIELDS`, and ``more`` of the same shape: a product's own registries)."""
    load_plugins(getattr(cfg, "plugins", []))
    table = {**NAMED_FIELDS, **(more or {})}
    for path, node in _walk(cfg, ""):
        for (kind, name), (registry, extra) in table.items():
            if isinstance(node, kind):
                value = getattr(node, name)
                if value in extra:
                    continue
                if value not in registry:
                    choices = sorted([*extra, *registry.names()])
                    raise ConfigError(f"{path}.{name}: unknown {registry.kind} '{value}'; choose one of {choices}")
                try:
                    registry.validate(value, node, cfg)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"{path}.{exc}" if path else str(exc)) from None
