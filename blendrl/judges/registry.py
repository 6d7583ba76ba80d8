"""``JUDGES``: the judge kinds (CGPO tasks' ``judges:`` entries' ``kind``). Each entry is a builder
``JUDGES[kind](name=..., **options)``; a kind's options are its builder's parameters (or the ``options=`` callables
it registers), checked before any model loads. The built-ins load at the registry's first lookup.
"""
from __future__ import annotations

from ..core.registry import Registry

JUDGES: Registry = Registry("judge kind", options_from_entry=True, builtins=(
    "blendrl.judges.code", "blendrl.judges.instructions", "blendrl.judges.llm", "blendrl.judges.math",
    "blendrl.judges.on_ray", "blendrl.judges.refusal", "blendrl.judges.rules", "blendrl.judges.classifier",
    "blendrl.judges.http", "blendrl.judges.trajectory",
))
