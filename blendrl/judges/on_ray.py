"""``kind: ray``: any judge run on Ray actors (``{kind: ray, name: code, options: {judge: {kind: code, options:
{...}}, workers: 2, num_cpus: 1}}``). Each worker builds the inner judge (a code judge's sandbox runs on the
worker's machine) and judges a contiguous share of the batch; a dead worker is restarted and its share judged
again (:mod:`blendrl.core.workers`)."""
from __future__ import annotations

from .registry import JUDGES
from ..core.types import Sample
from ..core.workers import WorkerPool
from .base import Verdicts


def _build_judge(spec: dict):
    return JUDGES[spec["kind"]](name=spec.get("name") or spec["kind"], **spec.get("options", {}))


class RayJudge:
    def __init__(self, name: str, judge: dict, workers: int = 2, num_cpus: float = 1, num_gpus: float = 0,
                 address: str | None = None, max_restarts: int = 3) -> None:
        if not isinstance(judge, dict) or "kind" not in judge or judge["kind"] == "ray":
            raise ValueError(f"judge '{name}' (kind ray): options.judge must be another judge's config with a kind")
        self.name = name
        self.pool = WorkerPool(lambda: _build_judge(judge), workers, num_cpus, num_gpus, address, max_restarts)

    def judge(self, samples: list[Sample]) -> Verdicts:
        """The workers' verdicts in order; their batch statistics (counts) added up."""
        def merge(parts) -> Verdicts:
            stats: dict[str, float] = {}
            for part in parts:
                for k, v in getattr(part, "stats", {}).items():
                    stats[k] = stats.get(k, 0.0) + v
            return Verdicts([v for part in parts for v in part], stats)

        return self.pool.submit("judge", samples, merge).result()


@JUDGES.register("ray", options=(RayJudge,))
def ray_judge(name: str = "ray", **options) -> RayJudge:
    """Options: ``judge`` (the inner judge: ``{kind, name, options}``), ``workers``, ``num_cpus``, ``num_gpus``,
    ``address``, ``max_restarts``."""
    return RayJudge(name, options.pop("judge", None), **options)
