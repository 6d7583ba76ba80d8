"""What every model blendrl loads gets for its training forwards: fewer activations kept for backward.

- :mod:`.lean_mlp`: SwiGLU MLPs keep ``gate(x)`` and ``up(x)`` only (bit for bit transformers' numbers);
- :mod:`.lean_norm`: RMSNorms keep their input only (forward bit for bit, gradients to float rounding);
- :mod:`.lean_attention`: grouped-query attention on CPU without repeated key/value heads (outputs bit for bit).

How much each saves: docs/performance.md.
"""
from __future__ import annotations

import torch

from .lean_attention import use_kernel_gqa
from .lean_mlp import use_lean_mlp
from .lean_norm import use_lean_norm


def use_lean_layers(model: torch.nn.Module) -> dict[str, int]:
    """Apply all three to ``model``; returns how many modules (MLPs, norms) and models (attention) each took."""
    return {"mlp": use_lean_mlp(model), "norm": use_lean_norm(model), "attention": use_kernel_gqa(model)}
