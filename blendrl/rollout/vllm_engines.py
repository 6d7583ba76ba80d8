"""The two ways :mod:`.on_vllm` reaches a vLLM engine. Both answer ``request(op, timeout, **kwargs)`` for
``generate`` (token-id prompts, one seed each → tokens, log-probs and the weight version they were sampled with),
``load`` (a safetensors file → the engine serves it as ``version``) and ``ping``, raise :class:`EngineFailure` when
the engine is dead or silent (the generator restarts it), and ``RuntimeError`` with the engine's own message when it
reports an error.

- :class:`ColocatedEngine`: ``vllm_side/blendrl_vllm.py`` in a worker process, the engine inside it, over a Unix
  socket (``multiprocessing.connection``, a random auth key passed through the environment).
- :class:`ServerEngine`: a vLLM OpenAI server, started here (a free local port, a random API key) or already
  running at ``url`` (its key from ``$BLENDRL_VLLM_API_KEY``). It must run with ``VLLM_SERVER_DEV_MODE=1``,
  ``--enable-scale-out`` (the token-in/token-out ``/inference/v1/generate`` route, whose answers carry the weight
  version of each token span), ``--logprobs-mode processed_logprobs`` and ``--worker-extension-cls
  blendrl_vllm.WeightSync`` with ``vllm_side/`` on its ``PYTHONPATH``; the weights file must be readable by it (the
  same machine).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Listener
from pathlib import Path

SIDE = Path(__file__).with_name("vllm_side")  # what runs under vLLM's Python (imports no blendrl)
ENGINE_SCRIPT = SIDE / "blendrl_vllm.py"


class EngineFailure(RuntimeError):
    """The engine died or did not answer in time (restartable), as opposed to an error it reported."""


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def engine_env(args: dict, **extra: str) -> dict:
    """The engine's environment: ours without PYTHONPATH, its threads (passive when idle), its KV cache."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"VLLM_CPU_KVCACHE_SPACE": str(int(args["kv_cache_gb"])), "OMP_NUM_THREADS": str(args["threads"]),
                "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false", "VLLM_NO_USAGE_STATS": "1",
                "VLLM_DO_NOT_TRACK": "1", **extra})
    return env


