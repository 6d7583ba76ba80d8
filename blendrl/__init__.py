"""blendrl: RLHF post-training with PPO that does not reward-hack."""
__version__ = "0.1.0"
