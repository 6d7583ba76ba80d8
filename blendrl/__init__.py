"""blendrl: RLHF post-training with PPO that does not reward-hack.

The public API. Names resolve on first use (``blendrl.run`` imports the training stack, ``blendrl.Sample`` does
not), so ``import blendrl`` stays cheap and every layer below keeps its own imports::

    import blendrl

    @blendrl.REWARD_SOURCES.register("short")
    def short(cfg):  # a reward source kind: built from its RewardSourceConfig
        return blendrl.CallableReward(lambda prompt, response, meta: -len(response.split()), name=cfg.name or "short")

    cfg = blendrl.load_config(blendrl.PPORunConfig, "examples/ppo_rule.yaml", ["rewards=[{kind: short}]"])
    trainer = blendrl.build_trainer(cfg)
    metrics = trainer.step().metrics  # one iteration: sample, score, update
"""
from __future__ import annotations

import importlib

from .core.registries import REWARD_SOURCES as _REWARD_SOURCES

__version__ = "0.1.0"

# the modules that hold the built-in reward source kinds: declared here, at the top, so no lower layer names a
# module above it (they load at the registry's first lookup)
_REWARD_SOURCES.add_builtins("blendrl.rewards.factory", "blendrl.rewards.on_ray", "blendrl.judges.llm",
                             "blendrl.judges.factory")

_API = {
    # configs
    "load_config": "blendrl.config", "apply_overrides": "blendrl.config", "ConfigError": "blendrl.config",
    "PPORunConfig": "blendrl.config", "RewardSourceConfig": "blendrl.config",
    "CGPORunConfig": "blendrl.config.cgpo_schema", "JudgeConfig": "blendrl.config.cgpo_schema",
    "RMRunConfig": "blendrl.config.rm_schema",
    # value types and seams
    "Sample": "blendrl.core.types", "Rollout": "blendrl.core.types", "Experience": "blendrl.core.types",
    "Registry": "blendrl.core.registry", "load_plugins": "blendrl.core.registry",
    "REWARD_SOURCES": "blendrl.core.registries", "JUDGES": "blendrl.judges.registry",
    "KL_ESTIMATORS": "blendrl.functional", "SEQUENCE_ADVANTAGES": "blendrl.functional",
    "ALGORITHMS": "blendrl.algorithms", "GENERATORS": "blendrl.rollout", "REFERENCES": "blendrl.training.reference",
    "CallableReward": "blendrl.rewards", "RuleJudge": "blendrl.judges", "Verdict": "blendrl.judges",
    # building and running
    "check_names": "blendrl.training.names",
    "build_trainer": "blendrl.training.run", "run": "blendrl.training.run",
    "build_cgpo_trainer": "blendrl.training.cgpo.run", "run_cgpo": "blendrl.training.cgpo.run",
    "train_rm": "blendrl.training.rm.run",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'blendrl' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
