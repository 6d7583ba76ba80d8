"""Direct preference optimisation losses on sequence log-probabilities (docs/algorithms.md §12).

With ``π`` the policy and ``ref`` the reference, per pair: ``z = (log π(y_c) − log π(y_r)) − (log ref(y_c) −
log ref(y_r))``.

- ``sigmoid`` (DPO, Rafailov et al. 2023): ``−log σ(β z)``; with ``label_smoothing`` ε it is conservative DPO
  (cDPO): ``−(1 − ε)·log σ(β z) − ε·log σ(−β z)``, the labels flipped with probability ε.
- ``ipo`` (Azar et al. 2024): ``(z − 1/(2β))²`` on length-averaged log-probabilities (the caller passes those).

Registered in ``DPO_LOSSES`` by name; each maps (N,) ×4 → (N,) per-pair losses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.registry import Registry

DPO_LOSSES: Registry = Registry("DPO loss")


def preference_logits(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                      ref_rejected: torch.Tensor) -> torch.Tensor:
    """``z = (π_c − π_r) − (ref_c − ref_r)``, the policy's log-ratio margin over the reference's. (N,) ×4 → (N,)."""
    return (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected)


@DPO_LOSSES.register("sigmoid")
def sigmoid_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta: float = 0.1,
                 label_smoothing: float = 0.0) -> torch.Tensor:
    """DPO, or cDPO with ``label_smoothing`` > 0: ``−(1 − ε)·log σ(βz) − ε·log σ(−βz)``. → (N,)."""
    z = beta * preference_logits(pi_chosen, pi_rejected, ref_chosen, ref_rejected)
    return -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)


@DPO_LOSSES.register("ipo")
def ipo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta: float = 0.1,
             label_smoothing: float = 0.0) -> torch.Tensor:
    """IPO: ``(z − 1/(2β))²`` (``label_smoothing`` unused). → (N,)."""
    return (preference_logits(pi_chosen, pi_rejected, ref_chosen, ref_rejected) - 1.0 / (2.0 * beta)) ** 2


def implicit_rewards(pi: torch.Tensor, ref: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward ``β·(log π(y) − log ref(y))``. (N,) → (N,)."""
    return beta * (pi - ref)
