"""Typed configs (dataclasses), YAML loading and ``--set`` overrides."""
from .loader import ConfigError, apply_overrides, from_dict, load_config, to_dict
from .schema import (
    AlgorithmConfig, CriticConfig, DataConfig, GenerationConfig, KLConfig, LoggingConfig, LoraConfig, ModelConfig,
    PPORunConfig, ReferenceConfig, RegularizerConfig, RewardSourceConfig, ShapingConfig, TrainConfig,
)

__all__ = [
    "AlgorithmConfig", "ConfigError", "CriticConfig", "DataConfig", "GenerationConfig", "KLConfig",
    "LoggingConfig", "LoraConfig", "ModelConfig", "PPORunConfig", "ReferenceConfig", "RegularizerConfig",
    "RewardSourceConfig",
    "ShapingConfig", "TrainConfig", "apply_overrides", "from_dict", "load_config", "to_dict",
]
