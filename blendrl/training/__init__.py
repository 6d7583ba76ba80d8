"""The trainers (RL, CGPO, reward models, DPO, SFT), the one run loop they share (:mod:`blendrl.training.driver`),
checkpoints and logging. ``blendrl.training.run`` builds and runs the RL trainer from a config."""
from .experience import Experience, response_logprobs, response_values

__all__ = ["Experience", "response_logprobs", "response_values"]
