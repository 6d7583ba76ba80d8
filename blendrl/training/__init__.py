"""The RL trainer, checkpoints and logging. Import ``blendrl.training.run`` for the driver."""
from .experience import Experience, response_logprobs, response_values

__all__ = ["Experience", "response_logprobs", "response_values"]
