"""The CGPO loop (docs/algorithms.md §1, Algorithms 1–2): for every task, rollout → score (reward model + judges) →
the task's optimizer picks rows and weights → gradients accumulated with weight ρ_l; then one optimizer step.

Each task's rewards, verdicts and baselines stay inside its own ``task_step``: nothing from one task reaches
another task's loss (tested). One update per iteration: CRPG, CODPO and CRRAFT are on-policy single-step methods.
"""
from __future__ import annotations

import math
import time

import torch

from ...functional import sequence_kl
from ...judges.signals import hack_signals
from ...models.checkpointing import checkpointed
from ...rollout import Rollout, decode_responses
from .tasks import TaskRuntime
from ..experience import Experience, behaviour_logprobs, forward_rows, response_logprobs, teacher_forced_experience
from ...core import dist
from ...core.seeds import stream
from ..engine import make_engine
from ..held_out import held_out_metrics, held_out_pass
from ..metrics import episode_metrics
from ..trainer import Models, StepOutput


class CGPOTrainer:
    def __init__(self, cfg, models: Models, generator, tasks: list[TaskRuntime], baseline_sampler=None) -> None:
        self.cfg, self.m, self.generator, self.tasks = cfg, models, generator, tasks
        self.baseline_sampler = baseline_sampler  # samples ā from π_ref (inside reference.context())
        t = cfg.train
        self.sampling_gen = stream(t.seed, "sampling")
        self.engine = make_engine(models.policy, t.lr, t, t.iterations)  # one optimizer step per iteration
        self.temperature = cfg.generation.temperature
        self.iteration = 0
        self.counters = {"skipped_samples": 0}

    # ------------------------------------------------------------------ one iteration (Algorithm 2)
    def step(self) -> StepOutput:
        start = time.perf_counter()
        metrics, samples, finite = {}, [], True
        batches = [self.next_prompts(task) for task in self.tasks]
        self.prefetch_baselines(batches)  # every rank the whole batch's ā (the same draws); rank 0 caches them
        metrics["time/baselines_s"] = time.perf_counter() - start
        rows = [self.my_rows(task, len(b)) for task, b in zip(self.tasks, batches)]  # data-parallel: this rank's
        mine = [[b[i] for i in r.tolist()] for b, r in zip(batches, rows)]
        rollouts = sample_tasks(self.generator, self.tasks, mine, self.sampling_gen,
                                [(r, len(b)) for r, b in zip(rows, batches)] if dist.active() else None)
        metrics["time/rollout_s"] = time.perf_counter() - start - metrics["time/baselines_s"]
        for task, prompts, rollout in zip(self.tasks, mine, rollouts):
            task_metrics, task_samples, task_finite = self.task_step(task, prompts, rollout)
            metrics.update({f"{task.name}/{k}": v for k, v in task_metrics.items()})
            samples += task_samples
            finite = dist.all_true(finite and task_finite)
            if not finite:
                break  # a NaN/inf loss: this iteration's gradient is discarded, never applied
        # a NaN/inf loss or gradient is reported in the metrics, never written into the weights; no row to train
        # (nothing passed the judges) is a step of norm 0 that changes nothing
        grad_norm = self.engine.step(finite)
        if self.engine.applied:
            self.m.reference.after_update(self.m.policy)
            self.generator.sync_weights(self.m.policy)  # a backend with its own copy of the weights refreshes it
        self.iteration += 1
        metrics.update({"grad_norm": grad_norm, "lr": self.engine.lr,
                        "skipped/updates_total": self.engine.skipped,
                        "skipped/samples_total": self.counters["skipped_samples"],
                        "time/iteration_s": time.perf_counter() - start})
        return StepOutput(metrics, samples)

    def my_rows(self, task: TaskRuntime, n: int) -> torch.Tensor:
        """This rank's rows of a task's batch of ``n`` rows: a contiguous share of its prompts, each with its K
        samples (all rows in one process)."""
        k = task.cfg.samples_per_prompt
        start, stop = dist.shard_range(n // k)
        return torch.arange(start * k, stop * k)

    def next_prompts(self, task: TaskRuntime) -> list:
        """This iteration's prompts of a task, each repeated K times (K consecutive rows per prompt)."""
        k = task.cfg.samples_per_prompt
        return [task.prompts[i] for i in task.sampler.next_indices(task.cfg.prompts_per_iteration) for _ in range(k)]

    @torch.no_grad()
    def prefetch_baselines(self, batches: list[list]) -> None:
        """ā for this iteration's new prompts of every ``calibration: generate`` task, sampled from π_ref in one
        batched call (seeded by the iteration, so a resumed run draws the same ā)."""
        if self.baseline_sampler is None:
            return
        missing = [task.missing_baselines(b) if task.generate is not None else []
                   for task, b in zip(self.tasks, batches)]
        if not any(missing):
            return
        gen = stream(self.cfg.train.seed, "baselines", sum(len(t.baselines) for t in self.tasks))
        with self.m.reference.context():
            rollouts = sample_tasks(self.baseline_sampler, self.tasks, missing, gen)
        for task, prompts, rollout in zip(self.tasks, missing, rollouts):
            if prompts:
                task.add_baselines(prompts, decode_responses(self.m.tokenizer, Experience.from_rollout(rollout)),
                                   rollout.finished)

    def task_step(self, task: TaskRuntime, prompts: list, rollout: Rollout) -> tuple[dict, list[dict], bool]:
        """Algorithm 1 for one task on its sampled ``rollout`` (K consecutive rows per prompt): its gradient, scaled
        by ρ_l, is added to ``.grad``. Returns metrics, samples, and whether every loss was finite."""
        t1 = time.perf_counter()
        k = task.cfg.samples_per_prompt
        exp = Experience.from_rollout(rollout)
        # the KL factor from the training forward where the generator's log-probs are not exact (or checked)
        behaviour_logprobs(self.generator, exp, lambda e: forward_rows(
            lambda mb: response_logprobs(self.m.policy, mb, self.temperature), e, self.cfg.train.forward_batch_size),
            self.iteration)
        responses = decode_responses(self.m.tokenizer, exp)
        scored = task.score(prompts, responses, exp.finished)
        self.counters["skipped_samples"] += int(dist.all_sum((~scored.valid).sum()))
        exp.response_mask[~scored.valid] = 0.0
        exp.ref_logp = self.m.reference.logprobs(exp, self.temperature, self.cfg.train.forward_batch_size)
        seq_kl = sequence_kl(exp.behaviour_logp, exp.ref_logp, exp.response_mask)  # (N,) generation time
        t2 = time.perf_counter()
        selection, metrics = task.optimizer.select(exp, scored.reward, scored.passed, seq_kl, k,
                                                   per_judge=scored.per_judge)
        parts = [selection.rows]
        if len(selection.fallback_prompts):
            fallback = self.baseline_rows(task, [prompts[int(b) * k] for b in selection.fallback_prompts])
            if fallback is not None:
                parts.append(fallback)
            metrics["crraft/fallback_rows"] = 0 if fallback is None else len(fallback)
        loss, finite = self.accumulate(task, parts, selection.group)
        g = lambda x: dist.gather_rows(x)[0]  # noqa: E731 - the whole batch's rows (this rank's in one process)
        valid, raw, reward, kl, passed = g(scored.valid), g(scored.raw), g(scored.reward), g(seq_kl), g(scored.passed)
        lengths, finished = g(exp.response_mask.sum(1)), g(exp.finished)
        judge_stats = dist.gather_objects([scored.judge_stats])
        metrics.update({
            "loss": dist.all_sum(torch.tensor(loss, dtype=torch.float64)).item(),  # NaN if a rank's was
            "rows_trained": int(dist.all_sum(torch.tensor(sum(len(p) for p in parts)))),
            "reward/mean": raw[valid].mean().item() if valid.any() else math.nan,
            "reward/calibrated": reward[valid].mean().item() if valid.any() else math.nan,
            "pass_rate": passed.float().mean().item(),
            **{f"judge/{name}": g(v).float().mean().item() for name, v in scored.per_judge.items()},
            "kl/seq_k1": kl[valid].mean().item() if valid.any() else math.nan,
            "response/length": lengths[valid].mean().item() if valid.any() else math.nan,
            "response/eos_rate": finished.float().mean().item(),
            "time/score_ref_s": t2 - t1, "time/update_s": time.perf_counter() - t2,
            **hack_signals(dist.gather_objects(responses), dist.gather_objects(list(scored.finished)),
                           dist.gather_objects([p.user_text for p in prompts])),
            **{f"judge/{k}": sum(s.get(k, 0.0) for s in judge_stats) / len(judge_stats)
               for k in sorted({k for s in judge_stats for k in s})},  # the ranks' mean
            **episode_metrics(exp.transcripts),  # a task with an environment: env/turns, env/tool_calls, ...
        })
        return metrics, sample_rows(task.name, prompts, responses, scored)[: self.cfg.logging.log_samples], finite

    def accumulate(self, task: TaskRuntime, parts: list[Experience], group: int) -> tuple[float, bool]:
        """Back-propagate ``ρ_l · (Σ units' loss) / units`` over micro-batches that keep ``group`` rows together."""
        units = float(dist.all_sum(torch.tensor(float(sum(task.optimizer.units(p) for p in parts)),
                                                dtype=torch.float64)))  # every rank's rows
        if units == 0:
            return 0.0, True
        size = max(group, self.cfg.train.micro_batch_size // group * group)
        total = 0.0
        with checkpointed(self.m.policy):
            for part in parts:
                if len(part) == 0:
                    continue
                # in row order, not length-sorted (micro_batches): a CODPO pair must stay in one micro-batch
                for micro in torch.arange(len(part)).split(size):
                    mb = part.select(micro).trimmed()
                    with self.engine.autocast():
                        logp = response_logprobs(self.m.policy, mb, self.temperature)  # (b, T)
                        loss = task.optimizer.loss(mb, logp) * (task.cfg.weight / units)
                    if not torch.isfinite(loss):
                        return math.nan, False
                    self.engine.backward(loss)
                    total += loss.item()
        return total, True

    @torch.no_grad()
    def baseline_rows(self, task: TaskRuntime, prompts) -> Experience | None:
        """CRRAFT's fallback (eq. 18): ā as a training row with weight σ(0) = 0.5 for each prompt whose ā ended with
        EOS, passes every judge and stays within KL_max of the reference; None when no prompt qualifies."""
        keep = [p for p in prompts if task.baseline_passes(p)]  # finished ā only: its EOS is trained on
        if not keep:
            return None
        tok = self.m.tokenizer
        eos = tok.eos_token_id
        responses = [tok(task.baseline_of(p)[0], add_special_tokens=False)["input_ids"]
                     [: task.params.max_new_tokens - 1] + ([eos] if eos is not None else []) for p in keep]
        exp = teacher_forced_experience([p.input_ids for p in keep], responses, tok.pad_token_id,
                                        [task.baseline_of(p)[1] for p in keep])
        exp.ref_logp = self.m.reference.logprobs(exp, self.temperature, self.cfg.train.forward_batch_size)
        exp.behaviour_logp = forward_rows(lambda mb: response_logprobs(self.m.policy, mb, self.temperature), exp,
                                          self.cfg.train.forward_batch_size)
        seq_kl = sequence_kl(exp.behaviour_logp, exp.ref_logp, exp.response_mask)  # (F,)
        ok = seq_kl <= task.cfg.optimizer.kl_max
        if not ok.any():
            return None
        rows = exp.select(ok.nonzero().flatten())
        rows.seq_weights = torch.full((len(rows),), task.optimizer.fallback_weight)
        return rows

    # ------------------------------------------------------------------ held-out evaluation per task
    def evaluate(self, n_prompts: int) -> StepOutput:
        return evaluate_tasks(self.tasks, self.generator, self.m, self.temperature, self.cfg.train.forward_batch_size,
                              self.cfg.train.seed, n_prompts)

    # ------------------------------------------------------------------ state for exact resume
    def state_dict(self) -> tuple[dict, dict]:
        from ..checkpoint import rng_state

        trainer = {"iteration": self.iteration, "counters": dict(self.counters), "rng": rng_state(self.sampling_gen),
                   "samplers": {t.name: t.sampler.state_dict() for t in self.tasks},
                   "optimizers": {t.name: t.optimizer.state_dict() for t in self.tasks  # the Lagrange multipliers
                                  if hasattr(t.optimizer, "state_dict")}}
        return trainer, {"engines": {"policy": self.engine.state_dict()}}

    def load_state_dict(self, trainer: dict, optim: dict) -> None:
        from ..checkpoint import set_rng_state

        self.iteration = trainer["iteration"]
        self.counters.update(trainer["counters"])
        set_rng_state(trainer["rng"], self.sampling_gen)
        for t in self.tasks:
            t.sampler.load_state_dict(trainer["samplers"][t.name])
            if t.name in trainer.get("optimizers", {}):
                t.optimizer.load_state_dict(trainer["optimizers"][t.name])
        self.engine.load_state_dict(optim["engines"]["policy"])


def sample_tasks(generator, tasks: list[TaskRuntime], batches: list[list], gen: torch.Generator,
                 shards: list[tuple[torch.Tensor, int]] | None = None) -> list[Rollout]:
    """One rollout per task (``batches[i]``: task i's prompts). Tasks that share sampling parameters are sampled in
    one batched call (decoding on CPU costs about the same for 8 rows as for 40), then split back; nothing else
    about them is shared; a task with an environment runs its episodes with ``generator`` on their own. ``shards``
    (data-parallel): ``batches[i]`` are rows ``shards[i][0]`` of task i's batch of ``shards[i][1]`` rows, and the call
    samples them as those rows of the whole batch (:class:`blendrl.core.dist.Shard`)."""
    groups: dict[tuple, list[int]] = {}
    out: list = [None] * len(tasks)
    for i, task in enumerate(tasks):
        if task.episodes is not None and (batches[i] or shards is not None):  # a task's episodes, on their own
            shard = None if shards is None else dist.Shard(shards[i][0], shards[i][1])
            out[i] = task.episodes(generator).sample(batches[i], task.params, gen, shard)
        elif batches[i]:
            p = task.params
            groups.setdefault((p.max_new_tokens, p.temperature, p.top_p), []).append(i)
    for members in groups.values():
        ids = [p.input_ids for i in members for p in batches[i]]
        shard = None
        if shards is not None:
            offsets = [0]
            for i in members:
                offsets.append(offsets[-1] + shards[i][1])
            shard = dist.Shard(torch.cat([shards[i][0] + off for i, off in zip(members, offsets)]), offsets[-1])
        rollout = generator.sample(ids, tasks[members[0]].params, gen, shard=shard)
        start = 0
        for i in members:
            out[i] = rollout.select(slice(start, start + len(batches[i]))).compact()
            start += len(batches[i])
    return out


@torch.no_grad()
def evaluate_tasks(tasks: list[TaskRuntime], generator, models: Models, temperature: float,
                   forward_batch_size: int, seed: int, n_prompts: int) -> StepOutput:
    """Per task on its first ``n_prompts`` held-out prompts (one sample each, the ``evaluation`` stream): the
    metrics of every evaluation (:func:`~blendrl.training.held_out.held_out_metrics`) plus the calibrated reward and
    the pass rate of every judge and of all. Any policy can be measured this way (the summed-reward PPO baseline
    is)."""
    metrics, samples = {}, []
    batches = [task.eval_prompts[:n_prompts] for task in tasks]
    rollouts = sample_tasks(generator, tasks, batches, stream(seed, "evaluation"))
    for task, prompts, rollout in zip(tasks, batches, rollouts):
        if not prompts:
            continue
        h = held_out_pass(rollout, models.tokenizer, models.reference, temperature, forward_batch_size)
        scored = task.score(prompts, h.responses, h.exp.finished)
        v, p = scored.valid, f"eval/{task.name}/"
        metrics.update({
            **held_out_metrics(p, h, scored.raw, prompts),
            f"{p}reward/calibrated": scored.reward[v].mean().item() if v.any() else math.nan,
            f"{p}pass_rate": scored.passed.float().mean().item(),
            **{f"{p}judge/{n}": ok.float().mean().item() for n, ok in scored.per_judge.items()},
            **{f"{p}judge/{k}": x for k, x in scored.judge_stats.items()},
        })
        samples += sample_rows(task.name, prompts, h.responses, scored)
    return StepOutput(metrics, samples)


def sample_rows(task: str, prompts, responses: list[str], scored) -> list[dict]:
    """Logged samples: prompt, response, raw reward, verdict and the violated judges' reasons."""
    return [{"task": task, "prompt": p.user_text, "response": r, "reward": float(s), "passed": bool(ok),
             "violations": why, "finished": f}
            for p, r, s, ok, why, f in zip(prompts, responses, scored.raw, scored.passed, scored.reasons,
                                           scored.finished)]
