"""Reward-model training recipes of Secrets of RLHF II §2: which pairs to flip and which pair loss to use.

A recipe is a registered :class:`Recipe`; the math lives in :mod:`blendrl.functional.rm_losses`.

=====================  =====================================  =====================================
recipe                 pairs                                  loss
=====================  =====================================  =====================================
``bt``                 as labelled                            Bradley–Terry, fixed ``margin``
``label_smoothing``    as labelled                            eq. 5 with ``alpha``
``flip``               lowest-μ̂ ``flip_fraction`` swapped     Bradley–Terry
``margin``             as labelled                            adaptive margin μ̂ (eq. 6)
``flip_margin``        lowest-μ̂ swapped (their μ̂ → −μ̂)       adaptive margin
``soft_label_margin``  as labelled                            smoothing where μ̂ < 0, plus margin
=====================  =====================================  =====================================
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...config.rm_schema import RMLossConfig
from ...data.pair_encoding import EncodedPairs
from ...data.preferences import require_strength
from ...core.registry import Registry
from ...functional.rm_losses import RM_LOSSES, flip_lowest

RECIPES: Registry = Registry("reward-model recipe")


@dataclass(frozen=True)
class Recipe:
    loss: str  # a name in RM_LOSSES
    flip: bool = False
    needs_mu: bool = False

    def loss_fn(self, cfg: RMLossConfig):
        """``fn(chosen (N,), rejected (N,), mu (N,) | None) -> scalar`` with this recipe's options bound."""
        fn = RM_LOSSES[self.loss]
        options = {"bt": {"margin": cfg.margin}, "label_smoothing": {"alpha": cfg.alpha},
                   "soft_label_margin": {"alpha": cfg.alpha}}.get(self.loss, {})
        return lambda chosen, rejected, mu=None: fn(chosen, rejected, mu, **options)


for _name, _recipe in {
    "bt": Recipe("bt"),
    "label_smoothing": Recipe("label_smoothing"),
    "flip": Recipe("bt", flip=True, needs_mu=True),
    "margin": Recipe("adaptive_margin", needs_mu=True),
    "flip_margin": Recipe("adaptive_margin", flip=True, needs_mu=True),
    "soft_label_margin": Recipe("soft_label_margin", needs_mu=True),
}.items():
    RECIPES.register(_name)(_recipe)


def prepare_pairs(enc: EncodedPairs, name: str, flip_fraction: float
                  ) -> tuple[EncodedPairs, torch.Tensor | None, torch.Tensor]:
    """Apply the recipe's flips. Returns ``(pairs, mu (N,) or None, flipped (N,) bool)``; a flipped pair swaps its
    chosen/rejected token ids and its μ̂ changes sign (it now measures the swapped order)."""
    recipe, n = RECIPES[name], len(enc)
    flipped = torch.zeros(n, dtype=torch.bool)
    if not recipe.needs_mu:
        return enc, None, flipped
    require_strength(enc.pairs, f"loss.recipe '{name}'")
    mu = torch.tensor([float(p.mu) for p in enc.pairs])  # (N,)
    if not recipe.flip:
        return enc, mu, flipped
    flipped = flip_lowest(mu, flip_fraction)
    chosen = [r if f else c for c, r, f in zip(enc.chosen, enc.rejected, flipped.tolist())]
    rejected = [c if f else r for c, r, f in zip(enc.chosen, enc.rejected, flipped.tolist())]
    out = EncodedPairs(enc.pairs, chosen, rejected, enc.truncated, enc.skipped)
    return out, torch.where(flipped, -mu, mu), flipped
