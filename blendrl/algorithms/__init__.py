"""Optimizers over the one loop, registered by name: ppo, reinforce, rloo, grpo; CGPO's
crpg, codpo and crraft in :mod:`.cgpo`."""
from .base import ALGORITHMS, Algorithm
from .critic_free import GRPO, RLOO, Reinforce, SequenceAdvantagePG, build_algorithm
from .ppo import PPO

__all__ = ["ALGORITHMS", "Algorithm", "GRPO", "PPO", "RLOO", "Reinforce", "SequenceAdvantagePG", "build_algorithm"]
