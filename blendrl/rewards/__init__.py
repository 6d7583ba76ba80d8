"""Reward sources: rules, callables, HF reward models, ensembles, weighted sums; the lab's gold reward."""
from .base import (REWARD_SOURCES, CallableReward, RewardError, RewardSource, Sample, Scores, WeightedSum, make_samples,
                   score_batch)
from .factory import build_reward, load_callable
from .hf_rm import HFRewardModel
from .rules import RULES, count_words, rule

__all__ = [
    "REWARD_SOURCES", "RULES", "CallableReward", "HFRewardModel", "RewardError", "RewardSource", "Sample", "Scores",
    "WeightedSum", "build_reward", "count_words", "load_callable", "make_samples", "rule", "score_batch",
]
