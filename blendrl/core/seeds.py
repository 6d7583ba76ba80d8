"""The random streams of a run, each named and derived from the run's seed (``train.seed``) here and nowhere else.

A loop asks for ``stream(seed, name, step)``; the formulas below are the only place the derivations live, so no two
streams share a seed by accident and a resumed run draws exactly what an uninterrupted one would (a stream's
``step`` is something the run restores: an epoch, a count of draws kept in the run folder).

- ``sampling``: the rollouts' tokens (RL loops), PF-PPO's random filter and VinePPO's continuations;
- ``shuffle``: the minibatch order of a PPO iteration with several minibatches;
- ``evaluation``: every held-out evaluation (the same draws each time, so evaluations compare);
- ``baselines``: CGPO's ā sampled from π_ref; ``step`` = how many ā the run held before the draw;
- ``prompts``: the prompt order of a loop's sampler (``step``: the CGPO task's index);
- ``epoch_order``: the example order of an epoch of a supervised trainer (``step``: the epoch);
- ``folds``: the cross-fitting folds of ``blendrl rm strength``.
"""
from __future__ import annotations

import torch

_FORMULAS = {
    "sampling": lambda seed, step: seed,
    "shuffle": lambda seed, step: seed + 1,
    "evaluation": lambda seed, step: seed + 12345,
    "baselines": lambda seed, step: seed + 7919 * (step + 1),
    "prompts": lambda seed, step: seed + step,
    "epoch_order": lambda seed, step: seed * 100_003 + step,
    "folds": lambda seed, step: seed + 7919,
}
STREAMS = tuple(_FORMULAS)


def seed_of(seed: int, name: str, step: int = 0) -> int:
    """The integer seed of stream ``name`` at ``step`` for a run seeded ``seed``."""
    if name not in _FORMULAS:
        raise KeyError(f"unknown random stream '{name}'; the streams are {STREAMS}")
    return _FORMULAS[name](seed, step)


def stream(seed: int, name: str, step: int = 0) -> torch.Generator:
    """A fresh CPU generator of stream ``name`` at ``step`` (:func:`seed_of`)."""
    return torch.Generator().manual_seed(seed_of(seed, name, step))
