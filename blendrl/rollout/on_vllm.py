"""``generation.backend: vllm``: rollouts on a vLLM engine: colocated in a worker process beside the trainer (as
TRL's colocate mode and verl's hybrid engine place it), or a vLLM server that blendrl starts (``server: true``) or
one already running (``url``), as TRL's ``vllm-serve`` and prime-rl use it (:mod:`.vllm_engines`).

The engine runs under the Python of an environment that has vLLM (``options.python``, else
``$BLENDRL_VLLM_PYTHON``, else this interpreter when it can import vllm, else the ``.venv-vllm`` that
``scripts/setup_env.sh`` makes beside ``.venv``): vLLM pins its own transformers, so it gets its own environment
(docs/generation.md says why).

What makes it safe to train on:
- **Weights that cannot go stale.** :meth:`VLLMGenerator.sync_weights` (after every update and after resume) writes
  the policy's weights (LoRA merged in: ``W + ΔW`` computed aside, the trainer's module untouched) to a file in a
  private ``/dev/shm`` folder and has the engine load them, re-pack its packed embedding/LM-head copies and reset
  its prefix cache; the engine stamps every rollout with the version it sampled with and a rollout from another
  version than the trainer's is an error.
- **Log-probs.** The engine returns log-probs under ``softmax(logits / T)``. In float32 they are the training
  forward's to float rounding (``exact_logprobs``), and every ``check_every`` batches the trainer recomputes them
  and stops the run when the largest gap exceeds ``tolerance`` (``check/generator_logp_gap`` is logged); in
  bfloat16/float16 the trainer recomputes π_old itself every batch.
- **Exact resume.** Each request gets a seed drawn from the trainer's sampling generator, so a response depends on
  its prompt, its seed and the weights only (not on the batch's order or make-up), and a resumed run draws the
  same seeds.
- **A dead or hung engine** (no answer within ``timeout_s``) is killed and restarted with the current weights, and
  the same requests are sent again with the same seeds (at most ``max_restarts`` times in a row): no sample is lost
  or drawn twice.
- **Cores.** The engine runs ``threads`` OpenMP threads (default 1) pinned by vLLM, ``OMP_WAIT_POLICY=PASSIVE`` so
  an idle engine does not spin on the cores the trainer needs; ``kv_cache_gb`` bounds its KV cache (vLLM's CPU
  default would ask for most of the RAM).
Data-parallel training: each rank has its own engine and samples its rows of the global batch with the seeds one
process would give them (not with ``train.fsdp``: an engine needs whole weights). Multi-turn episodes send each
turn as token ids (the episode so far) with the turn's ``stop_ids`` as stop tokens besides EOS.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..models.layout import is_sharded
from ..models.lora import is_peft
from ..core.types import Rollout, SamplingParams
from .base import GENERATORS, empty_rollout, left_pad
from .vllm_engines import ColocatedEngine, EngineFailure, ServerEngine

DTYPES = ("float32", "bfloat16", "float16")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's max_lora_rank choices
__all__ = ["VLLMGenerator", "VLLMOptions", "EngineFailure", "merged_state_dict", "vllm_python"]


def vllm_python(python: str | None = None) -> str:
    """The interpreter that runs the engine (module doc); a clear error when none has vLLM."""
    if python:
        return python
    if os.environ.get("BLENDRL_VLLM_PYTHON"):
        return os.environ["BLENDRL_VLLM_PYTHON"]
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    sibling = Path(sys.prefix).parent / ".venv-vllm" / "bin" / "python"
    if sibling.exists():
        return str(sibling)
    raise RuntimeError("generation.backend vllm: no Python with vLLM found. Run scripts/setup_env.sh (it makes "
                       ".venv-vllm), or set generation.options.python / $BLENDRL_VLLM_PYTHON to one that has vllm")


def merged_state_dict(policy, merge: bool = True) -> dict[str, torch.Tensor]:
    """The policy's weights under the plain model's names, LoRA adapters merged in (``W + ΔW``, computed aside:
    the trainer's module is not touched; ``merge=False``: the base weights alone), one tensor per storage (a tied
    LM head is the embedding). CPU, float32."""
    base = policy.get_base_model() if is_peft(policy) else policy
    deltas = {}
    if base is not policy and merge:
        from peft.tuners.lora import LoraLayer

        for name, module in base.named_modules():
            if isinstance(module, LoraLayer):
                w = module.get_base_layer().weight
                deltas[name + ".weight"] = w + sum(module.get_delta_weight(a) for a in module.active_adapters)
    state, seen = {}, set()
    for name, tensor in base.state_dict().items():
        if ".lora_" in name or name.endswith(".modules_to_save"):
            continue
        key = name.replace(".base_layer.", ".")
        if tensor.data_ptr() in seen:  # a tied head: vLLM loads it with the embedding
            continue
        seen.add(tensor.data_ptr())
        state[key] = deltas.get(key, tensor).detach().to("cpu", torch.float32).contiguous()
    return state


def remove_orphans(parent: str) -> None:
    """Remove the weight folders of trainers that are gone (a SIGKILLed run cannot remove its own)."""
    for folder in Path(parent).glob("blendrl-vllm-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class VLLMOptions:
    """``generation.options`` of ``backend: vllm`` (module doc)."""

    python: Optional[str] = None  # the interpreter with vLLM (default: see vllm_python)
    dtype: str = "float32"  # the engine's; float32 gives the training forward's log-probs (exact_logprobs)
    max_model_len: Optional[int] = None  # prompt + response tokens (default: the model's, at most 2048)
    kv_cache_gb: int = 1  # the CPU engine's KV cache (GiB)
    threads: int = 1  # the engine's OpenMP threads (the trainer keeps train.threads)
    timeout_s: float = 600.0  # a request unanswered this long: the engine is hung (restarted)
    startup_timeout_s: float = 900.0
    max_restarts: int = 2  # restarts in a row before the run stops
    check_every: int = 10  # exact mode: recompute and compare the log-probs every N batches (0: never)
    tolerance: float = 1e-3  # exact mode: the largest gap allowed
    gpu_memory_utilization: float = 0.3  # GPU engines: the share of the card's memory vLLM may take
    enforce_eager: bool = True  # no CUDA graphs / torch.compile (start-up in seconds)
    lora_sync: str = "adapters"  # a LoRA policy: sync its adapters only (colocated), or "merged" full weights
    server: bool = False  # run the engine as a vLLM OpenAI server (started and stopped by blendrl)
    url: Optional[str] = None  # a vLLM server already running there (docs/generation.md: how to start it)

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"options.dtype: expected one of {DTYPES}, got {self.dtype!r}")
        for name in ("kv_cache_gb", "threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"options.{name}: must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.check_every, int) or self.check_every < 0 or self.max_restarts < 0:
            raise ValueError("options.check_every and options.max_restarts: must be integers >= 0")
        if not (self.tolerance > 0 and self.timeout_s > 0 and self.startup_timeout_s > 0):
            raise ValueError("options.tolerance, timeout_s and startup_timeout_s: must be > 0")
        if self.lora_sync not in ("adapters", "merged"):
            raise ValueError(f"options.lora_sync: expected adapters or merged, got {self.lora_sync!r}")
        if self.url is not None and not str(self.url).startswith(("http://", "https://")):
            raise ValueError(f"options.url: expected http(s)://host:port, got {self.url!r}")
        if self.python is not None and not os.access(self.python, os.X_OK):
            raise ValueError(f"options.python: {self.python!r} is not an executable")


def _check(node, root=None) -> None:
    VLLMOptions(**node.options).validate()


@GENERATORS.register("vllm", check=_check, options=(VLLMOptions,))
class VLLMGenerator:
    """A vLLM engine (colocated or a server) with its own copy of the policy (module doc)."""

    def __init__(self, model, pad_id: int, eos_ids: list[int], **options) -> None:
        if is_sharded(model):
            raise ValueError("generation.backend vllm: not with train.fsdp (each rank's engine needs whole weights)")
        o = VLLMOptions(**options)
        o.validate()
        self.policy, self.pad_id, self.eos_ids = model, pad_id, sorted(set(eos_ids))
        self.python, self.dtype = vllm_python(o.python), o.dtype
        self.exact_logprobs = o.dtype == "float32" and all(p.dtype == torch.float32 for p in model.parameters())
        self.check_every, self.tolerance = o.check_every, float(o.tolerance)
        self.timeout_s, self.startup_timeout_s, self.max_restarts = o.timeout_s, o.startup_timeout_s, o.max_restarts
        self.device = next(model.parameters()).device
        base = model.get_base_model() if is_peft(model) else model
        max_model_len = o.max_model_len or min(2048, getattr(base.config, "max_position_embeddings", None) or 2048)
        # LoRA: the engine holds the frozen base and loads each version's adapter (a server gets merged weights)
        self.adapters = is_peft(model) and o.lora_sync == "adapters" and not (o.server or o.url)
        rank = max(c.r for c in model.peft_config.values()) if self.adapters else 0
        lora_rank = next((r for r in LORA_RANKS if r >= rank), rank) if rank else 0  # the ranks vLLM takes
        self.engine_args = {"lora_rank": lora_rank, "max_model_len": max_model_len, "kv_cache_gb": o.kv_cache_gb,
                            "threads": o.threads, "gpu_memory_utilization": o.gpu_memory_utilization,
                            "enforce_eager": o.enforce_eager}
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        remove_orphans(shm or tempfile.gettempdir())
        self.folder = Path(tempfile.mkdtemp(prefix=f"blendrl-vllm-{os.getpid()}-", dir=shm))
        weakref.finalize(self, shutil.rmtree, self.folder, True)  # the folder goes at exit even without close()
        self.weights = self.folder / "model" / "model.safetensors"
        self.weights.parent.mkdir()
        base.config.save_pretrained(self.weights.parent)
        kind = ServerEngine if (o.server or o.url) else ColocatedEngine
        self.engine = kind(self.python, self.weights.parent, self.folder, o.dtype, self.engine_args,
                           **({"url": o.url} if o.url else {}))
        self.version, self.restarts = 0, 0
        self.sync_weights(model)

    # ------------------------------------------------------------------ the engine
    @property
    def info(self) -> dict:
        return self.engine.info

    def start(self) -> None:
        """Start the engine on the folder's weights and have it serve them as the current version."""
        self.engine.start(self.startup_timeout_s)
        self._load(self.version)

    def stop(self) -> None:
        """Kill the engine (whatever state it is in); the next request starts a fresh one."""
        self.engine.stop()

    def release(self) -> None:
        """End of a run: the engine goes; the weights folder stays (a later sample restarts the engine on it)."""
        self.stop()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def request(self, op: str, timeout: float | None = None, **kwargs):
        """One request to the engine (started if it is not); :class:`EngineFailure` when it is dead or silent past
        ``timeout``."""
        if not self.engine.running:
            self.start()
        return self.engine.request(op, self.timeout_s if timeout is None else timeout, **kwargs)

    def with_restarts(self, op: str, **kwargs):
        """``request`` that restarts a dead or hung engine (current weights) and asks again, ``max_restarts`` times
        in a row at most."""
        for attempt in range(self.max_restarts + 1):
            try:
                return self.request(op, **kwargs)
            except EngineFailure:
                self.stop()
                if attempt == self.max_restarts:
                    raise
                self.restarts += 1  # the next request starts a fresh engine (an external server: reconnects)

    # ------------------------------------------------------------------ the Generator protocol
    def _load(self, version: int) -> None:
        path = self.folder / f"adapter-{version}" if self.adapters else self.weights
        done = self.request("load", path=str(path), version=version, adapter=self.adapters)
        if done["version"] != version:
            raise RuntimeError(f"vLLM engine loaded version {done['version']}, expected {version}")
        self.sync_seconds = done["seconds"]
        for old in self.folder.glob("adapter-*"):
            if old != path:
                shutil.rmtree(old, ignore_errors=True)

    def sync_weights(self, policy) -> None:
        """Write the policy's weights (atomically) where the engine reads them and have it load them as the next
        version (module doc): a LoRA policy's adapters alone (a peft folder per version) when ``lora_sync`` is
        ``adapters``, else every weight. Returns once the engine serves them."""
        from safetensors.torch import save_file

        if self.adapters:
            if not self.weights.exists():  # the engine's base: the frozen weights, once
                save_file(merged_state_dict(policy, merge=False), str(self.weights))
            tmp = self.folder / f"adapter-{self.version + 1}.tmp"
            policy.save_pretrained(tmp)
            os.replace(tmp, self.folder / f"adapter-{self.version + 1}")
        else:
            tmp = self.weights.with_suffix(".tmp")
            save_file(merged_state_dict(policy), str(tmp))
            os.replace(tmp, self.weights)
        self.version += 1
        if not self.engine.running:
            self.start()  # loads the folder's weights as self.version
        else:
            self._load(self.version)

    def sample(self, prompts: list[list[int]], params: SamplingParams, generator: torch.Generator,
               shard=None) -> Rollout:
        # one seed per row of the whole batch (every rank draws them all and keeps its rows: one process's draws)
        n = len(prompts) if shard is None else shard.total
        seeds = torch.randint(0, 2**31 - 1, (n,), generator=generator, device=generator.device)
        if shard is not None:
            seeds = seeds[shard.rows.to(seeds.device)]
        if not prompts:  # a rank whose episodes have all ended: it drew its share of the seeds, it asks nothing
            return empty_rollout().to(self.device)
        stops = sorted(set(self.eos_ids) | set(params.stop_ids))  # an episode's turn also ends at its stop words
        out = self.with_restarts("generate", prompts=[list(p) for p in prompts], seeds=seeds.tolist(),
                                 temperature=params.temperature, top_p=params.top_p,
                                 max_tokens=params.max_new_tokens, stop_token_ids=stops)
        if out["version"] != self.version:
            raise RuntimeError(f"vLLM generator: the engine sampled with weights version {out['version']}, the "
                               f"trainer holds version {self.version} (stale weights)")
        return self.to_rollout(prompts, out["tokens"], out["logprobs"], stops)

    def to_rollout(self, prompts, tokens: list[list[int]], logprobs: list[list[float]], stops: list[int]) -> Rollout:
        """The engine's answer as a Rollout; a response is finished when it ends with one of ``stops``."""
        prompt_ids, prompt_mask = left_pad(prompts, self.pad_id)
        B, T = len(tokens), max(1, max(len(t) for t in tokens))
        ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        logp, mask = torch.zeros((B, T)), torch.zeros((B, T))
        eos = set(stops)
        for i, (t, lp) in enumerate(zip(tokens, logprobs)):
            ids[i, :len(t)] = torch.tensor(t, dtype=torch.long)
            logp[i, :len(lp)] = torch.tensor(lp)
            mask[i, :len(t)] = 1.0
        finished = torch.tensor([bool(t) and t[-1] in eos for t in tokens])
        d = self.device
        return Rollout(prompt_ids.to(d), prompt_mask.to(d), ids.to(d), mask.to(d), logp.to(d), finished.to(d))
