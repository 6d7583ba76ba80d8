"""Build a trainer from a config and run it: evaluation before and after, logging, checkpoints, resume."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from ..core import dist, malloc
from ..algorithms import build_algorithm
from ..core.types import eos_ids
from ..config import ConfigError, PPORunConfig, to_dict
from ..config.schema import PerfConfig
from ..data import load_prompt_set
from ..models import add_lora, load_causal_lm, load_critic, load_tokenizer, resolve_model
from ..models.checkpointing import enable_checkpointing
from ..models.layout import is_sharded
from ..models.tied_grads import accumulate_tied_grads_in_place
from ..rewards import build_reward
from ..rollout import GENERATORS, cpu_gemm
from .checkpoint import find_checkpoint, load_trainer_state, load_weights, save_checkpoint
from . import fsdp
from .driver import RunPlan, RunReport, export_pretrained, fmt_metrics, run_loop  # RunReport: also imported from here
from .names import check_names
from .reference import build_reference
from .trainer import Models, RLTrainer


@dataclass
class PolicyStack:
    policy: object
    tokenizer: object
    reference: object
    generator: object


def effective_perf(perf: PerfConfig, device: torch.device, mixed_precision: str = "no",
                   sharded: bool = False) -> PerfConfig:
    """``perf`` with the switches that do not apply here turned off, each said once in the log: the lean layers'
    hand-written backwards under mixed precision or sharding, in-place tied gradients under sharding (FSDP reduces
    what autograd hands it), the CPU decode kernel off the CPU."""
    off = {}
    if perf.lean_layers and (mixed_precision != "no" or sharded):
        off["lean_layers"] = False
    if perf.tied_grads_in_place and sharded:
        off["tied_grads_in_place"] = False
    if device.type != "cpu" and perf.cpu_kernels:
        off["cpu_kernels"] = False
    if off:
        logging.getLogger("blendrl").info("perf: %s off (device %s, mixed precision %s, fsdp %s)", ", ".join(off),
                                          device, mixed_precision, sharded)
    return replace(perf, **off)


def build_policy_stack(model_cfg, reference_cfg, generation_cfg, perf: PerfConfig,
                       device: torch.device | None = None, tokenizer=None) -> PolicyStack:
    """The policy on ``device`` (with LoRA when configured; with ``perf.tied_grads_in_place`` a tied
    embedding/head accumulating its gradient in place, :mod:`blendrl.models.tied_grads`), its tokenizer (loaded
    here unless the caller already holds it), the reference strategy and the generator."""
    device = device or torch.device("cpu")
    policy_path = resolve_model(model_cfg.name)
    tokenizer = tokenizer or load_tokenizer(policy_path, model_cfg.hub)
    policy = load_causal_lm(policy_path, model_cfg.dtype, lean=perf.lean_layers, hub=model_cfg.hub).to(device)
    if perf.tied_grads_in_place:
        accumulate_tied_grads_in_place(policy)  # a tied embedding/head: one (V, H) gradient buffer, not three
    if model_cfg.gradient_checkpointing:
        enable_checkpointing(policy)
    if model_cfg.lora is not None:
        policy = add_lora(policy, model_cfg.lora)
    reference = build_reference(policy, reference_cfg, model_cfg.dtype, model_cfg.offload_reference)
    stop_ids = eos_ids(tokenizer, policy) if generation_cfg.stop_at_eos else []
    generator = GENERATORS[generation_cfg.backend](policy, tokenizer.pad_token_id, stop_ids,
                                                   **generation_cfg.options)
    return PolicyStack(policy, tokenizer, reference, generator)


def set_up_torch(threads: int | None, seed: int, perf: PerfConfig) -> None:
    """Process-wide settings of a run: torch threads, the global seed, and the process-wide ``perf`` switches
    (malloc's ``freed_memory``, the CPU decode kernel)."""
    if threads:
        torch.set_num_threads(threads)
    malloc.configure(perf.freed_memory)
    cpu_gemm.ENABLED = perf.cpu_kernels and cpu_gemm.ENV_ENABLED
    torch.manual_seed(seed)


def build_trainer(cfg: PPORunConfig, resume: str | None = None, trainer_cls: type = RLTrainer,
                  parts: Callable | None = None) -> RLTrainer:
    """Everything from the config: models, prompts, reward, generator, algorithm, and the resumed state
    (``trainer_cls``: RLTrainer or a subclass that changes what it evaluates). ``parts(models, placement) ->
    (reward, train_prompts)``: what the caller builds from the loaded models in place of ``cfg.rewards`` and
    ``data.prompts`` (summed-reward PPO builds them from a CGPO config's tasks)."""
    if parts is None and not cfg.rewards:
        raise ConfigError("rewards: at least one reward source is required")
    check_names(cfg)
    if dist.init_from_env() and cfg.train.prompts_per_iteration % dist.world():
        raise ConfigError(f"train.prompts_per_iteration: {cfg.train.prompts_per_iteration} prompts do not split over "
                          f"{dist.world()} ranks (each rank samples an equal share)")
    device = dist.resolve_device(cfg.model.device)
    sharded = cfg.train.fsdp and dist.active()
    if sharded:
        fsdp.check_supported(cfg)
    perf = effective_perf(cfg.perf, device, cfg.train.mixed_precision, sharded)
    set_up_torch(cfg.train.threads, cfg.train.seed, perf)
    d = cfg.data  # the prompts are read and checked (rows, fields, lengths) before any model loads
    tokenizer = load_tokenizer(resolve_model(cfg.model.name), cfg.model.hub)
    train_prompts = load_prompt_set(d.prompts, tokenizer, d, d.system_prompt) if parts is None else None
    eval_prompts = load_prompt_set(d.eval_prompts, tokenizer, d, d.system_prompt) if d.eval_prompts else []
    stack = build_policy_stack(cfg.model, cfg.reference, cfg.generation, perf, device, tokenizer)
    policy, tokenizer, reference = stack.policy, stack.tokenizer, stack.reference
    algorithm = build_algorithm(cfg.algorithm, cfg.kl, cfg.train.samples_per_prompt, cfg.regularizer,
                                cfg.generation.max_new_tokens)
    backbone = cfg.critic.path or cfg.model.name
    critic = build_critic(backbone, cfg, perf, device) if algorithm.needs_critic else None
    cost_critic = build_critic(cfg.critic.cost_path or backbone, cfg, perf, device) \
        if algorithm.needs_cost_critic else None
    models = Models(policy, tokenizer, critic, reference, cost_critic)
    if parts is None:
        reward = build_reward(cfg.rewards, cfg.model.placement(device))
    else:
        reward, train_prompts = parts(models, cfg.model.placement(device))
    costs = build_reward(cfg.costs, cfg.model.placement(device)) if cfg.costs else None
    critics = {"critic": critic, "cost_critic": cost_critic}
    ckpt = resume_weights(resume, policy, reference, critics) if resume else None  # before sharding: whole weights
    if sharded:  # the reference is already an unsharded copy (or a model of its own)
        for model in (policy, critic, cost_critic):
            if model is not None:
                fsdp.shard(model)
    trainer = trainer_cls(cfg, models, reward, stack.generator, algorithm, train_prompts, eval_prompts, costs,
                          build_episodes(cfg, stack.generator, tokenizer))
    if ckpt is not None:
        trainer.load_state_dict(*load_trainer_state(ckpt))
        stack.generator.sync_weights(policy)
    return trainer


def build_critic(path: str, cfg: PPORunConfig, perf: PerfConfig, device: torch.device):
    """A value model (a 1-label token-classification head) on the backbone at ``path``, with the run's dtype,
    gradient checkpointing and ``critic.lora``."""
    critic = load_critic(resolve_model(path), cfg.model.dtype, lean=perf.lean_layers).to(device)
    if cfg.model.gradient_checkpointing:
        enable_checkpointing(critic)
    if cfg.critic.lora is not None:
        critic = add_lora(critic, cfg.critic.lora, task_type="TOKEN_CLS")
    return critic


def build_episodes(cfg: PPORunConfig, generator, tokenizer):
    """The EpisodeRunner of ``environment`` (None for one response per prompt)."""
    factory = episode_factory(cfg.environment, tokenizer, cfg.generation.max_new_tokens)
    return None if factory is None else factory(generator)


def episode_factory(e, tokenizer, default_tokens: int):
    """``generator -> EpisodeRunner`` for the EnvironmentConfig ``e`` (the environment built once), or None for
    kind ``none``. ``default_tokens``: a turn's token limit when ``e`` sets none."""
    if e.kind == "none":
        return None
    from ..envs import ENVIRONMENTS, EpisodeRunner, EpisodeSettings

    per_turn = e.max_tokens_per_turn or default_tokens
    stops = []
    for i, word in enumerate(e.stop_words):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(f"environment.stop_words[{i}]: {word!r} is {len(ids)} tokens; a stop word is one token")
        stops += ids
    settings = EpisodeSettings(e.max_turns, per_turn, e.max_total_tokens or e.max_turns * per_turn, tuple(stops))
    env = ENVIRONMENTS[e.kind](**e.options)
    return lambda generator: EpisodeRunner(generator, tokenizer, env, settings)


def resume_weights(resume: str, policy, reference, critics: dict | None = None) -> Path:
    """Load policy (and critics: folder name → model or None, and a moving reference) weights from the checkpoint
    ``--resume`` points to."""
    ckpt = find_checkpoint(resume)
    load_weights(policy, ckpt / "policy")
    for name, critic in (critics or {}).items():
        if critic is not None:
            load_weights(critic, ckpt / name)
    if reference.needs_saving:
        reference.load(ckpt / "reference")
    return ckpt


def _weights(model) -> dict | None:
    """A sharded model's whole state dict (a collective), or None: ``save_pretrained`` reads the model itself."""
    return None if model is None or not is_sharded(model) else fsdp.full_state_dict(model)



def save(trainer: RLTrainer, out: Path) -> Path | None:
    """Every rank calls it (a sharded model's weights and optimizer state are gathered); rank 0 writes."""
    state, optim = trainer.state_dict()
    critics = {name: model for name in ("critic", "cost_critic") if (model := getattr(trainer.m, name)) is not None}
    weights = {name: _weights(model) for name, model in {"policy": trainer.m.policy, **critics}.items()}
    if not dist.is_main():
        return None
    return save_checkpoint(
        out / "checkpoints", trainer.iteration, policy=trainer.m.policy, tokenizer=trainer.m.tokenizer,
        critics=critics, reference=trainer.m.reference, optim_state=optim, trainer_state=state,
        config=to_dict(trainer.cfg), keep=trainer.cfg.logging.keep_checkpoints, state_dicts=weights,
    )


def export_final(trainer: RLTrainer, out: Path) -> Path | None:
    """The trained policy as a plain ``save_pretrained`` folder (LoRA adapters merged into a copy). Every rank calls
    it (a sharded policy is gathered); rank 0 writes."""
    weights = _weights(trainer.m.policy)
    if not dist.is_main():
        return None
    return export_pretrained(trainer.m.policy, trainer.m.tokenizer, out / "final", weights)


def drive(trainer, cfg, report: RunReport, stop_after: int | None = None) -> dict:
    """An RL trainer (``step``/``evaluate``/``iteration``) through the one run loop
    (:func:`~blendrl.training.driver.run_loop`): ``train.iterations`` iterations, held-out evaluation on
    ``logging.eval_prompts`` prompts before (``logging.eval_before``), every ``logging.eval_every`` iterations and
    after, checkpoints ``checkpoints/iter-NNNNNN`` and the exported policy ``final/``. Stops early after
    ``stop_after`` iterations of this call. Returns before/after/last/final/trainer. In a data-parallel run every
    rank steps; rank 0 alone evaluates (every rank, for a sharded policy), logs and writes checkpoints."""
    lg = cfg.logging
    plan = RunPlan(
        total=cfg.train.iterations, save=lambda out: save(trainer, out),
        export=lambda out, _: {"final": export_final(trainer, out)},
        evaluate=(lambda: trainer.evaluate(lg.eval_prompts)) if report.has_eval else None,
        eval_every=lg.eval_every, eval_before=lg.eval_before, collective_eval=is_sharded(trainer.m.policy))
    try:
        return run_loop(trainer, cfg, report, plan, stop_after)
    finally:
        trainer.generator.release()  # an engine process goes now (it restarts if the trainer samples again)


def ppo_report(has_eval: bool, eval_text: Callable[[str, dict], str] | None = None) -> RunReport:
    """How a PPO-family run shows itself: reward, KL and seconds per iteration; the held-out reward before/after."""

    def reward_text(label: str, m: dict) -> str:
        keys = ["eval/reward/mean", "eval/response/length", "eval/response/eos_rate"] if label == "before" else \
            ["eval/reward/mean", "eval/kl/seq_k1", "eval/response/length"]
        return f"[eval {label}] {fmt_metrics(m, keys)}"

    return RunReport(
        has_eval=has_eval,
        progress=lambda m: {"reward": m["reward/mean"], "kl": m["kl/seq_k1"], "s/it": m["time/iteration_s"]},
        step_line=lambda m: fmt_metrics(m, ["reward/mean", "kl/seq_k1", "response/length", "time/iteration_s"]),
        eval_text=eval_text or reward_text,
    )


def run(cfg: PPORunConfig, resume: str | None = None, stop_after: int | None = None) -> dict:
    """Train for ``cfg.train.iterations`` (or until ``stop_after`` iterations of this call)."""
    trainer = build_trainer(cfg, resume)
    return drive(trainer, cfg, ppo_report(bool(trainer.eval_prompts)), stop_after)
