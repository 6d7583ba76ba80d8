"""Environments for multi-turn rollouts (tools, games) and the episode runner that keeps the sampled tokens."""
from .base import ENVIRONMENTS, Environment, Step, Tool, ToolEnvironment
from .episodes import EpisodeRunner, EpisodeSettings

__all__ = ["ENVIRONMENTS", "Environment", "EpisodeRunner", "EpisodeSettings", "Step", "Tool", "ToolEnvironment"]
