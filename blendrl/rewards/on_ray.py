"""``kind: ray``: any reward source scored on Ray actors, the loop unchanged.

``{kind: ray, name: rm, options: {source: {kind: hf_rm, path: ...}, workers: 2, num_cpus: 1, num_gpus: 0}}``:
each worker builds the inner source from its config (its models load on the worker) and scores a contiguous share
of every batch. :meth:`RaySource.submit` returns at once, so the trainer's reference and critic passes run while
the workers score; a worker that dies mid-batch is restarted and its share scored again (:mod:`blendrl.core.workers`).
"""
from __future__ import annotations

from ..config import RewardSourceConfig
from ..config.loader import from_dict
from ..core.registries import REWARD_SOURCES
from ..core.types import Sample, Scores
from ..core.workers import Pending, WorkerPool


def _build_source(cfg: dict):
    """On the worker: the inner source from its config (as a dict: plain data crosses to the worker)."""
    return REWARD_SOURCES[cfg["kind"]](from_dict(RewardSourceConfig, cfg))


class RaySource:
    """A reward source whose ``score`` runs on a :class:`~blendrl.core.workers.WorkerPool`."""

    def __init__(self, name: str, source: dict, workers: int = 2, num_cpus: float = 1, num_gpus: float = 0,
                 address: str | None = None, max_restarts: int = 3) -> None:
        if not isinstance(source, dict) or "kind" not in source:
            raise ValueError(f"reward '{name}' (kind ray): options.source must be a reward source config with a kind")
        if source["kind"] == "ray":
            raise ValueError(f"reward '{name}' (kind ray): the inner source cannot be ray itself")
        self.name = name
        self.pool = WorkerPool(lambda: _build_source(source), workers, num_cpus, num_gpus, address, max_restarts)

    def submit(self, samples: list[Sample]) -> Pending:
        """Each worker scores its share; the shares' :class:`Scores` are put back together in order."""
        return self.pool.submit("score", samples, lambda parts: Scores.cat(
            [Scores.of(p, len(p.total) if isinstance(p, Scores) else len(p), self.name) for p in parts]))

    def score(self, samples: list[Sample]) -> Scores:
        return self.submit(samples).result()


@REWARD_SOURCES.register("ray")
def _ray_source(cfg: RewardSourceConfig) -> RaySource:
    """``options``: ``source`` (the inner source's config), ``workers``, ``num_cpus``, ``num_gpus``, ``address``
    (a Ray cluster; default ``$RAY_ADDRESS`` or a local Ray started here), ``max_restarts``."""
    options = dict(cfg.options)
    return RaySource(cfg.name or "ray", options.pop("source", None), **options)
