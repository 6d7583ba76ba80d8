"""``blendrl dpo``: offline DPO, IPO and conservative DPO on preference pairs (docs/algorithms.md §12).

The pairs are the ones ``blendrl rm`` reads (any of its formats, μ̂ columns included). Each side is the prompt under
the chat template with the generation prompt, then the response and EOS: the layout the RL loops sample, so the
sequence log-probabilities come from the same pass (:func:`~blendrl.training.experience.response_logprobs`; a
pair's two rows share their prompt, computed once). The reference is the frozen initial policy, or the policy with
its adapters disabled under LoRA (:mod:`blendrl.training.reference`); both are built as PPO builds them
(:func:`~blendrl.training.run.build_policy_stack`: ``model.device``, ``model.dtype``, gradient checkpointing, the
reference's offload). One optimizer step per ``train.batch_size`` pairs through the training engine; the run
(logging, evaluation, ``checkpoints/step-NNNNNN`` with exact resume, ``final/``) is the one run loop's
(:mod:`blendrl.training.driver`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import GenerationConfig, ReferenceConfig
from ..config.dpo_schema import DPORunConfig
from ..core import dist
from ..core.fsutil import atomic_write_text
from ..core.types import Experience
from ..data.preferences import PreferencePair, load_preferences
from ..data.prompts import DataError, epoch_batch
from ..functional.dpo import DPO_LOSSES, implicit_rewards
from .driver import RunPlan, checkpoint_saver, export_pretrained, load_checkpoint, metrics_report, run_loop
from .engine import LocalEngine
from .experience import response_logprobs, teacher_forced_experience
from .names import check_names
from .trainer import StepOutput

log = logging.getLogger("blendrl")


@dataclass
class DPOPairs:
    """Token ids of each kept pair: its prompt, and each response with EOS; ``weight`` per pair (σ(μ̂) or 1)."""

    pairs: list[PreferencePair]
    prompts: list[list[int]]
    chosen: list[list[int]]
    rejected: list[list[int]]
    weight: torch.Tensor
    truncated: int = 0
    skipped: int = 0
    eos_id: int | None = None  # a response that ends with it is finished (a truncated one is not)

    def __len__(self) -> int:
        return len(self.pairs)


def encode_dpo_pairs(pairs: list[PreferencePair], tokenizer, cfg: DPORunConfig, source: str) -> DPOPairs:
    """Tokenise prompt and responses; a pair longer than ``data.max_length`` has its responses cut on the right
    (``truncate``), is dropped (``skip``) — both counted — or raises (``error``). ``loss.strength`` weighs or
    filters by μ̂."""
    d, s = cfg.data, cfg.loss
    out = DPOPairs([], [], [], [], torch.zeros(0), eos_id=tokenizer.eos_token_id)
    weights = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for p in pairs:
        if s.strength != "none" and p.mu is None:
            raise DataError(f"{p.where}, field 'mu': loss.strength {s.strength} needs the preference strength "
                            f"(blendrl rm strength writes it)")
        if s.strength == "filter" and p.mu < s.min_strength:
            continue
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template(p.prompt, tokenize=False, add_generation_prompt=True)
            prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            prompt = tokenizer("\n".join(m["content"] for m in p.prompt))["input_ids"]
        sides = [tokenizer(r, add_special_tokens=False)["input_ids"] + eos for r in (p.chosen, p.rejected)]
        room = d.max_length - len(prompt)
        if max(len(x) for x in sides) > room:
            if d.too_long == "error" or room < 1:
                raise DataError(f"{p.where}, field 'chosen'/'rejected': longer than data.max_length={d.max_length} "
                                f"tokens with the prompt (raise it, or set data.too_long=truncate|skip)")
            if d.too_long == "skip":
                out.skipped += 1
                continue
            out.truncated += 1
            sides = [x[:room] for x in sides]
        out.pairs.append(p)
        out.prompts.append(prompt)
        out.chosen.append(sides[0])
        out.rejected.append(sides[1])
        weights.append(1.0 / (1.0 + math.exp(-p.mu)) if s.strength == "weight" else 1.0)
    if not out.pairs:
        raise DataError(f"{source}: no pair left (all longer than data.max_length or below loss.min_strength)")
    if out.truncated or out.skipped:
        log.warning("%s: %d pairs truncated, %d skipped (data.max_length=%d)", source, out.truncated, out.skipped,
                    d.max_length)
    out.weight = torch.tensor(weights)
    return out


def pair_experience(enc: DPOPairs, idx: list[int], pad_id: int, device: torch.device | None = None) -> Experience:
    """Rows ``[chosen of idx…, rejected of idx…]`` as an Experience on ``device``: prompt left-padded, response
    right-padded."""
    responses = [enc.chosen[i] for i in idx] + [enc.rejected[i] for i in idx]
    finished = [enc.eos_id is not None and r[-1:] == [enc.eos_id] for r in responses]
    exp = teacher_forced_experience([enc.prompts[i] for i in idx] * 2, responses, pad_id, finished)
    if device is None or device.type == "cpu":
        return exp
    return Experience(**{f.name: None if (v := getattr(exp, f.name)) is None else v.to(device)
                         for f in dataclasses.fields(exp)})


def sequence_logps(token_logp: torch.Tensor, mask: torch.Tensor, average: bool) -> torch.Tensor:
    """Sum (or mean, for IPO) of each row's response-token log-probs. (B, T) → (B,)."""
    total = (token_logp * mask).sum(1)
    return total / mask.sum(1).clamp_min(1) if average else total


