"""Optimizer and learning-rate schedule shared by the RL, reward-model and SFT trainers."""
from __future__ import annotations

import math

import torch


def lr_lambda(schedule: str, warmup: int, total: int):
    """LR multiplier per step: linear warm-up over ``warmup`` steps, then constant, linear or cosine decay to 0."""

    def fn(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - progress
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return fn


def make_optimizer(params, lr: float, weight_decay: float):
    """AdamW over the trainable ``params`` (fused kernel where torch has one), its state allocated now
    (:func:`allocate_adam_state`)."""
    params = [p for p in params if p.requires_grad]
    try:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)
    return allocate_adam_state(opt)


def allocate_adam_state(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Create now the state torch's Adam/AdamW create at a parameter's first ``step``: ``step`` = 0 and zero
    moments, the same tensors as ``Adam._init_group`` makes, so every step after is unchanged (tested against a
    lazily initialised optimizer, bit for bit).

    Why: created at the first step, the moments (2 × the trained weights) landed in the holes the first iteration's
    activations and gradients had left, and the later iterations' activations needed new heap above them. Created
    with the models, under ``freed_memory: keep``, they sit below what comes and goes, so the peak RSS is reached
    in the first iteration and stays (docs/performance.md)."""
    from torch.optim.optimizer import _get_scalar_dtype

    for group in opt.param_groups:
        on_device = group.get("capturable") or group.get("fused")
        for p in group["params"]:
            state = opt.state[p]
            if len(state) != 0:
                continue
            state["step"] = (torch.zeros((), dtype=_get_scalar_dtype(is_fused=group.get("fused")), device=p.device)
                             if on_device else torch.tensor(0.0, dtype=_get_scalar_dtype(), device="cpu"))
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return opt
