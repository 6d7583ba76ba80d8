"""Build the CGPO trainer from a config and run it: per-task held-out evaluation before and after, logging,
checkpoints, resume."""
from __future__ import annotations

from pathlib import Path

import torch

from ...config.cgpo_schema import CGPORunConfig
from ...rollout import GENERATORS, decode_responses
from ...config import ConfigError
from ...core import dist
from ...core.seeds import seed_of, stream
from .tasks import TaskRuntime, build_task, use_generated_baselines
from .trainer import CGPOTrainer
from ..checkpoint import load_trainer_state
from ..experience import Experience
from ...core.types import ModelPlacement, eos_ids
from ..names import check_names
from ..reference import Reference
from ..run import (RunReport, build_policy_stack, drive, effective_perf, episode_factory, resume_weights,
                   set_up_torch)
from ..trainer import Models


def reference_sampler(cfg: CGPORunConfig, tokenizer, policy, reference):
    """A sampler over the reference policy's weights (use it inside ``reference.context()``): where ā comes from."""
    stop_ids = eos_ids(tokenizer, policy) if cfg.generation.stop_at_eos else []
    model, backend, options = reference.model_for_forward(), cfg.generation.backend, cfg.generation.options
    if backend != "hf" and (model is policy or type(reference).after_update is not Reference.after_update):
        # a backend's copy of the weights would not follow LoRA adapters switched off in context() or an EMA
        # reference's moves: ā is sampled from the module itself
        backend, options = "hf", {}
    if backend == "hf":
        return GENERATORS[backend](model, tokenizer.pad_token_id, stop_ids, **options)
    with reference.context():  # an offloaded reference holds its weights only here: the copy is taken now
        return GENERATORS[backend](reference.model_for_forward(), tokenizer.pad_token_id, stop_ids, **options)


def baseline_generator(sampler, reference, tokenizer, task, seed: int, batch_size: int, held):
    """``generate(prompts) -> (texts, finished)``: ā sampled from the *reference* policy (CGPO eq. 5, option 2:
    ā ~ π_ref) when a prompt is first used; ``finished``: each ā ended with EOS. Seeded like the trainer's batched
    draws (the ``baselines`` stream at ``held()``, the number of ā the run holds), so a resumed run draws the same."""

    @torch.no_grad()
    def generate(prompts) -> tuple[list[str], list[bool]]:
        gen = stream(seed, "baselines", held())
        texts, finished = [], []
        for i in range(0, len(prompts), batch_size):
            with reference.context():
                rollout = sampler.sample([p.input_ids for p in prompts[i: i + batch_size]], task.params, gen)
            texts += decode_responses(tokenizer, Experience.from_rollout(rollout))
            finished += rollout.finished.tolist()
        return texts, finished

    return generate


def build_tasks(cfg: CGPORunConfig, tokenizer, reference, sampler, placement: ModelPlacement) -> list[TaskRuntime]:
    """The config's tasks at run time, their reward sources built with the run's ``placement``; ``calibration:
    generate`` tasks sample ā from ``reference`` (with ``sampler``, see :func:`reference_sampler`) on first use and
    cache it under ``logging.output_dir/baselines/``."""
    tasks = [build_task(t, tokenizer, cfg.data, cfg.generation.max_new_tokens, cfg.generation,
                        seed_of(cfg.train.seed, "prompts", i),
                        placement) for i, t in enumerate(cfg.tasks)]
    out = Path(cfg.logging.output_dir)
    held = lambda: sum(len(t.baselines) for t in tasks)  # noqa: E731 - the ā of every task, the draws' step
    for task in tasks:
        if task.cfg.calibration.baseline == "generate":
            use_generated_baselines(task, out / "baselines" / f"{task.name}.json",
                                    baseline_generator(sampler, reference, tokenizer, task, cfg.train.seed,
                                                       cfg.train.forward_batch_size, held))
    return tasks


