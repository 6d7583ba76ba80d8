"""Weight soups: parameter-wise weighted sums of models that share an architecture (docs/algorithms.md §4, §6).

- SALSA reference (Chegini et al.): ``θ_ref = α·θ_SFT1 + (1−α)·θ_SFT2`` (α = 0.5).
- Rewarded soup (Ramé et al.): ``θ(λ) = Σ_i λ_i·θ_i`` over per-reward PPO models.
- Bone Soup (Xie et al.): backbones trained on reward mixes given by the rows of A; merging coefficients
  ``c = A⁻¹λ``, optionally extrapolated from the SFT model with ``k_j`` (coefficients then include ``x_sft`` and
  still sum to 1).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..core.fsutil import atomic_dir


def weighted_state_dict(state_dicts: list[dict], weights: list[float]) -> dict:
    """``Σ_i w_i·θ_i`` for every floating tensor; integer/bool buffers must agree and are copied."""
    if len(state_dicts) != len(weights) or not state_dicts:
        raise ValueError("a soup needs one weight per model and at least one model")
    keys = set(state_dicts[0])
    for i, sd in enumerate(state_dicts[1:], 1):
        if set(sd) != keys:
            raise ValueError(f"model {i} has different parameters than model 0: {sorted(set(sd) ^ keys)[:5]}")
    out = {}
    for k, ref in state_dicts[0].items():
        if ref.is_floating_point():
            acc = torch.zeros_like(ref, dtype=torch.float64)
            for sd, w in zip(state_dicts, weights):
                acc += w * sd[k].double()
            out[k] = acc.to(ref.dtype)
        else:
            if any(not torch.equal(sd[k], ref) for sd in state_dicts[1:]):
                raise ValueError(f"non-float tensor '{k}' differs between models; cannot average it")
            out[k] = ref.clone()
    return out


def bone_soup_coefficients(A: list[list[float]], lam: list[float], k: list[float] | None = None
                           ) -> tuple[list[float], float]:
    """Bone Soup merging coefficients. ``A`` (m, m): row i = reward weights backbone i was trained with;
    ``lam`` (m,): the user's reward mix; ``k`` (m,): optional SFT extrapolation factors ``k_j = 1/(1−a)``.

    Returns ``(x, x_sft)``: ``x_i = Σ_j λ_j·(A⁻¹e_j)_i·k_j`` and ``x_sft = Σ_j (1−k_j)·λ_j`` (0 without k).
    With Σλ = 1 and rows of A summing to 1, Σx + x_sft = 1.
    """
    a = torch.tensor(A, dtype=torch.float64)  # (m, m)
    lam_t = torch.tensor(lam, dtype=torch.float64)  # (m,)
    k_t = torch.ones_like(lam_t) if k is None else torch.tensor(k, dtype=torch.float64)
    # backbones combine as Σ_i c_i·(row i of A) = λ, i.e. Aᵀc = λ; A is symmetric in the paper
    basis = torch.linalg.inv(a.T)  # column j = coefficients that recover reward direction e_j
    x = basis @ (lam_t * k_t)  # (m,)
    x_sft = float(((1 - k_t) * lam_t).sum())
    return x.tolist(), x_sft


def soup_models(paths: list[str], weights: list[float], out: Path, dtype: str = "float32") -> Path:
    """Write the soup of causal-LM folders ``paths`` (weights may be negative or > 1) as a save_pretrained folder
    with the first model's tokenizer and config."""
    from .loading import load_causal_lm, load_tokenizer, resolve_model

    resolved = [resolve_model(p) for p in paths]
    models = [load_causal_lm(p, dtype) for p in resolved]
    soup = models[0]
    soup.load_state_dict(weighted_state_dict([m.state_dict() for m in models], weights))
    with atomic_dir(Path(out)) as tmp:
        soup.save_pretrained(tmp)
        load_tokenizer(resolved[0]).save_pretrained(tmp)
    return Path(out)
