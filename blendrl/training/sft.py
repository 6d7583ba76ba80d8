"""Supervised fine-tuning (``blendrl sft``): next-token loss on the assistant response only.

Good enough to make the SFT models that SALSA averages (same base, different ``train.seed`` → different data order).
Data rows: ``{"prompt": str | messages, "response": str}`` or ``{"messages": [..., {"role": "assistant", ...}]}``
in .jsonl; a bad row is an error naming file, row and field. The run is the one run loop's
(:mod:`blendrl.training.driver`): metrics, ``checkpoints/step-NNNNNN`` with exact resume, and ``final/``, a plain
``save_pretrained`` folder.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from ..config.sft_schema import SFTRunConfig
from ..data.pair_encoding import pad_right
from ..data.prompts import DataError, epoch_batch, message_rows
from ..core import dist
from .driver import RunPlan, checkpoint_saver, export_pretrained, load_checkpoint, metrics_report, run_loop
from .engine import LocalEngine
from .trainer import StepOutput


def read_sft_rows(path: str) -> list[list[dict]]:
    """Conversations ending with the assistant's response."""
    convs, file = [], Path(path)
    for file, where, messages, extra in message_rows(path, "sft data"):
        if "response" in extra:
            if not isinstance(extra["response"], str) or not extra["response"].strip():
                raise DataError(f"{where}, field 'response': expected a non-empty string")
            messages = [*messages, {"role": "assistant", "content": extra["response"]}]
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}, field 'response': missing (or end 'messages' with the assistant turn)")
        convs.append(messages)
    if not convs:
        raise DataError(f"{file}: no rows")
    return convs


def encode_sft(convs: list[list[dict]], tokenizer, max_length: int) -> list[tuple[list[int], int]]:
    """``(ids, n_prompt_tokens)`` per conversation; the loss covers ids[n_prompt:]. Long rows are cut (logged)."""
    out, cut = [], 0
    for msgs in convs:
        prompt = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(msgs, tokenize=False)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        if ids[: len(p_ids)] != p_ids:  # a template that re-tokenises the boundary: fall back to concatenation
            ids = p_ids + tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        cut += len(ids) > max_length
        out.append((ids[:max_length], min(len(p_ids), max_length)))
    if cut:
        logging.getLogger("blendrl").warning("sft: %d of %d conversations cut to max_length=%d", cut, len(convs),
                                             max_length)
    return out


def _batch(rows: list[tuple[list[int], int]], pad_id: int):
    """ids, mask, labels (B, L): labels are −100 on prompt tokens and padding."""
    ids, mask = pad_right([seq for seq, _ in rows], pad_id)  # (B, L)
    labels = ids.masked_fill(mask == 0, -100)
    for i, (_, n_prompt) in enumerate(rows):
        labels[i, :n_prompt] = -100
    return ids, mask, labels


class SFTTrainer:
    """One optimizer step per :meth:`step` on the next ``train.batch_size`` conversations of the epoch's seeded
    order (:func:`~blendrl.data.prompts.epoch_batch`), the loss the mean over the batch's response tokens;
    ``iteration`` counts the steps, ``losses`` holds each step's loss (kept in checkpoints)."""

    def __init__(self, cfg: SFTRunConfig, model, tokenizer, rows: list[tuple[list[int], int]]) -> None:
        self.cfg, self.model, self.tokenizer, self.rows = cfg, model, tokenizer, rows
        t = cfg.train
        self.steps_per_epoch = -(-len(rows) // t.batch_size)
        self.total_steps = t.epochs * self.steps_per_epoch
        self.engine = LocalEngine(model, t.lr, t, self.total_steps)
        self.iteration = 0
        self.losses: list[float] = []
        model.train()

    def step(self) -> StepOutput:
        """One optimizer step on the next batch (micro-batches of ``train.micro_batch_size``), with its metrics."""
        t = self.cfg.train
        batch = [self.rows[i] for i in epoch_batch(len(self.rows), t.batch_size, t.seed, self.iteration)]
        n_tokens = sum(len(ids) - n for ids, n in batch)
        total = 0.0
        lr = self.engine.lr
        device = next(self.model.parameters()).device
        for m in range(0, len(batch), t.micro_batch_size):
            ids, mask, labels = (x.to(device) for x in _batch(batch[m: m + t.micro_batch_size],
                                                                self.tokenizer.pad_token_id))
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="sum")
            self.engine.backward(loss / max(1, n_tokens))  # mean over the batch's response tokens
            total += loss.item()
        grad_norm = self.engine.step(math.isfinite(total))
        self.iteration += 1
        self.losses.append(total / max(1, n_tokens))
        return StepOutput({"loss/sft": self.losses[-1], "grad_norm": grad_norm, "lr": lr, "tokens": n_tokens,
                           "epoch": (self.iteration - 1) // self.steps_per_epoch,
                           "skipped/updates_total": self.engine.skipped})

    def state_dict(self) -> tuple[dict, dict]:
        state = {"step": self.iteration, "losses": list(self.losses), "torch_rng": torch.get_rng_state()}
        return state, {"engines": {"model": self.engine.state_dict()}}

    def load_state_dict(self, trainer: dict, optim: dict) -> None:
        self.iteration, self.losses = trainer["step"], list(trainer["losses"])
        torch.set_rng_state(trainer["torch_rng"])
        self.engine.load_state_dict(optim["engines"]["model"])


def build_sft_trainer(cfg: SFTRunConfig, resume: str | None = None) -> SFTTrainer:
    """The model and tokenizer of ``model.name`` on ``model.device`` in ``model.dtype`` (with
    ``gradient_checkpointing`` and LoRA adapters when configured; ``final/`` is merged), the encoded conversations
    of ``data``, and the resumed state."""
    from ..models import add_lora, load_causal_lm, load_tokenizer, resolve_model
    from ..models.checkpointing import enable_checkpointing
    from .run import set_up_torch

    dist.require_single_process("blendrl sft")
    set_up_torch(cfg.train.threads, cfg.train.seed, cfg.perf)
    path = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(path, cfg.model.hub)
    model = load_causal_lm(path, cfg.model.dtype, lean=cfg.perf.lean_layers, hub=cfg.model.hub).to(
        dist.resolve_device(cfg.model.device))
    if cfg.model.gradient_checkpointing:
        enable_checkpointing(model)
    if cfg.model.lora is not None:
        model = add_lora(model, cfg.model.lora)
    trainer = SFTTrainer(cfg, model, tokenizer, encode_sft(read_sft_rows(cfg.data), tokenizer, cfg.train.max_length))
    if resume:
        load_checkpoint(trainer, resume, "model", model)
    return trainer


def run_sft(cfg: SFTRunConfig, resume: str | None = None, stop_after: int | None = None) -> dict:
    """Train and write ``logging.output_dir``/final. Returns ``{"final": path, "losses": [per step]}``, ``trainer``
    and the run loop's entries."""
    trainer = build_sft_trainer(cfg, resume)
    report = metrics_report("sft", False, {"loss": "loss/sft"}, ["loss/sft", "grad_norm"], [])
    plan = RunPlan(
        total=trainer.total_steps, save=checkpoint_saver(trainer, cfg, "model", trainer.model, trainer.tokenizer),
        export=lambda out, _: {"final": export_pretrained(trainer.model.eval(), trainer.tokenizer, out / "final")})
    result = run_loop(trainer, cfg, report, plan, stop_after)
    result["losses"] = trainer.losses
    return result