class _Process:
    """A child process in its own session, its output in ``folder/engine.log``, killed with its group."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.proc, self.log, self.info, self.up = folder, None, None, {}, False

    def launch(self, cmd: list[str], env: dict) -> None:
        self.log = open(self.folder / "engine.log", "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     start_new_session=True, preexec_fn=_die_with_parent)

    def stop(self) -> None:
        self.up = False
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
            self.log.close()

    @property
    def running(self) -> bool:
        """Started and not stopped since (an external server: reached)."""
        return self.up

    def log_tail(self, n: int = 3000) -> str:
        path = self.folder / "engine.log"
        return path.read_bytes()[-n:].decode(errors="replace") if path.exists() else ""


class ColocatedEngine(_Process):
    def __init__(self, python: str, model_dir: Path, folder: Path, dtype: str, args: dict) -> None:
        super().__init__(folder)
        self.python, self.model_dir, self.dtype, self.args, self.conn = python, model_dir, dtype, args, None

    def start(self, timeout: float) -> None:
        a, address, key = self.args, str(self.folder / "engine.sock"), secrets.token_bytes(32)
        listener = Listener(address, family="AF_UNIX", authkey=key)
        cmd = [self.python, str(ENGINE_SCRIPT), "--address", address, "--model", str(self.model_dir),
               "--dtype", self.dtype, "--max-model-len", str(a["max_model_len"]),
               "--gpu-memory-utilization", str(a["gpu_memory_utilization"]), "--lora-rank", str(a["lora_rank"])
               ] + (["--eager"] * a["enforce_eager"])
        self.launch(cmd, engine_env(a, BLENDRL_VLLM_AUTHKEY=key.hex(), VLLM_ENABLE_V1_MULTIPROCESSING="0"))
        accepted: list = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        thread.start()
        thread.join(timeout)
        listener.close()
        if not accepted:
            self.stop()
            raise EngineFailure(f"vLLM engine did not connect within {timeout} s:\n{self.log_tail()}")
        self.conn = accepted[0]
        self.info = self._receive("start", timeout)
        self.up = True

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        super().stop()

    def request(self, op: str, timeout: float, **kwargs):
        try:
            self.conn.send((op, kwargs))
        except (OSError, EOFError) as e:
            raise EngineFailure(f"vLLM engine: could not send {op}: {e}") from e
        return self._receive(op, timeout)

    def _receive(self, op: str, timeout: float):
        try:
            if not self.conn.poll(timeout):
                raise EngineFailure(f"vLLM engine: no answer to {op} within {timeout} s")
            status, result = self.conn.recv()
        except (OSError, EOFError) as e:
            raise EngineFailure(f"vLLM engine died during {op}:\n{self.log_tail()}") from e
        if status != "ok":
            raise RuntimeError(f"vLLM engine: {op} failed:\n{result}")
        return result


class ServerEngine(_Process):
    def __init__(self, python: str, model_dir: Path, folder: Path, dtype: str, args: dict,
                 url: str | None = None) -> None:
        super().__init__(folder)
        self.python, self.model_dir, self.dtype, self.args = python, model_dir, dtype, args
        self.external = url is not None
        self.url = url.rstrip("/") if url else None
        self.key = os.environ.get("BLENDRL_VLLM_API_KEY", "") if self.external else secrets.token_hex(16)

    def start(self, timeout: float) -> None:
        if not self.external:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            a = self.args
            self.url = f"http://127.0.0.1:{port}"
            cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                   "--host", "127.0.0.1", "--port", str(port), "--dtype", self.dtype,
                   "--max-model-len", str(a["max_model_len"]), "--seed", "0", "--skip-tokenizer-init",
                   "--logprobs-mode", "processed_logprobs", "--enable-prefix-caching", "--enable-scale-out",
                   "--worker-extension-cls", "blendrl_vllm.WeightSync",
                   "--gpu-memory-utilization", str(a["gpu_memory_utilization"])] + (["--enforce-eager"] *
                                                                                    a["enforce_eager"])
            self.launch(cmd, engine_env(a, VLLM_SERVER_DEV_MODE="1", PYTHONPATH=str(SIDE), VLLM_API_KEY=self.key))
        deadline = time.time() + timeout
        while True:
            try:
                self._call("GET", "/health", None, 5)
                break
            except EngineFailure:
                if time.time() > deadline or (self.proc is not None and self.proc.poll() is not None):
                    self.stop()
                    raise EngineFailure(f"vLLM server at {self.url} did not come up within {timeout} s:\n"
                                        f"{self.log_tail()}") from None
                time.sleep(0.5)
        self.info = {"url": self.url, "pid": self.proc.pid if self.proc else None, "external": self.external}
        self.up = True

    def _call(self, method: str, path: str, body, timeout: float):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.key}"} if self.key else {})}
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:  # the server answered: its own error, not a dead server
            raise RuntimeError(f"vLLM server {path}: HTTP {e.code}: {e.read()[:2000].decode(errors='replace')}")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise EngineFailure(f"vLLM server {self.url}{path}: {e}") from e
        return json.loads(raw) if raw else None

    def request(self, op: str, timeout: float, **kw):
        if op == "ping":
            self._call("GET", "/health", None, timeout)
            return {}
        if op == "load":
            start = time.perf_counter()
            self._call("POST", "/collective_rpc", {"method": "blendrl_load", "args": [
                kw["path"], "0" if "repack" in kw.get("skip", ()) else "1"]}, timeout)
            if "reset_prefix_cache" not in kw.get("skip", ()):
                self._call("POST", "/reset_prefix_cache", {}, timeout)
            self._call("POST", "/update_weight_version", {"new_version": str(kw["version"])}, timeout)
            return {"version": kw["version"], "seconds": time.perf_counter() - start}
        if op != "generate":
            raise RuntimeError(f"vLLM server: no operation {op!r}")
        sampling = {"temperature": kw["temperature"], "top_p": kw["top_p"], "max_tokens": kw["max_tokens"],
                    "logprobs": 0, "stop_token_ids": kw["stop_token_ids"], "ignore_eos": True, "detokenize": False}

        def one(prompt_seed):
            body = {"token_ids": prompt_seed[0], "sampling_params": {**sampling, "seed": prompt_seed[1]},
                    "output_mode": "tokens"}
            return self._call("POST", "/inference/v1/generate", body, timeout)["choices"][0]

        with ThreadPoolExecutor(max_workers=min(64, len(kw["prompts"]))) as pool:  # the server batches them
            choices = list(pool.map(one, zip(kw["prompts"], kw["seeds"])))
        versions = {span["version"] for c in choices for span in (c.get("weight_versions") or [])}
        version = int(versions.pop()) if len(versions) == 1 and next(iter(versions)).isdigit() else -1
        return {"version": version, "tokens": [c["token_ids"] for c in choices],
                "logprobs": [[step["logprob"] for step in c["logprobs"]["content"]] for c in choices]}
