"""A reward-model ensemble as one reward source (Coste et al.; docs/algorithms.md §3).

Every member scores the batch (members given as reward sources, or as one scorer of
:mod:`blendrl.rewards.shared_backbone` that holds several on one backbone); the aggregator of
:mod:`blendrl.functional.ensembles` (``mean``, ``wco``, ``uwo``) turns the (k, B) scores into one score per
sequence — the only score the trainer sees. Per-sample disagreement (population std over members) and each member's
score come back in the :class:`~blendrl.core.types.Scores`' ``stats`` for logging.
"""
from __future__ import annotations

import torch

from ..functional.ensembles import ENSEMBLE_AGGREGATORS, disagreement
from .base import RewardError, Sample, Scores
from .shared_backbone import SeparateMembers


class EnsembleReward:
    """``members`` (a list of reward sources, or a scorer with ``member_scores``) aggregated by ``aggregate`` with
    its options (``lam`` for uwo)."""

    def __init__(self, members, aggregate: str = "mean", name: str | None = None, **options) -> None:
        self.scorer = members if hasattr(members, "member_scores") else SeparateMembers(list(members))
        if len(self.scorer) < 2:
            raise RewardError(f"an ensemble needs at least 2 members, got {len(self.scorer)}")
        self.options = options
        self.aggregate = ENSEMBLE_AGGREGATORS[aggregate]
        self.name = name or f"ensemble-{aggregate}"

    def member_scores(self, samples: list[Sample]) -> torch.Tensor:
        """(k, B) scores of every member."""
        return self.scorer.member_scores(samples)

    def score(self, samples: list[Sample]) -> Scores:
        scores = self.member_scores(samples)  # (k, B)
        stats = {"disagreement": disagreement(scores), **{f"member{i}": s for i, s in enumerate(scores)}}
        return Scores(self.aggregate(scores, **self.options), stats=stats)  # (B,)
