"""The one RL loop: rollout → score → reference/critic → advantages → update → log/checkpoint.

Everything an algorithm varies lives behind a seam (Generator, RewardSource, Reference, Algorithm); the math lives in
:mod:`blendrl.functional`. Read :meth:`RLTrainer.step` top to bottom for one iteration.

Exactness notes:
- π_old is exact: with one minibatch per epoch (the default) the first epoch's forward happens before any
  optimizer step, so its log-probs *are* π_old and are stored for later epochs (no extra forward pass). With more
  minibatches a no-grad forward computes π_old first.
- V_old costs no pass of its own when the first critic step sees the whole batch in one forward (one minibatch,
  one micro-batch): that forward runs before the advantages, with grad, and the step back-propagates through it
  (:meth:`RLTrainer.critic_values`; the same values, one critic forward less per iteration).
- KL-in-reward uses the behaviour log-probs returned by the sampler (the distribution that was actually sampled);
  their largest gap to the training forward is logged as ``check/behaviour_logp_gap``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..config import PPORunConfig
from ..functional import AdaptiveKLController, FixedKLController, RunningMoments, sequence_kl
from ..judges.signals import hack_signals
from ..models.checkpointing import checkpointed
from ..rewards import Scores, make_samples, score_batch
from ..rewards.base import Later
from ..rollout import SamplingParams, decode_responses
from .experience import (Experience, behaviour_logprobs, forward_rows, micro_batches, pad_response, response_logprobs,
                         response_values)
from ..core import dist
from ..core.seeds import seed_of, stream
from .engine import make_engine
from .costs import take_costs
from .dynamic import dynamic_batch
from .extras import after_scores
from .held_out import held_out_metrics, held_out_pass
from .metrics import rollout_metrics
from .shaping import shape_scores
from .vine import mc_values


class NonFiniteLossError(FloatingPointError):
    """Raised when every update of an iteration hit a NaN/inf loss or gradient."""


@dataclass
class Models:
    policy: object
    tokenizer: object
    critic: object | None = None
    reference: object | None = None
    cost_critic: object | None = None  # PPO-Lagrangian's value model of the cost


@dataclass
class StepOutput:
    metrics: dict
    samples: list[dict] = field(default_factory=list)


class RLTrainer:
    def __init__(self, cfg: PPORunConfig, models: Models, reward, generator, algorithm, train_prompts, eval_prompts,
                 costs=None, episodes=None):
        self.cfg, self.m, self.reward, self.generator, self.algorithm = cfg, models, reward, generator, algorithm
        self.costs = costs  # the cost source of an algorithm that needs_cost_critic (PPO-Lagrangian), else None
        self.episodes = episodes  # an EpisodeRunner: multi-turn episodes with an environment, else None
        self.train_prompts, self.eval_prompts = train_prompts, eval_prompts
        from ..data import PromptSampler

        t, k = cfg.train, cfg.kl
        self.sampler = PromptSampler(len(train_prompts), seed_of(t.seed, "prompts"))
        self.sampling_gen = stream(t.seed, "sampling")
        self.shuffle_gen = stream(t.seed, "shuffle")
        self.kl_ctl = AdaptiveKLController(k.coef, k.target, k.horizon) if k.adaptive else FixedKLController(k.coef)
        self.moments = RunningMoments()
        self.params = SamplingParams(cfg.generation.max_new_tokens, cfg.generation.temperature, cfg.generation.top_p)
        total_steps = t.iterations * cfg.algorithm.epochs * t.minibatches
        trained = [("policy", models.policy, t.lr), ("critic", models.critic, cfg.critic.lr),
                   ("cost_critic", models.cost_critic, cfg.critic.lr)]
        self.engines = {name: make_engine(module, lr, t, total_steps) for name, module, lr in trained if module}
        self.critics = [name for name in ("critic", "cost_critic") if name in self.engines]
        self.iteration = 0
        self.pending_values = {}  # critic → (B, T) with its graph: the first critic step's forward, run early
        self.counters = {"skipped_samples": 0}

    # ------------------------------------------------------------------ one iteration
    def step(self) -> StepOutput:
        t = self.cfg.train
        timer = {"start": time.perf_counter()}
        # 1. rollout (with dynamic sampling: rounds until the batch holds enough groups with a signal, scored)
        prompts, rollout, scored, sampling = self.rollout_batch()
        exp = Experience.from_rollout(rollout)
        generator_gap = self.exact_behaviour_logprobs(exp)
        timer["rollout"] = time.perf_counter()
        # 2. score: sources that run elsewhere (kind: ray) start now and score while 3. runs here
        responses = self.decode(exp)
        pending = self.submit_scores(prompts, responses, exp.finished) if scored is None else Later(lambda: scored)
        costs = self.submit_scores(prompts, responses, exp.finished, self.costs) if self.costs else None
        # 3. reference and critics (they read the sampled tokens, not the scores or the response mask)
        exp.ref_logp = self.m.reference.logprobs(exp, self.params.temperature, t.forward_batch_size)
        if "critic" in self.critics:
            exp.values = self.critic_values(exp)
        if "cost_critic" in self.critics:
            exp.cost_values = self.critic_values(exp, "cost_critic")
        timer["ref_critic"] = time.perf_counter()
        # the scores; their shaping statistics are the whole batch's (every rank's rows, in order)
        scored = pending.result()
        raw = scored.total
        (all_raw, first), (all_finished, _) = dist.gather_rows(raw), dist.gather_rows(exp.finished.cpu())
        all_lengths = dist.gather_rows((exp.attention_mask[:, exp.prompt_len:] > 0).sum(1).cpu())[0]
        all_scores, all_valid = self.shape_scores(all_raw, all_finished, lengths=all_lengths)
        mine = slice(first, first + len(raw))
        exp.scores, valid = all_scores[mine].to(exp.response_mask.device), all_valid[mine]
        exp.response_mask[~valid.to(exp.response_mask.device)] = 0.0
        extra = after_scores(exp, valid, scored.dense, self.m.tokenizer, self.cfg.filter,
                             self.cfg.train.samples_per_prompt, self.sampling_gen)  # dense rewards, PF-PPO's filter
        if costs is not None:  # the episode costs (a row whose cost is NaN is skipped like a NaN reward)
            extra.update(take_costs(exp, costs.result(), self.counters))
        if self.algorithm.needs_mc_values:  # VinePPO's Monte-Carlo values in place of a critic's
            exp.values, exp.step_ids, vine = mc_values(exp, prompts, self.cfg.algorithm.vine, self.m.tokenizer,
                                                       self.generator, self.params, self.sampling_gen,
                                                       self.continuation_scores)
            extra.update(vine)
        timer["score"] = time.perf_counter()
        # 4. advantages
        metrics = {**self.algorithm.prepare(exp, self.kl_ctl.value), **extra, **sampling}
        # 5. update
        metrics.update(self.update(exp))
        self.m.reference.after_update(self.m.policy)
        self.generator.sync_weights(self.m.policy)  # a backend with its own copy of the weights refreshes it
        if generator_gap is not None:
            metrics["check/generator_logp_gap"] = dist.all_max(generator_gap)
        timer["update"] = time.perf_counter()
        # 6. bookkeeping
        seq_kl = sequence_kl(exp.behaviour_logp, exp.ref_logp, exp.response_mask)  # (B,) k1 per sequence
        all_kl = dist.gather_rows(seq_kl.cpu())[0]
        self.kl_ctl.update(all_kl[all_valid].mean().item() if all_valid.any() else 0.0, len(all_kl))
        self.iteration += 1
        metrics.update(rollout_metrics(exp, scored, all_raw, all_valid, all_finished, all_kl, timer, self.kl_ctl.value,
                                       self.counters["skipped_samples"], sum(e.skipped for e in self.engines.values())))
        metrics.update(hack_signals(dist.gather_objects(responses), all_finished.tolist(),
                                    dist.gather_objects([p.user_text for p in prompts])))
        rows = list(zip(prompts, responses, raw, exp.finished.tolist()))[: self.cfg.logging.log_samples]
        samples = [{"prompt": p.user_text, "response": r, "reward": float(s), "finished": bool(f)}
                   for p, r, s, f in rows]
        return StepOutput(metrics, samples)

    # ------------------------------------------------------------------ pieces of the step
    def rollout_batch(self):
        """This rank's prompts (k rows each), their rollout, and (``dynamic_sampling``) Scores and metrics."""
        t, k, ds = self.cfg.train, self.cfg.train.samples_per_prompt, self.cfg.dynamic_sampling

        def draw():
            batch = [self.train_prompts[i] for i in self.sampler.next_indices(t.prompts_per_iteration)]
            start, stop = dist.shard_range(len(batch))  # data-parallel: this rank's prompts (all in one process)
            prompts = [p for p in batch[start:stop] for _ in range(k)]
            shard = dist.Shard(torch.arange(start * k, stop * k), len(batch) * k) if dist.active() else None
            return prompts, self.sample(prompts, self.sampling_gen, shard)

        if not ds.enabled:
            return (*draw(), None, {})
        return dynamic_batch(draw, lambda p, r: self.score(p, self.decode(r), r.finished), k, t.prompts_per_iteration,
                             ds.max_extra_rounds, self.m.tokenizer.pad_token_id)

    def sample(self, prompts, gen: torch.Generator, shard=None):
        """A response per prompt record, or with an environment an episode per prompt record (a Rollout)."""
        if self.episodes is not None:
            return self.episodes.sample(prompts, self.params, gen, shard)
        return self.generator.sample([p.input_ids for p in prompts], self.params, gen, shard=shard)

    def exact_behaviour_logprobs(self, exp: Experience) -> float | None:
        """π_old from the training forward where the generator's log-probs are inexact or due for their check
        (:func:`~blendrl.training.experience.behaviour_logprobs`); the largest gap, or None."""
        return behaviour_logprobs(self.generator, exp, lambda e: self.forward_no_grad(
            lambda mb: response_logprobs(self.m.policy, mb, self.params.temperature), e), self.iteration)

    def decode(self, exp) -> list[str]:  # an Experience or a Rollout
        return decode_responses(self.m.tokenizer, exp)

    def score(self, prompts, responses: list[str], finished: torch.Tensor, source=None) -> Scores:
        """The reward source's (or ``source``'s: the costs) :class:`~blendrl.core.types.Scores` (``total`` (B,); NaN
        marks a sample it could not score). ``finished`` (B,): the response ended with EOS (judges inside the
        reward, e.g. the summed-PPO baseline's ``eos``, read it)."""
        return self.submit_scores(prompts, responses, finished, source).result()

    def submit_scores(self, prompts, responses: list[str], finished: torch.Tensor, source=None):
        """:meth:`score` in two halves: a handle now, ``.result()`` the scores (a source with ``submit`` works in the
        meantime). ``source``: the reward (default) or the cost source."""
        samples, source = make_samples(prompts, responses, finished), source or self.reward
        if hasattr(source, "submit"):
            return source.submit(samples)
        return Later(lambda: score_batch(source, samples))

    def continuation_scores(self, prompts, responses: list[str], finished: torch.Tensor):
        """``(shaped (N,), scored (N,) bool)`` of responses that are not the batch's samples (VinePPO's
        continuations): normalised with the running statistics as they are, counting nothing."""
        raw = self.score(prompts, responses, finished).total
        return self.shape_scores(raw, finished, update=False)[0], torch.isfinite(raw)

    def shape_scores(self, raw: torch.Tensor, finished: torch.Tensor, update: bool = True,
                     lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Missing-EOS and overlong penalties (``lengths`` (B,): response tokens), running normalisation, clipping
        (§11, PPO-max eq. 18). NaN scores → skipped. ``update=False`` (not the batch's samples: VinePPO's
        continuations) normalises with the running statistics as they are and counts nothing."""
        if update:
            self.counters["skipped_samples"] += int((~torch.isfinite(raw)).sum())
        return shape_scores(raw, finished, self.cfg.shaping, self.moments, self.params.max_new_tokens, update, lengths)

    def forward_no_grad(self, fn, exp: Experience) -> torch.Tensor:
        """``fn(micro-batch) -> (b, T')`` without grad over length-sorted, trimmed micro-batches of
        ``train.forward_batch_size`` rows (:func:`~blendrl.training.experience.forward_rows`). → (B, T)."""
        with torch.no_grad():
            return forward_rows(fn, exp, self.cfg.train.forward_batch_size)

    def critic_values(self, exp: Experience, name: str = "critic") -> torch.Tensor:
        """V of the critic ``name`` (``critic``, ``cost_critic``) before the update, (B, T). When the first critic
        step will run one forward over the whole batch (``train.minibatches == 1`` and ``micro_batch_size >= B``),
        that forward runs now, with grad:
        its values are exactly the pre-update values, and :meth:`update` back-propagates through it instead of
        running it again. Otherwise a no-grad pass in batches of ``train.forward_batch_size`` rows."""
        if self.cfg.train.minibatches == 1 and len(exp) <= self.cfg.train.micro_batch_size:
            with checkpointed(getattr(self.m, name)), self.engines[name].autocast():
                self.pending_values[name] = response_values(getattr(self.m, name), exp.trimmed())  # (B, T')
            return pad_response(self.pending_values[name].detach(), exp.response_mask.shape[1])  # (B, T)
        return self.forward_no_grad(lambda mb: response_values(getattr(self.m, name), mb), exp)

    def update(self, exp: Experience) -> dict:
        """``algorithm.epochs`` passes of ``train.minibatches`` optimizer steps over the experience.

        Each minibatch updates the critic first, then the policy, each with its own gradient accumulation over
        micro-batches, gradient clipping and optimizer step; gradients are freed right after each step, so only one
        model's gradients and activations are alive at a time.
        """
        t, temp = self.cfg.train, self.params.temperature
        n = len(exp)
        exact_first_epoch = t.minibatches == 1
        if exact_first_epoch:
            exp.old_logp = torch.zeros_like(exp.behaviour_logp)  # filled by the first epoch's forward
        else:
            exp.old_logp = self.forward_no_grad(lambda mb: response_logprobs(self.m.policy, mb, temp), exp)
        sums: dict[str, float] = {}
        n_updates, logp_gap = 0, 0.0
        for epoch in range(self.cfg.algorithm.epochs):
            first_pass = exact_first_epoch and epoch == 0

            def policy_loss(sub: Experience, micro: torch.Tensor):
                nonlocal logp_gap
                logp, entropy = response_logprobs(self.m.policy, sub, temp, entropy=True)  # (b, T) each
                if first_pass:  # no optimizer step yet: these log-probs are π_old
                    sub.old_logp = logp.detach()
                    exp.old_logp[micro] = pad_response(sub.old_logp, exp.old_logp.shape[1])
                    gap = ((logp.detach() - sub.behaviour_logp).abs() * sub.response_mask).max().item()
                    logp_gap = max(logp_gap, gap)
                return self.algorithm.policy_loss(sub, logp, self.kl_ctl.value, entropy)

            def critic_loss(sub: Experience, micro: torch.Tensor, name: str):
                values = self.pending_values.pop(name, None)  # the early forward: whole batch, epoch 0
                if values is None:
                    values = response_values(getattr(self.m, name), sub)
                else:  # the same rows, in row order: put them in the micro-batch's order
                    values = values[micro]
                return self.algorithm.critic_loss(sub, values, name)

            for mb_idx in self.minibatch_rows(n):
                if dist.all_sum(exp.response_mask[mb_idx].sum()) == 0:
                    continue
                for name in self.critics:
                    self.optimize(name, exp, mb_idx, lambda sub, micro, c=name: critic_loss(sub, micro, c), sums)
                n_updates += self.optimize("policy", exp, mb_idx, policy_loss, sums)
        self.pending_values = {}  # not consumed when every response was masked out
        if n_updates == 0:
            raise NonFiniteLossError(
                f"iteration {self.iteration + 1}: every update had a NaN/inf loss or gradient; weights left unchanged"
            )
        out = {k: v / n_updates for k, v in sums.items()}
        out["check/behaviour_logp_gap"] = dist.all_max(logp_gap)
        out["lr"] = self.engines["policy"].lr
        return out

    def minibatch_rows(self, n: int) -> list[torch.Tensor]:
        """This rank's rows (local indices) of each of the epoch's ``train.minibatches`` minibatches: a permutation
        of the whole batch's rows (drawn alike on every rank), cut into minibatches, each keeping this rank's rows."""
        t = self.cfg.train
        if t.minibatches == 1:
            return [torch.arange(n)]
        total = dist.all_sum(torch.tensor(n)).item() if dist.active() else n
        first = dist.gather_rows(torch.zeros(n))[1]
        order = torch.randperm(int(total), generator=self.shuffle_gen)
        mine = [mb[(mb >= first) & (mb < first + n)] - first for mb in order.split(int(total) // t.minibatches)]
        return mine

    def optimize(self, name: str, exp: Experience, mb_idx: torch.Tensor, loss_fn, sums: dict) -> bool:
        """One optimizer step of model ``name`` on a minibatch, accumulated over micro-batches. Each micro-batch's
        loss (an aggregate over its units: tokens, or sequences under a ``seq-mean-*`` ``algorithm.loss_agg``) is
        weighted by its share of the minibatch's units, so the gradient equals that of one aggregate over the whole
        minibatch (every rank's rows). A NaN/inf loss or gradient skips the step; the
        remaining micro-batches are still evaluated (without backward) so that ``loss_fn`` sees every sample — the
        first policy pass records π_old for the later epochs."""
        engine = self.engines[name]
        # the policy loss's units (algorithm.loss_agg: tokens or sequences); the critic's are tokens
        units = self.algorithm.loss_units if name == "policy" else (lambda mask: mask.sum())
        mb_units = dist.all_sum(units(exp.response_mask[mb_idx]))  # the whole minibatch's, every rank's
        stats_sum: dict[str, float] = {}
        finite = True
        with checkpointed(getattr(self.m, name)):
            for micro in micro_batches(exp, mb_idx, self.cfg.train.micro_batch_size):
                sub = exp.select(micro).trimmed()
                with engine.autocast():
                    loss, stats = loss_fn(sub, micro)
                finite = finite and bool(torch.isfinite(loss))
                if not finite:
                    continue
                weight = units(sub.response_mask) / mb_units
                engine.backward(loss * weight)
                for k, v in stats.items():
                    stats_sum[k] = stats_sum.get(k, 0.0) + v * weight.item()
        grad_norm = engine.step(finite)
        if math.isfinite(grad_norm):
            if dist.active():  # each rank's share of the minibatch's token-weighted means: their sum is the mean
                keys = sorted(set(dist.gather_objects(sorted(stats_sum))))  # a rank may have had no row here
                stats_sum = dict(zip(keys, dist.all_sum(torch.tensor([stats_sum.get(k, 0.0) for k in keys],
                                                                      dtype=torch.float64)).tolist()))
            stats_sum[f"grad_norm/{name}"] = grad_norm
            for k, v in stats_sum.items():
                sums[k] = sums.get(k, 0.0) + v
        return math.isfinite(grad_norm)

    # ------------------------------------------------------------------ evaluation on held-out prompts
    @torch.no_grad()
    def evaluate(self, n_prompts: int) -> StepOutput:
        """Reward, length and KL to the reference on the first ``n_prompts`` held-out prompts (fixed sampling seed)."""
        prompts = self.eval_prompts[:n_prompts]
        rollout = self.sample(prompts, stream(self.cfg.train.seed, "evaluation"))
        h = held_out_pass(rollout, self.m.tokenizer, self.m.reference, self.params.temperature,
                          self.cfg.train.forward_batch_size)
        raw = self.score(prompts, h.responses, h.exp.finished).total
        samples = [{"prompt": p.user_text, "response": r, "reward": float(s), "finished": bool(f)}
                   for p, r, s, f in zip(prompts, h.responses, raw, h.exp.finished.tolist())]
        metrics = held_out_metrics("eval/", h, raw, prompts)
        if self.costs is not None:  # a constrained run's held-out cost (the mean over the responses it could price)
            costs = self.score(prompts, h.responses, h.exp.finished, self.costs).total
            metrics["eval/cost/mean"] = costs.nanmean().item()
        return StepOutput(metrics, samples)

    # ------------------------------------------------------------------ state for exact resume
    def state_dict(self) -> tuple[dict, dict]:
        from .checkpoint import rng_state

        trainer = {
            "iteration": self.iteration,
            "kl_ctl": self.kl_ctl.state_dict(),
            "moments": self.moments.state_dict(),
            "sampler": self.sampler.state_dict(),
            "counters": dict(self.counters),
            "rng": rng_state(self.sampling_gen),
            "shuffle_gen": self.shuffle_gen.get_state(),
            "algorithm": self.algorithm.state_dict(),
        }
        return trainer, {"engines": {k: e.state_dict() for k, e in self.engines.items()}}

    def load_state_dict(self, trainer: dict, optim: dict) -> None:
        from .checkpoint import set_rng_state

        self.iteration = trainer["iteration"]
        self.kl_ctl.load_state_dict(trainer["kl_ctl"])
        self.moments.load_state_dict(trainer["moments"])
        self.sampler.load_state_dict(trainer["sampler"])
        self.counters.update(trainer["counters"])
        set_rng_state(trainer["rng"], self.sampling_gen)
        self.shuffle_gen.set_state(trainer["shuffle_gen"])
        self.algorithm.load_state_dict(trainer.get("algorithm", {}))
        for k, e in self.engines.items():
            e.load_state_dict(optim["engines"][k])
