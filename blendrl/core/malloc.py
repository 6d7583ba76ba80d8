"""The process's ``malloc``: glibc's settings (``perf.freed_memory``) or another allocator preloaded.

PyTorch on the CPU allocates with plain ``malloc``: by default glibc serves blocks over its (dynamic) mmap
threshold with fresh ``mmap`` pages and trims the heap top on free, so the next iteration's tensors fault their
pages in again — costly on a VM, where every fresh page is a page fault.

glibc's heap also fragments: the update's short-lived temporaries are freed between the activations it keeps,
so the frozen model loaded next cannot reuse those holes. mimalloc (``pip install cmeel-mimalloc``, in blendrl's
requirements) or jemalloc (``apt install libjemalloc2``) replace ``malloc`` when preloaded (``LD_PRELOAD``);
``blendrl --allocator NAME ...`` restarts itself that way (:func:`reexec_with`). They lower the peak RSS and cost
time per iteration (docs/performance.md): a trade, so glibc stays the default.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import sysconfig
from pathlib import Path

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
_SETTINGS = {
    "keep": [(_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 64 << 20)],  # reuse, never trim
    "return": [(_M_MMAP_THRESHOLD, 1 << 20), (_M_TRIM_THRESHOLD, 1 << 20)],  # large frees go back at once
}


@functools.cache
def _libc():
    """glibc, looked up once (``find_library`` runs ``ldconfig`` in a subprocess; ``trim`` runs per offloaded
    mapping)."""
    name = ctypes.util.find_library("c")
    if not name or os.name != "posix":
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def configure(mode: str) -> bool:
    """``keep``: no mmap-backed blocks and no trimming, so memory freed after one pass serves the next without new
    page faults; ``return``: 1 MiB mmap and trim thresholds, so large frees go back to the OS at once; ``glibc``:
    leave glibc's defaults. True if glibc took the setting (never under a preloaded allocator: it serves
    ``malloc`` then, and these are glibc's settings)."""
    libc = _libc()
    if mode == "glibc" or libc is None or active_allocator() != "glibc":
        return False
    return all(libc.mallopt(param, value) for param, value in _SETTINGS[mode])


def trim() -> bool:
    """Give every free heap page back to the OS now (``malloc_trim(0)``): for memory freed for good (a model moved
    to a memory-mapped file) and before mapping such a model in, so that under ``keep`` the cached free pages and
    the mapped weights are not resident at the same time."""
    active = active_allocator()
    if active == "mimalloc":
        ctypes.CDLL(None).mi_collect(ctypes.c_bool(True))  # free segments go back to the OS
        return True
    if active == "jemalloc":  # purge every arena's unused dirty pages (MALLCTL_ARENAS_ALL = 4096)
        return ctypes.CDLL(None).mallctl(b"arena.4096.purge", None, None, None, ctypes.c_size_t(0)) == 0
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


# ----------------------------------------------------------------------------------------------- other allocators
ALLOCATORS = ("glibc", "mimalloc", "jemalloc")
_PRELOADED = "_BLENDRL_PRELOADED"  # set by reexec_with in the restarted process


def library_path(name: str) -> Path:
    """The shared library of allocator ``name``: mimalloc from the ``cmeel-mimalloc`` wheel (or the system),
    jemalloc from the system. FileNotFoundError names how to install a missing one."""
    if name == "mimalloc":
        for site in dict.fromkeys([sysconfig.get_paths()["purelib"], *sys.path]):
            found = sorted((Path(site) / "cmeel.prefix" / "lib").glob("libmimalloc.so*"))
            if found:
                return found[0]
    system = ctypes.util.find_library(name) if name in ALLOCATORS[1:] else None
    if system:
        for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                       "/usr/local/lib"):
            if (Path(folder) / system).is_file():
                return Path(folder) / system
    hint = {"mimalloc": "pip install cmeel-mimalloc", "jemalloc": "apt install libjemalloc2"}.get(name)
    if hint is None:
        raise ValueError(f"allocator: unknown '{name}'; choose {', '.join(ALLOCATORS[1:])}")
    raise FileNotFoundError(f"allocator {name}: no lib{name} shared library found ({hint})")


@functools.cache
def active_allocator() -> str:
    """``mimalloc`` or ``jemalloc`` when that library is mapped into this process, else ``glibc`` (read from
    ``/proc/self/maps`` once: a preloaded allocator is there from the start and cannot change)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "glibc"
    for name in ALLOCATORS[1:]:
        if f"/lib{name}.so" in maps:
            return name
    return "glibc"


def preload_env(name: str, env: dict | None = None) -> dict:
    """A copy of ``env`` (default ``os.environ``) whose processes start with allocator ``name``: its library
    first in ``LD_PRELOAD`` (``glibc``: the copy unchanged)."""
    env = dict(os.environ if env is None else env)
    if name != "glibc":
        env["LD_PRELOAD"] = " ".join([str(library_path(name)), *env.get("LD_PRELOAD", "").split()])
    return env


def reexec_with(name: str, argv: list[str]) -> None:
    """Make allocator ``name`` serve this process: return when it already does, else replace the process by
    ``python -m blendrl.cli.main *argv`` with the library preloaded (an allocator cannot change once memory is
    allocated). RuntimeError when a restart did not load it."""
    if name == "glibc" or active_allocator() == name:
        return
    if os.environ.get(_PRELOADED) == name:
        raise RuntimeError(f"allocator {name}: restarted with LD_PRELOAD={os.environ.get('LD_PRELOAD')} but the "
                           "library is not loaded")
    env = {**preload_env(name), _PRELOADED: name}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "blendrl.cli.main", *argv], env)
