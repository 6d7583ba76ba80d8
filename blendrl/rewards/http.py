"""A reward source that asks an HTTP service a user already runs (a reward-model server, a verifier): ``kind:
http``. The request and answer are in docs/usage.md ("HTTP services"); :mod:`blendrl.core.http` sends them."""
from __future__ import annotations

import math

import torch

from ..core.http import SampleService, ServiceError, reject_options
from ..core.types import Sample, Scores
from .base import RewardError


class HTTPReward:
    """``url``: where batches of samples are POSTed; the answer's ``score_key`` list (default ``scores``;
    ``rewards`` for an OpenRLHF remote reward model) holds one number per sample, or null for a sample the service
    could not score (a NaN here: the trainer skips and counts it). ``batch_size`` samples a request,
    ``concurrency`` requests in flight, ``timeout_s`` per attempt, ``retries`` more attempts, ``api_key_env``: the
    environment variable with a bearer token."""

    def __init__(self, url: str, name: str = "http", score_key: str = "scores", batch_size: int = 16,
                 concurrency: int = 4, timeout_s: float = 60.0, retries: int = 2, api_key_env: str | None = None,
                 **unknown) -> None:
        reject_options(unknown, f"reward '{name}'")
        self.name = name
        self.service = SampleService(url, score_key, batch_size, concurrency, timeout_s, retries, api_key_env,
                                     f"reward '{name}'")

    def score(self, samples: list[Sample]) -> Scores:
        try:
            values = self.service.post(samples)
        except ServiceError as exc:
            raise RewardError(str(exc)) from None
        out = []
        for s, v in zip(samples, values):
            if v is None:
                out.append(math.nan)
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out.append(float(v))
            else:
                raise RewardError(f"reward '{self.name}': {self.service.client.url} scored {s.where or 'a sample'} "
                                  f"{v!r}; expected a finite number or null")
        return Scores(torch.tensor(out, dtype=torch.float32))
