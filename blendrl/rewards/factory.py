"""Build reward sources from config (``rule``, ``callable``, ``hf_rm``, ``ensemble``) and combine them with weights."""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import replace
from pathlib import Path

from ..config import RewardSourceConfig
from .base import REWARD_SOURCES, CallableReward, WeightedSum
from .ensemble import EnsembleReward
from .hf_rm import HFRewardModel
from .shared_backbone import load_members
from .rules import rule


def load_callable(spec: str):
    """``package.module:function`` or ``path/to/file.py:function``."""
    if ":" not in spec:
        raise ValueError(f"reward callable '{spec}': expected 'module:function' or 'file.py:function'")
    module_name, fn_name = spec.rsplit(":", 1)
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"reward callable file {path} does not exist")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    try:
        return getattr(module, fn_name)
    except AttributeError:
        raise ValueError(f"reward callable '{spec}': no function '{fn_name}' in {module_name}") from None


@REWARD_SOURCES.register("rule")
def _rule_source(cfg: RewardSourceConfig):
    options = dict(cfg.options)
    on_error = options.pop("on_error", "raise")
    return CallableReward(rule(cfg.name, **options), name=cfg.name, on_error=on_error)


@REWARD_SOURCES.register("callable")
def _callable_source(cfg: RewardSourceConfig):
    options = dict(cfg.options)
    return CallableReward(load_callable(cfg.name), name=cfg.name, on_error=options.pop("on_error", "raise"))


@REWARD_SOURCES.register("hf_rm")
def _hf_rm_source(cfg: RewardSourceConfig):
    return HFRewardModel(cfg.path, name=cfg.name, **cfg.options)


@REWARD_SOURCES.register("segment_rm")
def _segment_rm_source(cfg: RewardSourceConfig):
    """A segment reward model folder (``blendrl rm train`` with ``segments.enabled``): dense per-token rewards."""
    from .segment_rm import SegmentRewardModel

    return SegmentRewardModel(cfg.path, name=cfg.name, **cfg.options)


@REWARD_SOURCES.register("ensemble")
def _ensemble_source(cfg: RewardSourceConfig):
    """``options: {members: [rm folder, ...], aggregate: mean|wco|uwo, lam: 0.5, share: auto, batch_size,
    max_length}``; ``share`` as :func:`~blendrl.rewards.shared_backbone.load_members` (one backbone when it can)."""
    options = dict(cfg.options)
    members = options.pop("members")
    aggregate = options.pop("aggregate", "mean")
    agg_options = {"lam": options.pop("lam")} if "lam" in options else {}
    scorer = load_members(members, options.pop("share", "auto"), **options)
    return EnsembleReward(scorer, aggregate, name=cfg.name, **agg_options)


def build_reward(configs: list[RewardSourceConfig], offload: bool = False, device=None) -> WeightedSum:
    """All configured sources, summed with their weights. ``offload`` (``model.offload_frozen``): every ``hf_rm``
    source keeps its weights in a file between calls (as its own ``options: {offload: true}``). ``device``: where
    ``hf_rm`` models run unless their ``options`` say (the policy's device)."""
    if offload:
        configs = [replace(c, options={"offload": True, **c.options}) if c.kind == "hf_rm" else c for c in configs]
    if device is not None and str(device) != "cpu":
        configs = [replace(c, options={"device": str(device), **c.options}) if c.kind == "hf_rm" else c
                   for c in configs]
    sources = [REWARD_SOURCES[c.kind](c) for c in configs]
    return WeightedSum(sources, [c.weight for c in configs])


@REWARD_SOURCES.register("gold")
def _gold_source(cfg: RewardSourceConfig):
    """The lab's gold reward (MiniLM relevance − repetition − over-length); ``options`` as ``GoldReward``."""
    from .gold import GoldReward

    return GoldReward(cfg.name or "gold", **cfg.options)
