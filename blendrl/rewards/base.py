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
from ..core.types import Sample, Scores, make_samples

__all__ = ["REWARD_SOURCES", "CallableReward", "RewardError", "RewardSource", "Sample", "Scores", "WeightedSum",
           "make_samples", "score_batch"]


class RewardError(RuntimeError):
    """A reward source failed on a sample."""


class RewardSource(Protocol):
    name: str

    def score(self, samples: list[Sample]) -> Scores:
        """One :class:`~blendrl.core.types.Scores` for the batch: ``total`` (N,) (NaN marks a sample that could
        not be scored) and whatever the source reports beside it. A user's source may return a plain (N,) tensor;
        :func:`score_batch` reads either."""
        ...


def score_batch(source, samples: list[Sample]) -> Scores:
    """``source.score(samples)`` as validated :class:`Scores` (N rows each): how every caller reads a source."""
    return Scores.of(source.score(samples), len(samples), getattr(source, "name", type(source).__name__))


class CallableReward:
    """Wraps ``fn(prompt: str, response: str, metadata: dict) -> float`` (rule rewards, user functions)."""

    def __init__(self, fn: Callable[[str, str, dict], float], name: str, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be raise or skip, got {on_error!r}")
        self.fn, self.name, self.on_error = fn, name, on_error

    def score(self, samples: list[Sample]) -> Scores:
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
        return Scores(torch.tensor(out, dtype=torch.float32))


class Later:
    """A value computed on ``result()`` (the second half of a :meth:`WeightedSum.submit`)."""

    def __init__(self, fn: Callable[[], Scores]) -> None:
        self.fn = fn

    def result(self) -> Scores:
        return self.fn()


class WeightedSum:
    """``Σ_i w_i · r_i`` over several sources. Its :class:`Scores` carry each source's scores as ``components``
    (by source name), each source's stats as ``stats`` (``<source>/<stat>``) and the weighted sum of the dense
    sources' per-character rewards as ``dense``."""

    def __init__(self, sources: list[RewardSource], weights: list[float]) -> None:
        if len(sources) != len(weights) or not sources:
            raise ValueError("WeightedSum needs one weight per source and at least one source")
        self.sources, self.weights = sources, weights
        self.name = "+".join(s.name for s in sources)

    def submit(self, samples: list[Sample]) -> "Later":
        """Start the sources that score elsewhere (``submit``: Ray workers) and return a handle whose ``result()``
        scores the rest here and gives :meth:`score`'s value: the caller does other work meanwhile."""
        handles = [s.submit(samples) if hasattr(s, "submit") else None for s in self.sources]
        return Later(lambda: self._combine(samples, [None if h is None else h.result() for h in handles]))

    def score(self, samples: list[Sample]) -> Scores:
        return self.submit(samples).result()

    def _combine(self, samples: list[Sample], ready: list) -> Scores:
        out = Scores(torch.zeros(len(samples)))
        for source, w, done in zip(self.sources, self.weights, ready):
            try:
                part = score_batch(source, samples) if done is None else Scores.of(done, len(samples), source.name)
            except ValueError as exc:
                raise RewardError(str(exc)) from None
            out.components[source.name] = part.total
            out.stats.update({f"{source.name}/{k}": v for k, v in {**part.components, **part.stats}.items()
                              if k != source.name})
            if part.dense is not None:  # a dense source (segment_rm): its per-character rewards, weighted
                dense = [[w * v for v in row] for row in part.dense]
                out.dense = dense if out.dense is None else [[a + b for a, b in zip(x, y)]
                                                             for x, y in zip(out.dense, dense)]
            out.total = out.total + w * part.total
        return out
