"""Rollouts: the Generator interface, the fast HF backend, exact sampling."""
from .base import GENERATORS, Generator, Rollout, SamplingParams, decode_responses, left_pad
from .hf import HFGenerator
from .sampling import sample_tokens

__all__ = ["GENERATORS", "Generator", "HFGenerator", "Rollout", "SamplingParams", "decode_responses", "left_pad",
           "sample_tokens"]