class DPOTrainer:
    """One optimizer step per :meth:`step` on the next ``train.batch_size`` pairs, ``total_steps`` in all;
    ``iteration`` counts the steps taken (what a checkpoint resumes from)."""

    def __init__(self, cfg: DPORunConfig, policy, tokenizer, reference, train: DPOPairs) -> None:
        self.cfg, self.policy, self.tokenizer, self.reference, self.pairs = cfg, policy, tokenizer, reference, train
        t = cfg.train
        self.steps_per_epoch = math.ceil(len(train) / t.batch_size)
        self.total_steps = t.epochs * self.steps_per_epoch
        self.engine = LocalEngine(policy, t.lr, t, self.total_steps)
        self.device = next(policy.parameters()).device
        self.iteration = 0

    def batch_indices(self, step: int) -> list[int]:
        """Pairs of optimizer step ``step`` (:func:`~blendrl.data.prompts.epoch_batch`)."""
        return epoch_batch(len(self.pairs), self.cfg.train.batch_size, self.cfg.train.seed, step)

    def pair_losses(self, enc: DPOPairs, idx: list[int], grad: bool) -> tuple[torch.Tensor, dict]:
        """Per-pair losses (n,) of pairs ``idx`` and their implicit-reward statistics."""
        s, n = self.cfg.loss, len(idx)
        exp = pair_experience(enc, idx, self.tokenizer.pad_token_id, self.device)
        average = s.kind == "ipo"
        ref = sequence_logps(self.reference.logprobs(exp, 1.0, 2 * n), exp.response_mask, average)  # (2n,)
        with torch.set_grad_enabled(grad), self.engine.autocast():
            pi = sequence_logps(response_logprobs(self.policy, exp, 1.0), exp.response_mask, average)  # (2n,)
            losses = DPO_LOSSES[s.kind](pi[:n], pi[n:], ref[:n], ref[n:], beta=s.beta,
                                        label_smoothing=s.label_smoothing)  # (n,)
        r_c = implicit_rewards(pi[:n].detach(), ref[:n], s.beta)  # (n,)
        r_r = implicit_rewards(pi[n:].detach(), ref[n:], s.beta)  # (n,)
        stats = {"dpo/reward_chosen": r_c.mean().item(), "dpo/reward_rejected": r_r.mean().item(),
                 "dpo/reward_accuracy": (r_c > r_r).float().mean().item(), "dpo/margin": (r_c - r_r).mean().item()}
        return losses, stats

    def step(self) -> StepOutput:
        """One optimizer step on the next batch of pairs (weighted mean of their losses), with its metrics."""
        self.policy.train()
        idx = self.batch_indices(self.iteration)
        weight = self.pairs.weight[idx].to(self.device)  # (b,)
        sums: dict[str, float] = {}
        finite = True
        lr = self.engine.lr
        for start in range(0, len(idx), self.cfg.train.micro_batch_size):
            micro = list(range(start, min(start + self.cfg.train.micro_batch_size, len(idx))))
            losses, stats = self.pair_losses(self.pairs, [idx[i] for i in micro], grad=True)
            loss = (losses * weight[micro]).sum() / weight.sum()
            finite = finite and bool(torch.isfinite(loss))
            if finite:
                self.engine.backward(loss)
            for k, v in {"loss/dpo": loss.item() * len(idx) / len(micro), **stats}.items():
                sums[k] = sums.get(k, 0.0) + v * len(micro) / len(idx)
        grad_norm = self.engine.step(finite)
        self.policy.eval()
        self.iteration += 1
        return StepOutput({**sums, "grad_norm": grad_norm, "lr": lr,
                           "epoch": (self.iteration - 1) // self.steps_per_epoch,
                           "skipped/updates_total": self.engine.skipped})

    @torch.no_grad()
    def evaluate(self, enc: DPOPairs) -> dict:
        """Held-out loss and implicit-reward accuracy (chosen above rejected) over every pair."""
        size = self.cfg.train.micro_batch_size
        sums: dict[str, float] = {}
        for start in range(0, len(enc), size):
            idx = list(range(start, min(start + size, len(enc))))
            losses, stats = self.pair_losses(enc, idx, grad=False)
            for k, v in {"loss/dpo": losses.mean().item(), **stats}.items():
                sums[f"eval/{k}"] = sums.get(f"eval/{k}", 0.0) + v * len(idx) / len(enc)
        return sums

    def state_dict(self) -> tuple[dict, dict]:
        engines = {"engines": {"policy": self.engine.state_dict()}}
        return {"step": self.iteration, "torch_rng": torch.get_rng_state()}, engines

    def load_state_dict(self, trainer: dict, optim: dict) -> None:
        self.iteration = trainer["step"]
        torch.set_rng_state(trainer["torch_rng"])
        self.engine.load_state_dict(optim["engines"]["policy"])


