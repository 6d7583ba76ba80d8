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
    """AdamW over the trainable ``params`` (fused kernel where torch has one)."""
    params = [p for p in params if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)
