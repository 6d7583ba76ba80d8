"""A judge that asks an HTTP verifier service a user already runs: ``kind: http``. The request is the reward
source's (docs/usage.md, "HTTP services"); the answer holds one verdict per sample. It fails closed: a verdict
that is not ``{"passed": true|false, ...}`` is a violation, never a pass."""
from __future__ import annotations

from ..core.http import SampleService, check_service_options, reject_options
from ..core.types import Sample
from .base import Verdict, Verdicts
from .registry import JUDGES


class HTTPJudge:
    """``url``: where batches of samples are POSTed; the answer's ``verdict_key`` list (default ``verdicts``) holds
    ``{"passed": bool, "reason": str}`` per sample. Anything else in a sample's place (a bare bool, a string, a
    ``passed`` that is not a bool) is a violation with the reason "malformed verdict", counted in the stats. A
    service that fails (after ``retries``) or answers the wrong number of verdicts stops the run: that is not the
    policy's doing. Options as :class:`~blendrl.rewards.http.HTTPReward`."""

    def __init__(self, url: str, name: str = "http", verdict_key: str = "verdicts", batch_size: int = 16,
                 concurrency: int = 4, timeout_s: float = 60.0, retries: int = 2, api_key_env: str | None = None,
                 **unknown) -> None:
        reject_options(unknown, f"judge '{name}'")
        self.name = name
        self.service = SampleService(url, verdict_key, batch_size, concurrency, timeout_s, retries, api_key_env,
                                     f"judge '{name}'")

    def judge(self, samples: list[Sample]) -> Verdicts:
        values = self.service.post(samples)
        out, malformed = [], 0
        for v in values:
            if isinstance(v, dict) and isinstance(v.get("passed"), bool):
                out.append(Verdict(v["passed"], str(v.get("reason", ""))[:500]))
            else:
                malformed += 1
                out.append(Verdict(False, f"malformed verdict from the service: {str(v)[:100]!r}"))
        return Verdicts(out, {"malformed": malformed})


@JUDGES.register("http", check=lambda node, root=None: check_service_options(node.options, HTTPJudge,
                                                                                  "judge kind 'http'"))
def http_judge(name: str = "http", **options):
    """Options: ``url`` (required), ``verdict_key``, ``batch_size``, ``concurrency``, ``timeout_s``, ``retries``,
    ``api_key_env``."""
    return HTTPJudge(name=name, **options)
