"""``blendrl dpo``: offline DPO, IPO and conservative DPO on preference pairs (docs/algorithms.md §12).

The pairs are the ones ``blendrl rm`` reads (any of its formats, μ̂ columns included). Each side is the prompt under
the chat template with the generation prompt, then the response and EOS: the layout the RL loops sample, so the
sequence log-probabilities come from the same pass (:func:`~blendrl.training.experience.response_logprobs`; a
pair's two rows share their prompt, computed once). The reference is the frozen initial policy, or the policy with
its adapters disabled under LoRA (:mod:`blendrl.training.reference`). One optimizer step per ``train.batch_size``
pairs through the training engine; checkpoints are ``save_pretrained`` folders with exact resume.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ReferenceConfig, to_dict
from ..config.dpo_schema import DPORunConfig
from ..core import dist
from ..core.fsutil import atomic_dir, atomic_write_text
from ..core.types import Experience
from ..data.preferences import PreferencePair, load_preferences
from ..data.prompts import DataError, epoch_batch
from ..functional.dpo import DPO_LOSSES, implicit_rewards
from ..models import add_lora, is_peft, load_causal_lm, load_tokenizer, resolve_model
from .checkpoint import find_checkpoint, load_trainer_state, load_weights, write_checkpoint
from .engine import LocalEngine
from .experience import response_logprobs, teacher_forced_experience
from .logging import RunLogger
from .names import check_names
from .reference import build_reference

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

    def __len__(self) -> int:
        return len(self.pairs)


def encode_dpo_pairs(pairs: list[PreferencePair], tokenizer, cfg: DPORunConfig, source: str) -> DPOPairs:
    """Tokenise prompt and responses; a pair longer than ``data.max_length`` has its responses cut on the right
    (``truncate``), is dropped (``skip``) — both counted — or raises (``error``). ``loss.strength`` weighs or
    filters by μ̂."""
    d, s = cfg.data, cfg.loss
    out = DPOPairs([], [], [], [], torch.zeros(0))
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


def pair_experience(enc: DPOPairs, idx: list[int], pad_id: int) -> Experience:
    """Rows ``[chosen of idx…, rejected of idx…]`` as an Experience: prompt left-padded, response right-padded."""
    return teacher_forced_experience([enc.prompts[i] for i in idx] * 2,
                                     [enc.chosen[i] for i in idx] + [enc.rejected[i] for i in idx], pad_id)


def sequence_logps(token_logp: torch.Tensor, mask: torch.Tensor, average: bool) -> torch.Tensor:
    """Sum (or mean, for IPO) of each row's response-token log-probs. (B, T) → (B,)."""
    total = (token_logp * mask).sum(1)
    return total / mask.sum(1).clamp_min(1) if average else total


class DPOTrainer:
    def __init__(self, cfg: DPORunConfig, policy, tokenizer, reference, train: DPOPairs) -> None:
        self.cfg, self.policy, self.tokenizer, self.reference, self.pairs = cfg, policy, tokenizer, reference, train
        t = cfg.train
        self.steps_per_epoch = math.ceil(len(train) / t.batch_size)
        self.total_steps = t.epochs * self.steps_per_epoch
        self.engine = LocalEngine(policy, t.lr, t, self.total_steps)
        self.step = 0

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def batch_indices(self, step: int) -> list[int]:
        """Pairs of optimizer step ``step`` (:func:`~blendrl.data.prompts.epoch_batch`)."""
        return epoch_batch(len(self.pairs), self.cfg.train.batch_size, self.cfg.train.seed, step)

    def pair_losses(self, enc: DPOPairs, idx: list[int], grad: bool) -> tuple[torch.Tensor, dict]:
        """Per-pair losses (n,) of pairs ``idx`` and their implicit-reward statistics."""
        s, n = self.cfg.loss, len(idx)
        exp = pair_experience(enc, idx, self.tokenizer.pad_token_id)
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

    def train_step(self) -> dict:
        """One optimizer step on the next batch of pairs (weighted mean of their losses). Returns its metrics."""
        self.policy.train()
        idx = self.batch_indices(self.step)
        weight = self.pairs.weight[idx]  # (b,)
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
        self.step += 1
        return {**sums, "grad_norm": grad_norm, "lr": lr, "epoch": (self.step - 1) // self.steps_per_epoch,
                "skipped/updates_total": self.engine.skipped}

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
        return {"step": self.step, "torch_rng": torch.get_rng_state()}, engines

    def load_state_dict(self, trainer: dict, optim: dict) -> None:
        self.step = trainer["step"]
        torch.set_rng_state(trainer["torch_rng"])
        self.engine.load_state_dict(optim["engines"]["policy"])


