"""Data-parallel helpers over ``torch.distributed``: the identity in a single process, collectives when a process
group is up (``torchrun``, ``accelerate launch`` or :func:`init_from_env`).

A data-parallel run gives each rank a contiguous shard of the iteration's prompts (each prompt's k samples stay on
one rank). Every statistic over the batch (score normalisation, advantage whitening, baselines, the KL
controller, metrics) is computed on :func:`gather_rows` of the per-row values, in global row order, so it is the
statistic of the whole batch; gradients are summed by the training engine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist


def active() -> bool:
    """A process group with more than one rank is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that logs, evaluates and writes checkpoints."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` / ``accelerate launch`` describe in the environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); nothing to do without them. Backend: ``nccl`` when CUDA is
    there, else ``gloo``. Returns whether a group with more than one rank is up."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return active()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return active()


def resolve_device(name: str = "auto") -> torch.device:
    """``model.device``: ``auto`` is ``cuda:LOCAL_RANK`` when CUDA is available (each data-parallel rank its own
    GPU), else the CPU."""
    if name == "auto":
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"model.device: {name}, but torch sees no CUDA device (a CPU build of torch, or no GPU)")
    return device


def require_single_process(command: str) -> None:
    """Refuse to run ``command`` in a data-parallel launch it does not support (each rank would train on the same
    rows and the sum of their gradients would be ``world`` times one rank's)."""
    if init_from_env():
        raise RuntimeError(f"{command} runs in one process; launch it without torchrun (data-parallel training "
                           f"covers blendrl ppo: PPO, RLOO, GRPO, REINFORCE)")


def _comm_device() -> torch.device:
    """Where the backend's collectives take their tensors: the current GPU for NCCL, the CPU for gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over ranks (``x`` itself in one process), on ``x``'s device."""
    if not active():
        return x
    out = x.detach().clone().to(_comm_device())
    dist.all_reduce(out)
    return out.to(x.device)


def all_true(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank."""
    if not active():
        return flag
    t = torch.tensor([0 if flag else 1], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t)
    return int(t.item()) == 0


def all_max(value: float) -> float:
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's ``x`` (rows along dim 0, the same trailing shape on every rank) concatenated in rank order, and
    the row where this rank's rows start. In one process: ``(x, 0)``, the tensor itself."""
    if not active():
        return x, 0
    comm = _comm_device()
    sizes = [torch.zeros(1, dtype=torch.int64, device=comm) for _ in range(world())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.int64, device=comm))
    counts = [int(s.item()) for s in sizes]
    widest = max(counts)
    padded = torch.zeros((widest, *x.shape[1:]), dtype=x.dtype, device=comm)
    padded[: x.shape[0]] = x.to(comm)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, counts)]).to(x.device), sum(counts[: rank()])


def gather_objects(items: list) -> list:
    """Every rank's list concatenated in rank order (``items`` itself in one process)."""
    if not active():
        return items
    out: list = [None] * world()
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


@dataclass
class Shard:
    """This rank's rows of a global batch for a generator: ``rows`` (long, global row indices, in the order of the
    prompts handed over) of ``total``. ``all_done(local_done)`` is True once every rank's rows have finished (a
    collective per decode step, so that every rank draws the same random numbers in the same order as one process
    would)."""

    rows: torch.Tensor
    total: int
    all_done: Callable[[bool], bool] = all_true


def shard_range(n: int) -> tuple[int, int]:
    """This rank's contiguous ``[start, stop)`` of ``n`` items; ``n`` must divide evenly over the ranks."""
    w, r = world(), rank()
    if n % w:
        raise ValueError(f"{n} items do not split evenly over {w} ranks")
    return r * n // w, (r + 1) * n // w