def build_cgpo_trainer(cfg: CGPORunConfig, resume: str | None = None) -> CGPOTrainer:
    check_names(cfg)
    if dist.init_from_env():
        if cfg.train.fsdp:
            raise ConfigError("train.fsdp: blendrl cgpo trains data-parallel with whole models on every rank; "
                              "sharding covers blendrl ppo so far")
        uneven = [t.name for t in cfg.tasks if t.prompts_per_iteration % dist.world()]
        if uneven:
            raise ConfigError(f"tasks {uneven}: prompts_per_iteration does not split over {dist.world()} ranks")
    device = dist.resolve_device(cfg.model.device)
    perf = effective_perf(cfg.perf, device, cfg.train.mixed_precision)
    set_up_torch(cfg.train.threads, cfg.train.seed, perf)
    stack = build_policy_stack(cfg.model, cfg.reference, cfg.generation, perf, device)
    sampler = reference_sampler(cfg, stack.tokenizer, stack.policy, stack.reference)
    tasks = build_tasks(cfg, stack.tokenizer, stack.reference, sampler, cfg.model.placement(device))
    for task in tasks:  # a task's environment: episodes with whichever generator samples it (policy, reference)
        task.episodes = episode_factory(task.cfg.environment, stack.tokenizer, task.params.max_new_tokens)
    trainer = CGPOTrainer(cfg, Models(stack.policy, stack.tokenizer, None, stack.reference), stack.generator, tasks,
                          sampler)
    if resume:
        trainer.load_state_dict(*load_trainer_state(resume_weights(resume, stack.policy, stack.reference)))
    return trainer


def eval_table(metrics: dict, tasks) -> str:
    """One line per task: reward, calibrated reward, pass rate of all judges and of each, KL, length, and the
    hacking signals (:mod:`~blendrl.judges.signals`)."""
    lines = []
    for t in tasks:
        p = f"eval/{t.name}/"
        if p + "reward/mean" not in metrics:
            continue
        judges = "  ".join(f"{n}={metrics[p + 'judge/' + n]:.2f}" for n in t.judges.names)
        lines.append(f"  {t.name:<14} reward={metrics[p + 'reward/mean']:.3f}"
                     f"  calibrated={metrics[p + 'reward/calibrated']:.3f}"
                     f"  pass={metrics[p + 'pass_rate']:.2f}  {judges}  kl={metrics[p + 'kl/seq_k1']:.2f}"
                     f"  len={metrics[p + 'response/length']:.1f}  injection={metrics[p + 'hack/injection']:.2f}"
                     f"  repetition={metrics[p + 'hack/repetition']:.2f}"
                     f"  truncated={metrics[p + 'hack/truncated']:.2f}")
    return "\n".join(lines)


def cgpo_report(tasks) -> RunReport:
    """How a CGPO run shows itself: per task reward, pass rate and KL; the per-task evaluation table."""

    def step_line(m: dict) -> str:
        return "  ".join(f"{t.name}: r={m[f'{t.name}/reward/mean']:.3f} pass={m[f'{t.name}/pass_rate']:.2f}"
                         f" kl={m[f'{t.name}/kl/seq_k1']:.2f}" for t in tasks)

    return RunReport(
        has_eval=any(t.eval_prompts for t in tasks),
        progress=lambda m: {**{f"{t.name[:8]}_pass": m[f"{t.name}/pass_rate"] for t in tasks},
                            "s/it": m["time/iteration_s"]},
        step_line=step_line,
        eval_text=lambda label, m: f"[eval {label}]\n" + eval_table(m, tasks),
        desc="cgpo",
    )


def run_cgpo(cfg: CGPORunConfig, resume: str | None = None, stop_after: int | None = None) -> dict:
    """Train for ``cfg.train.iterations`` (or until ``stop_after`` iterations of this call)."""
    trainer = build_cgpo_trainer(cfg, resume)
    return drive(trainer, cfg, cgpo_report(trainer.tasks), stop_after)
