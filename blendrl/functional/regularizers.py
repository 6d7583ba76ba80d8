"""Occupancy-measure regularisers in the loss (ORPO, Laidlaw et al. ICLR 2025; docs/algorithms.md §9).

For LLMs (deterministic token-append dynamics) the occupancy ratio is the sequence ratio, so with
``lr = Σ_t mask·(log π − log π_ref)`` per sequence (B,):

- ``χ̂² = mean_B[(e^{lr} − 1) + (e^{−lr} − 1)]`` — the second term has zero mean under π (a control variate);
- the loss term is ``coef·sqrt(max(χ̂², 1e-4))``.

``lr`` is clipped at ±``clip`` (10) with a linear extension beyond: e^x is replaced outside [−c, c] by its tangent
at the clip point, so the gradient never vanishes. The form of that extension is our reading of "clip with linear
extension" in the reference code [I].
"""
from __future__ import annotations

import torch

from ..core.registry import Registry
from .kl import sequence_kl

REGULARIZERS: Registry = Registry("regularizer")


def exp_linear_beyond(x: torch.Tensor, clip: float) -> torch.Tensor:
    """e^x inside [−clip, clip]; the tangent line at the nearer clip point outside. Elementwise."""
    xc = x.clamp(-clip, clip)
    return torch.exp(xc) * (1 + x - xc)


@REGULARIZERS.register("chi2")
def chi2_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, clip: float = 10.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sqrt(max(χ̂², 1e-4)), χ̂²)`` of the batch, ORPO's LLM form. (B, T) inputs → scalars."""
    lr = sequence_kl(logp, ref_logp, mask)  # (B,) the sequence log-ratio
    chi2 = ((exp_linear_beyond(lr, clip) - 1) + (exp_linear_beyond(-lr, clip) - 1)).mean()
    return torch.sqrt(chi2.clamp(min=1e-4)), chi2
