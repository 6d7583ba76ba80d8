"""The registries that two sibling layers both fill (judges and rewards), kept below both.

``REWARD_SOURCES``: reward source kinds (``rewards:`` entries' ``kind``); built-ins in :mod:`blendrl.rewards.factory`
and the LLM-judge reward in :mod:`blendrl.judges.llm`. ``JUDGES``: judge kinds (CGPO tasks' ``judges:``); built-ins in
the :mod:`blendrl.judges` modules. Each entry is a builder: ``REWARD_SOURCES[kind](cfg: RewardSourceConfig)`` and
``JUDGES[kind](name=..., **options)``.
"""
from __future__ import annotations

from ..core.registry import Registry

REWARD_SOURCES: Registry = Registry("reward source kind", builtins=(
    "blendrl.rewards.factory", "blendrl.rewards.on_ray", "blendrl.judges.llm",
))
JUDGES: Registry = Registry("judge kind", builtins=(
    "blendrl.judges.code", "blendrl.judges.instructions", "blendrl.judges.llm", "blendrl.judges.math",
    "blendrl.judges.on_ray", "blendrl.judges.refusal", "blendrl.judges.rules", "blendrl.judges.classifier",
))
