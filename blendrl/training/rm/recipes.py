"""Reward-model training recipes of Secrets of RLHF II §2: which pairs to flip, which margin, which smoothing.

A recipe is a registered :class:`Recipe` of three independent parts, so every ablation is a name:

- **flip** — swap chosen/rejected of the pairs the strength ensemble marks as mislabelled (``loss.flip_rule``:
  the ``flip_fraction`` lowest-μ̂ pairs as in the paper, or ``confident``: μ̂ < −``flip_z``·σ̂);
- **margin** — the adaptive margin of eq. 6, m_i = ``margin_scale``·μ̂_i (÷ mean |μ̂| with ``margin_unit:
  mean_abs``, which keeps the margin on the scale of a BT reward whatever the strength models' scale);
- **smoothing** — eq. 5 with ``alpha`` on every pair (``label_smoothing``) or only where μ̂ < 0 (``soft_label``).

Names join the parts in that order: ``bt``, ``flip``, ``margin``, ``flip_margin``, ``label_smoothing``,
``soft_label``, ``flip_label_smoothing``, ``soft_label_margin``, ``flip_soft_label_margin``, … (all 12). The
paper's four are ``flip``, ``margin``, ``flip_margin`` and ``soft_label_margin``. The loss is
:func:`~blendrl.functional.rm_losses.denoised_pair_loss`; recipes without the adaptive margin use the fixed
``loss.margin`` (0 by default).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...config.rm_schema import RMLossConfig
from ...core.registry import Registry
from ...data.pair_encoding import EncodedPairs
from ...data.preferences import require_strength
from ...functional.rm_losses import denoised_pair_loss, flip_confident, flip_lowest

RECIPES: Registry = Registry("reward-model recipe")


@dataclass(frozen=True)
class Recipe:
    flip: bool = False
    margin: bool = False
    smoothing: str = "none"  # none | all | negative (only pairs with μ̂ < 0)

    @property
    def needs_mu(self) -> bool:
        return self.flip or self.margin or self.smoothing == "negative"

    def loss_fn(self, cfg: RMLossConfig):
        """``fn(chosen (N,), rejected (N,), mu (N,) | None) -> scalar``; ``mu`` is in margin units
        (:func:`prepare_pairs`)."""
        def fn(chosen: torch.Tensor, rejected: torch.Tensor, mu: torch.Tensor | None = None) -> torch.Tensor:
            margin = mu if self.margin else torch.full_like(chosen, cfg.margin)
            if self.smoothing == "negative":
                smoothing = cfg.alpha * (mu < 0).to(chosen.dtype)
            else:
                smoothing = torch.full_like(chosen, cfg.alpha if self.smoothing == "all" else 0.0)
            return denoised_pair_loss(chosen, rejected, margin, smoothing)
        return fn


for _flip in (False, True):
    for _smoothing, _sname in (("none", ""), ("all", "label_smoothing"), ("negative", "soft_label")):
        for _margin in (False, True):
            _name = "_".join(p for p in ("flip" if _flip else "", _sname, "margin" if _margin else "") if p) or "bt"
            RECIPES.register(_name)(Recipe(_flip, _margin, _smoothing))


def prepare_pairs(enc: EncodedPairs, name: str, cfg: RMLossConfig
                  ) -> tuple[EncodedPairs, torch.Tensor | None, torch.Tensor]:
    """Apply the recipe's flips. Returns ``(pairs, mu (N,) or None, flipped (N,) bool)``; a flipped pair swaps its
    chosen/rejected token ids and its μ̂ changes sign (it now measures the swapped order). ``mu`` comes back in
    margin units: × ``margin_scale``, ÷ mean |μ̂| under ``margin_unit: mean_abs``."""
    recipe, n = RECIPES[name], len(enc)
    flipped = torch.zeros(n, dtype=torch.bool)
    if not recipe.needs_mu:
        return enc, None, flipped
    require_strength(enc.pairs, f"loss.recipe '{name}'")
    mu = torch.tensor([float(p.mu) for p in enc.pairs])  # (N,)
    unit = mu.abs().mean().clamp_min(1e-12) if cfg.margin_unit == "mean_abs" else 1.0
    scaled = mu * cfg.margin_scale / unit
    if not recipe.flip:
        return enc, scaled, flipped
    if cfg.flip_rule == "confident":
        require_strength(enc.pairs, "loss.flip_rule confident", "sigma")
        sigma = torch.tensor([float(p.raw["sigma"]) for p in enc.pairs])
        flipped = flip_confident(mu, sigma, cfg.flip_z)
    else:
        flipped = flip_lowest(mu, cfg.flip_fraction)
    chosen = [r if f else c for c, r, f in zip(enc.chosen, enc.rejected, flipped.tolist())]
    rejected = [c if f else r for c, r, f in zip(enc.chosen, enc.rejected, flipped.tolist())]
    out = EncodedPairs(enc.pairs, chosen, rejected, enc.truncated, enc.skipped)
    return out, torch.where(flipped, -scaled, scaled), flipped
