"""``generation.backend: ray``: rollouts on a Ray actor that holds its own copy of the policy.

The actor rebuilds the policy's architecture from its config and loads the trainer's weights; after every update
(and after resume) :meth:`RayGenerator.sync_weights` sends the new state dict. Sampling uses the trainer's seeded
``torch.Generator``: its state goes to the actor and comes back advanced, so the draws are those of sampling in
the trainer's process. ``options: {dtype: bfloat16}`` keeps a lower-precision copy: its log-probs are then not the
training forward's (``exact_logprobs = False``) and the trainer recomputes them. ``num_cpus``/``num_gpus`` place
the actor (a GPU copy decodes there while the trainer's device trains). Not with data-parallel training (each
rank would need its own actor and a collective the actor cannot join), nor with LoRA (the copy holds merged
weights only).
"""
from __future__ import annotations

import torch

from ..core import dist
from ..core.types import Rollout, SamplingParams
from ..core.workers import ensure_ray, ray_module
from .base import GENERATORS


class _GeneratorActor:
    def __init__(self, config: dict, model_type: str, pad_id: int, eos_ids: list[int], dtype: str) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM

        from .hf import HFGenerator

        torch.set_num_threads(1)
        cfg = AutoConfig.for_model(model_type, **config)
        self.dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.model = AutoModelForCausalLM.from_config(cfg).to(self.dtype).eval()
        self.generator = HFGenerator(self.model, pad_id, eos_ids)
        self.version = -1

    def load(self, state: dict, version: int) -> int:
        self.model.load_state_dict({k: v.to(self.dtype) for k, v in state.items()})
        self.version = version
        return version

    def sample(self, prompts: list[list[int]], params: SamplingParams, gen_state: torch.Tensor):
        gen = torch.Generator()
        gen.set_state(gen_state)
        rollout = self.generator.sample(prompts, params, gen)
        return rollout, gen.get_state(), self.version


@GENERATORS.register("ray")
class RayGenerator:
    """A generator on a Ray actor with its own copy of the policy (module doc)."""

    def __init__(self, model, pad_id: int, eos_ids: list[int], dtype: str = "float32", num_cpus: float = 1,
                 num_gpus: float = 0, address: str | None = None) -> None:
        if dist.active():
            raise ValueError("generation.backend ray: not with data-parallel training (use backend hf there)")
        if hasattr(model, "peft_config"):
            raise ValueError("generation.backend ray: not with LoRA (the actor's copy holds plain weights)")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"generation.options.dtype: expected float32, bfloat16 or float16, got {dtype!r}")
        ray = ray_module()
        ensure_ray(address)
        self.exact_logprobs = dtype == "float32" and all(p.dtype == torch.float32 for p in model.parameters())
        self.check_every, self.tolerance = 0, float("inf")  # the same module code and weights: nothing to check
        self.device = next(model.parameters()).device
        config = {k: v for k, v in model.config.to_dict().items() if k not in ("model_type", "architectures")}
        actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_GeneratorActor)
        self.actor = actor.remote(config, model.config.model_type, pad_id, list(eos_ids), dtype)
        self.version = 0
        self.sync_weights(model)

    def sync_weights(self, policy) -> None:
        """Send the policy's current weights; returns once the actor holds them."""
        ray = ray_module()
        self.version += 1
        state = {k: v.detach().to("cpu", copy=True) for k, v in policy.state_dict().items()}
        ray.get(self.actor.load.remote(ray.put(state), self.version))

    def release(self) -> None:
        """The actor stays: it belongs to the Ray cluster's lifetime, and a later sample reuses it."""

    def sample(self, prompts: list[list[int]], params: SamplingParams, generator: torch.Generator,
               shard=None) -> Rollout:
        if shard is not None:
            raise ValueError("generation.backend ray: no data-parallel sampling (use backend hf there)")
        rollout, state, version = ray_module().get(self.actor.sample.remote(prompts, params, generator.get_state()))
        if version != self.version:
            raise RuntimeError(f"ray generator: the actor sampled with weights {version}, the trainer is at "
                               f"{self.version}")
        generator.set_state(state)
        return rollout.to(self.device)
