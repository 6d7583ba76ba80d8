"""Per-token KL estimators on the sampled token and KL-coefficient controllers.

docs/algorithms.md §11 (k1/k2/k3) and §8 (clamped, Jensen–Shannon). With ``Δ = logp − ref_logp``, p = e^{logp},
q = e^{ref_logp} (the sampled token's probabilities under π and π_ref) and m = ½(p + q):
k1 = Δ; k2 = ½Δ²; k3 = (e^{−Δ} − 1) + Δ; clamped = max(Δ, 0);
js = ½[log(p/m) + (q/p)·log(q/m)], whose expectation over tokens sampled from π is JS(π, π_ref) exactly
(E_π[½ log(p/m)] + ½ Σ_x q log(q/m));
js_lora_ppo = ½[max(log p − log m, 0) + max(log q − log m, 0)], the LoRA-PPO paper's per-token form (its
expectation under π is not the JS divergence: 0.139 against 0.102 for p = (0.9, 0.1), q = (0.5, 0.5)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.registry import Registry

KL_ESTIMATORS: Registry = Registry("KL estimator")


def sequence_kl(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The k1 estimate of each sequence's KL to the reference, ``Σ_t mask·(logp − ref_logp)``: the one place every
    loop, evaluation and regulariser computes it. (B, T), (B, T), (B, T) → (B,)."""
    return ((logp - ref_logp) * mask).sum(-1)



@KL_ESTIMATORS.register("k1")
def _k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return logp - ref_logp


@KL_ESTIMATORS.register("k2")
def _k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp - ref_logp) ** 2


@KL_ESTIMATORS.register("k3")
def _k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    delta = logp - ref_logp
    return torch.expm1(-delta) + delta


@KL_ESTIMATORS.register("clamped")
def _clamped(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    return torch.clamp(logp - ref_logp, min=0.0)


@KL_ESTIMATORS.register("js")
def _js(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    log_m = torch.logaddexp(logp, ref_logp) - math.log(2.0)  # log ½(p + q), stably
    return 0.5 * ((logp - log_m) + torch.exp(ref_logp - logp) * (ref_logp - log_m))


@KL_ESTIMATORS.register("js_lora_ppo")
def _js_lora_ppo(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    log_m = torch.logaddexp(logp, ref_logp) - math.log(2.0)
    return 0.5 * (torch.clamp(logp - log_m, min=0.0) + torch.clamp(ref_logp - log_m, min=0.0))


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-token KL estimate of kind ``k1 | k2 | k3 | clamped | js | js_lora_ppo``. (B, T), (B, T) → (B, T)."""
    return KL_ESTIMATORS[kind](logp, ref_logp)


@dataclass
class FixedKLController:
    """A constant KL coefficient β."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> None:  # noqa: ARG002 - same interface as adaptive
        return None

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


@dataclass
class AdaptiveKLController:
    """Ziegler et al. adaptive β (docs/algorithms.md §11): ``e = clip(KL/target − 1, −0.2, 0.2)``,
    ``β ← β·(1 + e·n_steps/horizon)``. Legacy TRL defaults: init 0.2, target 6, horizon 10000.
    """

    value: float
    target: float
    horizon: float

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
