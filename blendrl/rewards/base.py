"""The reward seam: a RewardSource scores a batch of (prompt, response, metadata) → one float each.

Sources are built by kind from ``RewardSourceConfig`` through ``REWARD_SOURCES``; ``WeightedSum`` combines them.
A source that raises is an error naming the source and the prompt's file and row (or, with ``on_error: skip`` in
its options, a counted skip). A NaN or infinite score marks that sample as skipped: the trainer drops it from the
update and logs the count; it never reaches the loss.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from ..core.registries import REWARD_SOURCES
from ..core.types import Sample, make_samples

__all__ = ["REWARD_SOURCES", "CallableReward", "RewardError", "RewardSource", "Sample", "WeightedSum",
           "make_samples"]


class RewardError(RuntimeError):
    """A reward source failed on a sample."""


class RewardSource(Protocol):
    name: str

    def score(self, samples: list[Sample]) -> torch.Tensor:
        """(N,) float scores; NaN marks a sample that could not be scored."""
        ...


class CallableReward:
    """Wraps ``fn(prompt: str, response: str, metadata: dict) -> float`` (rule rewards, user functions)."""

    def __init__(self, fn: Callable[[str, str, dict], float], name: str, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be raise or skip, got {on_error!r}")
        self.fn, self.name, self.on_error = fn, name, on_error

    def score(self, samples: list[Sample]) -> torch.Tensor:
        out = []
        for s in samples:
            try:
                value = float(self.fn(s.prompt, s.response, s.metadata))
            except Exception as exc:  # noqa: BLE001 - user code: report, never crash silently
                if self.on_error == "raise":
                    raise RewardError(
                        f"reward '{self.name}' raised {type(exc).__name__}: {exc} (prompt {s.where or '?'})"
                    ) from exc
                value = math.nan
            out.append(value)
        return torch.tensor(out, dtype=torch.float32)


class Later:
    """A value computed on ``result()`` (the second half of a :meth:`WeightedSum.submit`)."""

    def __init__(self, fn: Callable[[], torch.Tensor]) -> None:
        self.fn = fn

    def result(self) -> torch.Tensor:
        return self.fn()


class WeightedSum:
    """``Σ_i w_i · r_i`` over several sources; per-source scores are kept for logging in ``last_components``."""

    def __init__(self, sources: list[RewardSource], weights: list[float]) -> None:
        if len(sources) != len(weights) or not sources:
            raise ValueError("WeightedSum needs one weight per source and at least one source")
        self.sources, self.weights = sources, weights
        self.name = "+".join(s.name for s in sources)
        self.last_components: dict[str, torch.Tensor] = {}
        self.last_dense: list[list[float]] | None = None

    def submit(self, samples: list[Sample]) -> "Later":
        """Start the sources that score elsewhere (``submit``: Ray workers) and return a handle whose ``result()``
        scores the rest here and gives :meth:`score`'s value: the caller does other work meanwhile."""
        handles = [s.submit(samples) if hasattr(s, "submit") else None for s in self.sources]
        return Later(lambda: self._combine(samples, [None if h is None else h.result() for h in handles]))

    def score(self, samples: list[Sample]) -> torch.Tensor:
        return self.submit(samples).result()

    def _combine(self, samples: list[Sample], ready: list) -> torch.Tensor:
        total = torch.zeros(len(samples))
        self.last_components = {}
        self.last_dense = None  # per sample, per response character: the weighted dense rewards of dense sources
        for source, w, done in zip(self.sources, self.weights, ready):
            scores = (source.score(samples) if done is None else done).float()
            if scores.shape != (len(samples),):
                shape = tuple(scores.shape)
                raise RewardError(f"reward '{source.name}' returned shape {shape}, want ({len(samples)},)")
            self.last_components[source.name] = scores
            if getattr(source, "last_dense", None) is not None:  # a dense source (segment_rm): its per-char rewards
                dense = [[w * v for v in row] for row in source.last_dense]
                self.last_dense = dense if self.last_dense is None else [
                    [a + b for a, b in zip(x, y)] for x, y in zip(self.last_dense, dense)]
            for key, value in getattr(source, "last_stats", {}).items():  # e.g. ensemble disagreement
                self.last_components[f"{source.name}/{key}"] = value
            total = total + w * scores
        return total
