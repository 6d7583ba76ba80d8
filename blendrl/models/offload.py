"""Frozen models (reference, reward models) kept in a memory-mapped file between uses instead of in process memory.

The CPU analogue of OpenRLHF's ``--ref_reward_offload``: a frozen model's weights are written once to
``$BLENDRL_CACHE/offload/<pid>-<id>.pt``; between uses its parameters sit on the ``meta`` device (no memory), and
``with offloaded.loaded():`` maps the file (``torch.load(mmap=True)``, no copy) for the duration of the block. The
pages come from the OS page cache, which the kernel may reclaim under pressure and which leaves the process's
resident set when the mapping is dropped — so the peak RSS of an RL iteration, reached while the policy trains,
no longer includes the frozen models (~0.54 GB each for SmolLM2-135M in fp32). Cost: one mapping per use (0.03 s
measured for SmolLM2 once the file is in the page cache), though PPO iterations measured 12–16% slower with it on
in three runs of 2026-11-24 (cause not found), and PPO-1 13% / RLOO 5% slower on 2026-12-01, where each mapping
first trims malloc's cached free pages (README, Performance). The numbers are bit-for-bit those of the in-memory
model.

Only for models that never change after construction: the EMA reference moves every iteration.
"""
from __future__ import annotations

import contextlib
import os
import uuid
import weakref
from pathlib import Path

import torch

from .. import malloc
from .loading import cache_root


def offload_dir() -> Path:
    """Where offloaded weights are written (on disk under the blendrl cache, not a possibly RAM-backed /tmp)."""
    return cache_root() / "offload"


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


class OffloadedWeights:
    """Holds ``module``'s parameters and persistent buffers in a file; ``loaded()`` maps them in for a block."""

    def __init__(self, module: torch.nn.Module, folder: Path | None = None) -> None:
        self.module = module
        folder = Path(folder) if folder is not None else offload_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.pt"
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            torch.save(module.state_dict(), f)
            f.flush()
            os.fsync(f.fileno())  # written back now, not by the kernel in the middle of the first iterations
        os.replace(tmp, self.path)
        self._finalizer = weakref.finalize(self, _remove, self.path)
        self._depth = 0
        self.release()
        malloc.trim()  # the weights' heap pages leave the process now, also under freed_memory: keep

    def release(self) -> None:
        """Drop the weights: every parameter and persistent buffer becomes a ``meta`` tensor of the same shape."""
        for mod in self.module.modules():
            for name, p in mod._parameters.items():
                if p is not None and not p.is_meta:
                    mod._parameters[name] = torch.nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
            for name, b in mod._buffers.items():
                if b is not None and not b.is_meta and name not in mod._non_persistent_buffers_set:
                    mod._buffers[name] = torch.empty_like(b, device="meta")

    @contextlib.contextmanager
    def loaded(self):
        """Within the block the module has its weights (memory-mapped, read-only use); nesting maps once."""
        if self._depth == 0:
            malloc.trim()  # free heap pages (kept by freed_memory: keep) go back before the mapping's pages come in
            state = torch.load(self.path, mmap=True, weights_only=True, map_location="cpu")
            self.module.load_state_dict(state, assign=True)
            del state
        self._depth += 1
        try:
            yield self.module
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.release()

    def close(self) -> None:
        """Remove the file (also done when this object is garbage-collected or the process exits)."""
        self._finalizer()


def mapped(offloaded: OffloadedWeights | None):
    """``offloaded.loaded()``, or a no-op block for a model that is kept in memory (``None``)."""
    return contextlib.nullcontext() if offloaded is None else offloaded.loaded()