def build_dpo_trainer(cfg: DPORunConfig, resume: str | None = None) -> tuple[DPOTrainer, DPOPairs | None]:
    """The trainer and the encoded held-out pairs (None without ``data.eval``)."""
    from .run import set_up_torch

    check_names(cfg, {(type(cfg.loss), "kind"): (DPO_LOSSES, ())})
    dist.require_single_process("blendrl dpo")
    set_up_torch(cfg.train.threads, cfg.train.seed, cfg.perf)
    path = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(path)
    policy = load_causal_lm(path, cfg.model.dtype, lean=cfg.perf.lean_layers)
    if cfg.model.lora is not None:
        policy = add_lora(policy, cfg.model.lora)
    reference = build_reference(policy, ReferenceConfig(kind="frozen"), cfg.model.dtype, offload=False)
    d = cfg.data
    load = lambda src: encode_dpo_pairs(load_preferences(src, d.on_empty)[: d.limit], tokenizer, cfg, src)  # noqa: E731
    trainer = DPOTrainer(cfg, policy, tokenizer, reference, load(d.train))
    if resume:
        ckpt = find_checkpoint(resume)
        load_weights(policy, ckpt / "policy")
        trainer.load_state_dict(*load_trainer_state(ckpt))
    return trainer, load(d.eval) if d.eval else None


def _save(trainer: DPOTrainer, out: Path) -> Path:
    state, optim = trainer.state_dict()

    def fill(tmp: Path) -> None:
        trainer.policy.save_pretrained(tmp / "policy")
        trainer.tokenizer.save_pretrained(tmp / "policy")

    return write_checkpoint(out / "checkpoints", f"step-{trainer.step:06d}", fill, to_dict(trainer.cfg), state, optim,
                            trainer.cfg.logging.keep_checkpoints)


def run_dpo(cfg: DPORunConfig, resume: str | None = None, stop_after: int | None = None) -> dict:
    """Train; write checkpoints, ``final/`` (LoRA merged) and, with ``data.eval``, ``eval.json`` (before and after).
    Returns ``{"before", "after", "final", "trainer"}``."""
    import copy

    trainer, held = build_dpo_trainer(cfg, resume)
    out, lg = Path(cfg.logging.output_dir), cfg.logging
    out.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(out, lg.tensorboard, lg.progress, trainer.total_steps, trainer.step, desc="dpo")
    result: dict = {"trainer": trainer}
    try:
        if held is not None and trainer.step == 0:
            result["before"] = trainer.evaluate(held)
            logger.log(0, result["before"])
        done_here = 0
        while not trainer.done:
            metrics = trainer.train_step()
            if trainer.step % lg.log_every == 0 or trainer.done:
                logger.log(trainer.step, metrics)
            logger.progress({"loss": metrics["loss/dpo"], "acc": metrics["dpo/reward_accuracy"]})
            if held is not None and cfg.eval_every and trainer.step % cfg.eval_every == 0 and not trainer.done:
                logger.log(trainer.step, trainer.evaluate(held))
            if lg.save_every and trainer.step % lg.save_every == 0:
                _save(trainer, out)
            done_here += 1
            if stop_after is not None and done_here >= stop_after:
                return result
        _save(trainer, out)
        model = copy.deepcopy(trainer.policy).merge_and_unload() if is_peft(trainer.policy) else trainer.policy
        with atomic_dir(out / "final") as tmp:
            model.save_pretrained(tmp)
            trainer.tokenizer.save_pretrained(tmp)
        result["final"] = out / "final"
        if held is not None:
            result["after"] = trainer.evaluate(held)
            logger.log(trainer.step, result["after"])
            report = {"before": result.get("before"), "after": result["after"]}
            atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    finally:
        logger.close()
    return result