def build_dpo_trainer(cfg: DPORunConfig, resume: str | None = None) -> tuple[DPOTrainer, DPOPairs | None]:
    """The trainer and the encoded held-out pairs (None without ``data.eval``)."""
    from .run import build_policy_stack, effective_perf, set_up_torch

    check_names(cfg, {(type(cfg.loss), "kind"): (DPO_LOSSES, ())})
    dist.require_single_process("blendrl dpo")
    device = dist.resolve_device(cfg.model.device)
    perf = dataclasses.replace(effective_perf(cfg.perf, device), tied_grads_in_place=False)  # autograd's own sum
    set_up_torch(cfg.train.threads, cfg.train.seed, perf)
    stack = build_policy_stack(cfg.model, ReferenceConfig(kind="frozen"), GenerationConfig(), perf, device)
    # (the stack's generator goes unused: DPO samples nothing)
    d = cfg.data

    def load(src: str) -> DPOPairs:
        return encode_dpo_pairs(load_preferences(src, d.on_empty)[: d.limit], stack.tokenizer, cfg, src)

    trainer = DPOTrainer(cfg, stack.policy, stack.tokenizer, stack.reference, load(d.train))
    if resume:
        load_checkpoint(trainer, resume, "policy", stack.policy)
    return trainer, load(d.eval) if d.eval else None


def run_dpo(cfg: DPORunConfig, resume: str | None = None, stop_after: int | None = None) -> dict:
    """Train; write checkpoints, ``final/`` (LoRA merged) and, with ``data.eval``, ``eval.json`` (before and after).
    Returns ``{"before", "after"}`` (held-out metrics), ``final``, ``trainer`` and the run loop's entries."""
    trainer, held = build_dpo_trainer(cfg, resume)
    report = metrics_report("dpo", held is not None, {"loss": "loss/dpo", "acc": "dpo/reward_accuracy"},
                            ["loss/dpo", "dpo/reward_accuracy", "dpo/margin", "grad_norm"],
                            ["eval/loss/dpo", "eval/dpo/reward_accuracy", "eval/dpo/margin"])
    plan = RunPlan(
        total=trainer.total_steps, save=checkpoint_saver(trainer, cfg, "policy", trainer.policy, trainer.tokenizer),
        export=lambda out, _: {"final": export_pretrained(trainer.policy, trainer.tokenizer, out / "final")},
        evaluate=(lambda: StepOutput(trainer.evaluate(held))) if held is not None else None,
        eval_every=cfg.logging.eval_every)
    result = run_loop(trainer, cfg, report, plan, stop_after)
    for key in ("before", "after"):
        if key in result:
            result[key] = result[key].metrics
    if "after" in result:
        report_json = {"before": result.get("before"), "after": result["after"]}
        atomic_write_text(Path(cfg.logging.output_dir) / "eval.json", json.dumps(report_json, indent=1))
    return result
