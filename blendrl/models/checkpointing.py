"""Activation (gradient) checkpointing for the trainer's eval-mode models (``model.gradient_checkpointing``).

transformers recomputes a decoder layer in backward only when that layer is in training mode, but blendrl keeps
every model in eval mode (no dropout: the training forward must reproduce the sampler's log-probs), and the
sampler must never checkpoint (it would drop the KV cache). So checkpointing is enabled once
(non-reentrant, so frozen inputs and LoRA need nothing else) and switched on only inside :func:`checkpointed`,
around the gradient passes: only the checkpointing layers' own ``training`` flag is set there, their dropout and
attention sub-modules stay in eval mode. Cost: one more forward per backward; saving: the stored activations of
every layer (about 32 KB per token per layer for SmolLM2-135M in fp32 with :mod:`blendrl.models.lean_mlp`,
45 KB without).
"""
from __future__ import annotations

import contextlib

import torch


def enable_checkpointing(model: torch.nn.Module) -> torch.nn.Module:
    """Prepare ``model`` (a transformers model, before LoRA is added) for :func:`checkpointed`."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"model.gradient_checkpointing: {type(model).__name__} does not support it")
    model.activation_checkpointing_enable({"use_reentrant": False})
    return model


@contextlib.contextmanager
def checkpointed(model: torch.nn.Module | None):
    """Within the block, the layers of ``model`` that have checkpointing enabled recompute activations in backward."""
    layers = [] if model is None else [
        m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True and not m.training
    ]
    for m in layers:
        m.training = True
    try:
        yield
    finally:
        for m in layers:
            m.training = False
