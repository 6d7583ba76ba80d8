"""Scoring on Ray actors: a pool of workers that each build one object (a reward source or a judge) and call one of
its methods on a share of a batch. Ray is optional (``pip install "blendrl[ray]"``); it is imported on first use.

A batch is cut into one contiguous share per worker; :meth:`WorkerPool.submit` sends the shares and returns at once
(the trainer runs its reference and critic passes meanwhile), :meth:`Pending.result` collects them in order. A
worker that dies mid-batch is restarted by Ray (``max_restarts``) and its share is sent again
(``max_task_retries``): every sample is in the result exactly once, scored by one complete call.
"""
from __future__ import annotations

import os
from typing import Any, Callable


def ray_module():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("kind: ray needs Ray: pip install 'blendrl[ray]' (or pip install ray)") from exc
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to ``address`` (or ``$RAY_ADDRESS``), else start a local Ray for this process."""
    ray = ray_module()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


class _Worker:
    """Holds one object built by ``build()`` and calls its methods."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.obj = build()

    def call(self, method: str, items: list) -> Any:
        return getattr(self.obj, method)(items)

    def pid(self) -> int:
        return os.getpid()


class Pending:
    """The shares of one submitted batch; :meth:`result` joins them in order with ``join``."""

    def __init__(self, refs: list, join: Callable[[list], Any]) -> None:
        self.refs, self.join = refs, join

    def result(self) -> Any:
        return self.join(ray_module().get(self.refs))


class WorkerPool:
    """``workers`` Ray actors, each with ``num_cpus``/``num_gpus``, each holding ``build()``'s object."""

    def __init__(self, build: Callable[[], Any], workers: int = 2, num_cpus: float = 1, num_gpus: float = 0,
                 address: str | None = None, max_restarts: int = 3) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be >= 1, got {workers}")
        ray = ray_module()
        ensure_ray(address)
        actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts,
                           max_task_retries=max_restarts)(_Worker)
        self.actors = [actor.remote(build) for _ in range(workers)]

    def submit(self, method: str, items: list, join: Callable[[list], Any]) -> Pending:
        """Send ``items`` in one contiguous share per worker (empty shares are not sent)."""
        n, w = len(items), len(self.actors)
        bounds = [n * i // w for i in range(w + 1)]
        refs = [a.call.remote(method, items[lo:hi]) for a, lo, hi in zip(self.actors, bounds, bounds[1:]) if hi > lo]
        return Pending(refs, join)

    def pids(self) -> list[int]:
        return ray_module().get([a.pid.remote() for a in self.actors])
