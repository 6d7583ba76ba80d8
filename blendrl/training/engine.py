"""The training-engine seam: how a loss becomes a weight update. Every trainer (PPO family, CGPO, reward models,
SFT) calls ``engine.backward(loss)`` for each micro-batch and ``engine.step()`` once per optimizer step, so the
rule below holds everywhere and a distributed or mixed-precision engine replaces this one without touching a loop.

The rule of one optimizer step: clip the gradient's global norm to ``max_grad_norm``; apply the step only when the
loss and the gradient are finite (a NaN or inf is counted in ``skipped`` and the gradient discarded, never written
into the weights); with no gradient at all (nothing to train on) there is nothing to apply and nothing is skipped;
the learning-rate schedule advances once per call either way, so the rate at step n does not depend on how many
steps before it were skipped.

Mixed precision (``train.mixed_precision: bf16 | fp16``): the trainers run their gradient forwards inside
:meth:`LocalEngine.autocast` (weights and optimizer state stay in their dtype, float32 by default); fp16 scales the
loss (``torch.amp.GradScaler``) and unscales before clipping, so a step with inf/NaN gradients is skipped by the
same rule.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Protocol

import torch

from ..core import dist
from ..models.layout import is_sharded
from .fsdp import reshard
from .optim import lr_lambda, make_optimizer


class OptimizerSettings(Protocol):
    """What an engine reads from a config's ``train`` section (:class:`blendrl.config.schema.OptimSettings`)."""

    weight_decay: float
    schedule: str
    warmup_steps: int
    max_grad_norm: float


class LocalEngine:
    """One model's AdamW and learning-rate schedule in this process: today's single-process training."""

    def __init__(self, module: torch.nn.Module, lr: float, settings: OptimizerSettings, total_steps: int) -> None:
        self.optimizer = make_optimizer(module.parameters(), lr, settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(settings.schedule, settings.warmup_steps, total_steps))
        self.max_grad_norm = settings.max_grad_norm
        self.skipped = 0  # optimizer steps not applied because the loss or the gradient was not finite
        self.applied = False  # whether the last step() changed the weights
        first = next(module.parameters(), None)
        self.device_type = first.device.type if first is not None else "cpu"
        self.precision = getattr(settings, "mixed_precision", "no")
        if self.precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision: expected no, bf16 or fp16, got {self.precision!r}")
        self.scaler = torch.amp.GradScaler(self.device_type) if self.precision == "fp16" else None

    def autocast(self):
        """The context of a gradient forward: autocast to bf16/fp16 under mixed precision, nothing otherwise."""
        if self.precision == "no":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device_type, dtype=dtype)

    @property
    def lr(self) -> float:
        """The learning rate the next step applies."""
        return self.scheduler.get_last_lr()[0]

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradient of ``loss`` (a micro-batch's share of the step's loss; scaled under fp16)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, finite: bool = True) -> float:
        """Apply the accumulated gradient by the rule above (``finite``: every loss of this step was finite).
        Returns the gradient norm before clipping: NaN for a skipped step, 0.0 when there was no gradient."""
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        unscaled = self.scaler is not None and bool(params)
        if unscaled:
            self.scaler.unscale_(self.optimizer)  # true gradients (inf/NaN where fp16 overflowed)
        if not finite:
            grad_norm = math.nan
        elif not params:
            grad_norm = 0.0
        else:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm))
        self.applied = bool(params) and math.isfinite(grad_norm)
        if not math.isfinite(grad_norm):
            self.skipped += 1
        elif self.applied:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
        if unscaled:
            self.scaler.update()  # lower the scale after an overflow, raise it after a run of good steps
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # torch warns when the schedule advances past a step that was not taken
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        return grad_norm

    def optimizer_state(self) -> dict:
        """What a checkpoint keeps of the optimizer (a sharded engine gathers it whole)."""
        return self.optimizer.state_dict()

    def load_optimizer_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer_state(), "scheduler": self.scheduler.state_dict(),
                 "skipped": self.skipped}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.load_optimizer_state(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.skipped = state["skipped"]
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


class DistributedEngine(LocalEngine):
    """Data-parallel training over ``torch.distributed`` (launched with ``torchrun`` or ``accelerate launch``): each
    rank holds the whole model and its rows of the batch; before the rule of one step the ranks' gradients are
    summed (each rank's losses are already weighted by its share of the whole batch's tokens, so the sum is the
    gradient of the whole batch) and the finite check is every rank's. The weights start from rank 0's and, stepped
    alike, stay equal. Works with every fast path that writes ``.grad`` (in-place tied gradients included)."""

    def __init__(self, module: torch.nn.Module, lr: float, settings: OptimizerSettings, total_steps: int) -> None:
        super().__init__(module, lr, settings, total_steps)
        with torch.no_grad():
            for p in module.parameters():
                torch.distributed.broadcast(p.data, 0)

    def step(self, finite: bool = True) -> float:
        finite = dist.all_true(finite)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if finite and not dist.all_true(all(p.grad is None for p in params)):  # some rank has a gradient
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            grads = [p.grad for p in params]
            flat = torch._utils._flatten_dense_tensors(grads)
            torch.distributed.all_reduce(flat)
            for g, summed in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
                g.copy_(summed)
        return super().step(finite)


class FSDPEngine(LocalEngine):
    """The engine of a sharded model: the step rule of :class:`LocalEngine` on every rank's shard, the finite check
    every rank's, the optimizer state saved whole."""

    def __init__(self, module: torch.nn.Module, lr: float, settings: OptimizerSettings, total_steps: int) -> None:
        super().__init__(module, lr, settings, total_steps)
        self.module = module

    def backward(self, loss: torch.Tensor) -> None:
        """FSDP reduce-scatters the mean of the ranks' gradients; the losses are shares of the whole batch's, whose
        gradient is the sum: × world."""
        super().backward(loss * dist.world())

    def step(self, finite: bool = True) -> float:
        return super().step(dist.all_true(finite))

    def optimizer_state(self) -> dict:
        """The whole optimizer state, gathered (every rank calls this), keyed by parameter name."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        reshard(self.module)  # a no-grad forward leaves the root gathered: back to the optimizer's shards
        return get_optimizer_state_dict(self.module, self.optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.module, self.optimizer, state, options=StateDictOptions(full_state_dict=True))


def make_engine(module: torch.nn.Module, lr: float, settings: OptimizerSettings, total_steps: int) -> LocalEngine:
    """The engine of a run: :class:`FSDPEngine` for a sharded model (:mod:`blendrl.training.fsdp`),
    :class:`DistributedEngine` when a process group with several ranks is up, else :class:`LocalEngine`."""
    cls = FSDPEngine if is_sharded(module) else DistributedEngine if dist.active() else LocalEngine
    return cls(module, lr, settings, total_steps)
