"""Frozen models (reference, reward models) kept in a file between uses instead of in the process's live memory.

The CPU analogue of OpenRLHF's ``--ref_reward_offload``: a frozen model's weights are written once, as raw bytes,
to ``$BLENDRL_CACHE/offload/<pid>-<id>.bin``; between uses its parameters sit on the ``meta`` device (no memory),
and ``with offloaded.loaded():`` reads the file back into freshly allocated tensors (``os.preadv``, from the OS
page cache) for the duration of the block. Under ``perf.freed_memory: keep`` (the default) those tensors can take
the pages the update freed (its gradients and activations) and give them back to the next update, so that an
iteration's peak RSS is the larger of "update" and "frozen model in use", not their sum. How well malloc reuses
them is its own: glibc's heap fragments (:mod:`blendrl.core.malloc`). Cost: one read per use from the OS page
cache. The numbers are bit-for-bit those of the in-memory model. Measurements, and the memory-mapped variant this
replaced: docs/performance.md.

Only for models that never change after construction: the EMA reference moves every iteration. The default
(``model.offload_frozen: auto``) offloads every frozen model that has weights of its own: the reward models and a
reference that does not move.
"""
from __future__ import annotations

import contextlib
import os
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..core import malloc
from .loading import cache_root


_PIECE = 8 << 20  # bytes per read call


def offload_dir() -> Path:
    """Where offloaded weights are written (on disk under the blendrl cache, not a possibly RAM-backed /tmp)."""
    return cache_root() / "offload"


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


class OffloadedWeights:
    """Holds ``module``'s parameters and persistent buffers in a file; ``loaded()`` reads them in for a block."""

    def __init__(self, module: torch.nn.Module, folder: Path | None = None) -> None:
        self.module = module
        folder = Path(folder) if folder is not None else offload_dir()
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale(folder)
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.bin"
        self.layout = _write(module.state_dict(), self.path)
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

    def read(self) -> dict[str, torch.Tensor]:
        """The state dict, read from the file into new tensors on each one's original device (tied names share
        one tensor). The reads run in pieces of 8 MiB on torch's thread count (``os.preadv`` releases the GIL):
        0.10–0.15 s instead of 0.18–0.21 s for 0.5 GB from the page cache on 2 threads here."""
        state: dict[str, torch.Tensor] = {}
        pieces, offset = [], 0  # (byte view, file offset)
        for name, shape, dtype, _, alias in self.layout:
            if alias is None:
                state[name] = t = torch.empty(shape, dtype=dtype)
                view = _bytes(t)
                pieces += [(view[i : i + _PIECE], offset + i) for i in range(0, len(view), _PIECE)]
                offset += len(view)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
                got = sum(pool.map(lambda piece: os.preadv(fd, [piece[0]], piece[1]), pieces))
        finally:
            os.close(fd)
        if got != offset:
            raise OSError(f"{self.path}: read {got} of {offset} bytes (truncated?)")
        for name, _, _, device, alias in self.layout:
            state[name] = state[alias] if alias is not None else state[name].to(device)
        return state

    @contextlib.contextmanager
    def loaded(self):
        """Within the block the module has its weights (read-only use); nesting reads once."""
        if self._depth == 0:
            self.module.load_state_dict(self.read(), assign=True)
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


def remove_stale(folder: Path) -> None:
    """Remove files left in ``folder`` by processes that no longer run (a run killed with SIGKILL cannot clean up;
    each file is a frozen model's size)."""
    for file in folder.iterdir():
        pid = file.name.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            file.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def _write(state: dict[str, torch.Tensor], path: Path) -> list[tuple]:
    """Write the tensors' bytes to ``path`` atomically (tied names once); returns (name, shape, dtype, device, the
    name it is tied to or None) per entry."""
    layout = []
    first_name: dict[tuple[int, int], str] = {}  # (data pointer, bytes) → the first name of tied tensors
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for name, t in state.items():
            alias = first_name.setdefault((t.data_ptr(), t.numel() * t.element_size()), name) if t.numel() else name
            layout.append((name, t.shape, t.dtype, t.device, None if alias == name else alias))
            if alias == name:
                f.write(_bytes(t.detach().contiguous().cpu()))
        f.flush()
        os.fsync(f.fileno())  # written back now, not by the kernel in the middle of the first iterations
    os.replace(tmp, path)
    return layout


def _bytes(t: torch.Tensor) -> memoryview:
    """A contiguous tensor's memory as a writable byte view (any dtype, also bfloat16)."""
    return memoryview(t.view(-1).view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def mapped(offloaded: OffloadedWeights | None):
    """``offloaded.loaded()``, or a no-op block for a model that is kept in memory (``None``)."""
    return contextlib.nullcontext() if offloaded is None else offloaded.loaded()
