"""The registry that two sibling layers both fill, kept below both: ``REWARD_SOURCES``, the reward source kinds
(``rewards:`` entries' ``kind``). Each entry is a builder ``REWARD_SOURCES[kind](cfg: RewardSourceConfig)``; the
built-ins live in :mod:`blendrl.rewards.factory`, :mod:`blendrl.rewards.on_ray`, (the LLM judge's log-odds)
:mod:`blendrl.judges.llm` and (the judges a response fails) :mod:`blendrl.judges.factory`. This layer names none
of them: the root package declares which modules hold the built-ins (``blendrl/__init__.py``), and they load at
the registry's first lookup. Judge kinds live with the
judges (:data:`blendrl.judges.registry.JUDGES`).
"""
from __future__ import annotations

from ..core.registry import Registry

REWARD_SOURCES: Registry = Registry("reward source kind")
