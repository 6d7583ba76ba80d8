"""Reward sources: rules, callables, HF reward models, ensembles, weighted sums; the lab's gold reward."""
from .base import REWARD_SOURCES, CallableReward, RewardError, RewardSource, Sample, WeightedSum, make_samples
from .factory import build_reward, load_callable
from .hf_rm import HFRewardModel
from .rules import RULES, count_words, rule

__all__ = [
    "REWARD_SOURCES", "RULES", "CallableReward", "HFRewardModel", "RewardError", "RewardSource", "Sample",
    "WeightedSum", "build_reward", "count_words", "load_callable", "make_samples", "rule",
]
