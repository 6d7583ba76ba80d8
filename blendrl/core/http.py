"""JSON over HTTP for the services a run calls (an OpenAI-compatible judge server, a user's reward-model or
verifier service): timeouts, retries with back-off, requests in parallel, the API key from the environment.

The key is never an argument: ``api_key_env`` names the environment variable, read at each request, so it is
never held by an object that a config, a log or a checkpoint could write out.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


class ServiceError(RuntimeError):
    """A service answered with an error, not at all, or with something that is not what it promised."""


def reject_options(unknown: dict, who: str) -> None:
    """Options a service client's constructor was given and does not take: a literal ``api_key`` is refused with
    the reason (a key in a config would be written into every checkpoint), anything else is a TypeError."""
    if "api_key" in unknown:
        raise ValueError(f"{who}: put the API key in an environment variable and name it with api_key_env (a key in "
                         f"the config would be written into every checkpoint)")
    if unknown:
        raise TypeError(f"{who}: unknown options {sorted(unknown)}")


class JsonClient:
    """POSTs JSON to ``url`` (+ a path) and reads JSON back. ``timeout_s`` per attempt; up to ``retries`` more
    attempts (0.5 s, 1 s, 2 s, ... apart) after a connection error, a timeout or a 5xx/429 answer; any other 4xx is
    the request's fault and fails at once. ``api_key_env``: the variable holding a bearer token (checked to be set
    now, read at each request)."""

    def __init__(self, url: str, timeout_s: float = 60.0, retries: int = 2, api_key_env: str | None = None,
                 who: str = "service") -> None:
        if retries < 0 or timeout_s <= 0:
            raise ValueError(f"{who}: retries must be >= 0 and timeout_s > 0")
        if api_key_env and api_key_env not in os.environ:
            raise ValueError(f"{who}: api_key_env names {api_key_env}, which is not set in the environment")
        self.url, self.timeout_s, self.retries, self.api_key_env, self.who = url.rstrip("/"), timeout_s, retries, \
            api_key_env, who

    def post(self, body: dict, path: str = ""):
        """The decoded JSON answer to ``body`` at ``url + path``; :class:`ServiceError` once the attempts are spent
        (or at once for a 4xx other than 429), naming the service, the URL and what went wrong."""
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        url = self.url + path
        request = urllib.request.Request(url, json.dumps(body).encode(), headers)
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    text = resp.read()
                break
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500 and exc.code != 429:
                    raise ServiceError(f"{self.who}: {url} answered {problem}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt == self.retries:
                raise ServiceError(f"{self.who}: {url} failed {self.retries + 1} time(s), last: {problem}") from None
            time.sleep(0.5 * 2 ** attempt)
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ServiceError(f"{self.who}: {url} answered with something that is not JSON: {text[:200]!r}") \
                from None

    def map(self, fn, items: list, concurrency: int) -> list:
        """``[fn(item) for item in items]`` with up to ``concurrency`` calls in flight, results in order."""
        if concurrency <= 1 or len(items) < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(min(concurrency, len(items))) as pool:
            return list(pool.map(fn, items))


def sample_body(samples) -> dict:
    """The request body for a batch of :class:`~blendrl.core.types.Sample` (docs/usage.md, "HTTP services"):
    ``samples`` (prompt, messages, response, metadata, finished per sample), and the same batch as OpenRLHF's remote
    reward-model servers read it: ``query`` (prompt + response, no chat template), ``prompts``, ``labels``
    (``metadata['answer']`` or null)."""
    return {
        "samples": [{"prompt": s.prompt, "messages": s.messages, "response": s.response, "metadata": s.metadata,
                     "finished": s.finished} for s in samples],
        "query": [s.prompt + s.response for s in samples],
        "prompts": [s.prompt for s in samples],
        "labels": [s.metadata.get("answer") for s in samples],
    }


def post_samples(client: JsonClient, samples: list, key: str, batch_size: int, concurrency: int) -> list:
    """The per-sample list under ``key`` of the service's answers, for ``samples`` sent ``batch_size`` a request,
    ``concurrency`` requests at a time; an answer without ``key``, or with a list of the wrong length, is a
    :class:`ServiceError`."""
    if batch_size < 1 or concurrency < 1:
        raise ValueError(f"{client.who}: batch_size and concurrency must be >= 1")
    batches = [samples[i: i + batch_size] for i in range(0, len(samples), batch_size)]

    def one(batch: list) -> list:
        answer = client.post(sample_body(batch))
        values = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(values, list) or len(values) != len(batch):
            raise ServiceError(f"{client.who}: {client.url} answered {str(answer)[:200]!r}; expected an object with "
                               f"'{key}': a list of {len(batch)} (one per sample)")
        return values

    return [v for values in client.map(one, batches, concurrency) for v in values]


def check_service_options(options: dict, cls, who: str) -> None:
    """Before any model loads: ``url`` set, no literal ``api_key``, no option ``cls`` does not take."""
    import inspect

    if "api_key" in options:
        raise ValueError("options.api_key: put the API key in an environment variable and name it with api_key_env "
                         "(a key in the config would be written into every checkpoint)")
    takes = {p.name for p in inspect.signature(cls).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD}
    unknown = sorted(set(options) - takes - {"name"})
    if unknown:
        raise ValueError(f"options.{unknown[0]}: {who} has no such option; it takes {sorted(takes - {'name'})}")
    if not isinstance(options.get("url"), str) or not options["url"].startswith(("http://", "https://")):
        raise ValueError(f"options.url: {who} needs the service's http:// or https:// URL")


class SampleService:
    """A service that answers batches of samples with one value per sample under ``key`` (the ``http`` reward
    source's scores, the ``http`` judge's verdicts): ``batch_size`` samples a request, ``concurrency`` requests
    in flight, through a :class:`JsonClient`."""

    def __init__(self, url: str, key: str, batch_size: int, concurrency: int, timeout_s: float, retries: int,
                 api_key_env: str | None, who: str) -> None:
        self.key, self.batch_size, self.concurrency = key, batch_size, concurrency
        self.client = JsonClient(url, timeout_s, retries, api_key_env, who=who)

    def post(self, samples: list) -> list:
        return post_samples(self.client, samples, self.key, self.batch_size, self.concurrency)
