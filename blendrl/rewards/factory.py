"""Build reward sources from config (``rule``, ``callable``, ``hf_rm``, ``ensemble``, ``http``) and combine them
with weights."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path

from ..config import RewardSourceConfig
from ..core.http import check_service_options
from ..core.types import ModelPlacement
from .base import REWARD_SOURCES, CallableReward, WeightedSum
from .ensemble import EnsembleReward
from .hf_rm import HFRewardModel
from .http import HTTPReward
from .shared_backbone import SHARE_MODES, load_members
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


def _needs(field: str):
    """A check that the source's config sets ``field`` (``path`` of a model folder, ``name`` of a rule)."""
    def check(cfg: RewardSourceConfig, root=None) -> None:
        if not getattr(cfg, field):
            raise ValueError(f"{field}: required for a {cfg.kind} reward source")

    return check


def _dense_needs_plain_ppo(cfg: RewardSourceConfig, root=None) -> None:
    """A dense source's per-token rewards reach only PPO's GAE, and its own normaliser is the normalisation."""
    _needs("path")(cfg)
    if root is not None and hasattr(root, "shaping") and (root.algorithm.name != "ppo" or root.shaping.normalize !=
                                                          "none" or root.shaping.clip is not None):
        raise ValueError("kind: a segment_rm (dense) source needs algorithm.name ppo and no score normalisation or "
                         "clip (its location-aware normaliser is the normalisation)")


def _ensemble_check(cfg: RewardSourceConfig, root=None) -> None:
    members = cfg.options.get("members")
    if not (isinstance(members, list) and len(members) >= 2):
        raise ValueError("options.members: an ensemble needs a list of at least 2 reward-model folders")
    if cfg.options.get("share", "auto") not in SHARE_MODES:
        raise ValueError(f"options.share: expected one of {', '.join(SHARE_MODES)}")


@REWARD_SOURCES.register("rule", check=_needs("name"))
def _rule_source(cfg: RewardSourceConfig):
    options = dict(cfg.options)
    on_error = options.pop("on_error", "raise")
    return CallableReward(rule(cfg.name, **options), name=cfg.name, on_error=on_error)


@REWARD_SOURCES.register("callable", check=_needs("name"), options=(CallableReward,))
def _callable_source(cfg: RewardSourceConfig):
    options = dict(cfg.options)
    return CallableReward(load_callable(cfg.name), name=cfg.name, on_error=options.pop("on_error", "raise"))


def placed(cfg: RewardSourceConfig, placement: ModelPlacement, keys=("device", "dtype", "offload")) -> dict:
    """``cfg.options`` with the run's placement as the default of each of ``keys`` (the ones the kind takes);
    an option the config sets wins (``options: {device: cpu}`` keeps a reward model off the GPU)."""
    return {**{k: getattr(placement, k) for k in keys}, **cfg.options}


@REWARD_SOURCES.register("hf_rm", check=_needs("path"), options=(HFRewardModel,))
def _hf_rm_source(cfg: RewardSourceConfig, placement: ModelPlacement = ModelPlacement()):
    return HFRewardModel(cfg.path, name=cfg.name, **placed(cfg, placement))


@REWARD_SOURCES.register("segment_rm", check=_dense_needs_plain_ppo)
def _segment_rm_source(cfg: RewardSourceConfig, placement: ModelPlacement = ModelPlacement()):
    """A segment reward model folder (``blendrl rm train`` with ``segments.enabled``): dense per-token rewards."""
    from .segment_rm import SegmentRewardModel

    return SegmentRewardModel(cfg.path, name=cfg.name, **placed(cfg, placement, ("dtype",)))  # runs on the CPU


@REWARD_SOURCES.register("ensemble", check=_ensemble_check)
def _ensemble_source(cfg: RewardSourceConfig, placement: ModelPlacement = ModelPlacement()):
    """``options: {members: [rm folder, ...], aggregate: mean|wco|uwo, lam: 0.5, share: auto, batch_size,
    max_length}``; ``share`` as :func:`~blendrl.rewards.shared_backbone.load_members` (one backbone when it can)."""
    options = placed(cfg, placement)
    members = options.pop("members")
    aggregate = options.pop("aggregate", "mean")
    agg_options = {"lam": options.pop("lam")} if "lam" in options else {}
    scorer = load_members(members, options.pop("share", "auto"), **options)
    return EnsembleReward(scorer, aggregate, name=cfg.name, **agg_options)


def build_source(cfg: RewardSourceConfig, placement: ModelPlacement | None = None):
    """One source from its config. A builder that takes a ``placement`` parameter (the kinds that load models) gets
    the run's; a user's builder of one parameter gets the config alone."""
    builder = REWARD_SOURCES[cfg.kind]
    if "placement" in inspect.signature(builder).parameters:
        return builder(cfg, placement=placement or ModelPlacement())
    return builder(cfg)


def build_reward(configs: list[RewardSourceConfig], placement: ModelPlacement | None = None) -> WeightedSum:
    """All configured sources, summed with their weights: the one way every command builds its reward sources.
    ``placement``: the run's device, dtype and reward-model offloading (:class:`~blendrl.core.types.ModelPlacement`;
    default: CPU, float32, in memory)."""
    return WeightedSum([build_source(c, placement) for c in configs], [c.weight for c in configs])


@REWARD_SOURCES.register("http", check=lambda cfg, root=None: check_service_options(cfg.options, HTTPReward,
                                                                                     "reward source kind 'http'"))
def _http_source(cfg: RewardSourceConfig):
    """A reward-model or verifier service the user runs (``options: {url, score_key, batch_size, concurrency,
    timeout_s, retries, api_key_env}``, :class:`~blendrl.rewards.http.HTTPReward`)."""
    return HTTPReward(name=cfg.name or "http", **cfg.options)


@REWARD_SOURCES.register("gold")
def _gold_source(cfg: RewardSourceConfig):
    """The lab's gold reward (MiniLM relevance − repetition − over-length); ``options`` as ``GoldReward``."""
    from .gold import GoldReward

    return GoldReward(cfg.name or "gold", **cfg.options)
