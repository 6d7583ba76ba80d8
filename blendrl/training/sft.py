"""Supervised fine-tuning (``blendrl sft``): next-token loss on the assistant response only.

Good enough to make the SFT models that SALSA averages (same base, different ``train.seed`` → different data order).
Data rows: ``{"prompt": str | messages, "response": str}`` or ``{"messages": [..., {"role": "assistant", ...}]}``
in .jsonl; a bad row is an error naming file, row and field. The result is a plain ``save_pretrained`` folder.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal
from pathlib import Path

import torch

from ..config.schema import ModelConfig, OptimSettings, PerfConfig, _require
from ..data.pair_encoding import pad_right
from ..data.prompts import DataError, message_rows
from ..core.fsutil import atomic_dir
from ..core import dist
from .engine import LocalEngine


@dataclass
class SFTTrainConfig(OptimSettings):
    """The optimizer (:class:`~blendrl.config.schema.OptimSettings`), ``batch_size`` conversations per step in
    micro-batches of ``micro_batch_size``, ``epochs``, and ``max_length`` tokens per conversation."""

    epochs: int = 1
    batch_size: int = 16
    micro_batch_size: int = 8
    lr: float = 2e-5
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    max_length: int = 512

    def validate(self) -> None:
        super().validate()
        _require(self.epochs >= 1 and self.batch_size >= 1 and self.micro_batch_size >= 1, "epochs, batch_size, "
                 "micro_batch_size: must be >= 1")


@dataclass
class SFTRunConfig:
    """Everything ``blendrl sft`` reads: ``model``, ``data`` (a .jsonl file), ``train``, ``output_dir``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = "sft.jsonl"
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    output_dir: str = "runs/sft"
    perf: PerfConfig = field(default_factory=PerfConfig)  # lean_layers applies to the trained model
    plugins: list[str] = field(default_factory=list)


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


def run_sft(cfg: SFTRunConfig) -> dict:
    """Train and write ``output_dir``/final. Returns ``{"final": path, "losses": [per step]}``."""
    dist.require_single_process("blendrl sft")
    from ..models import load_causal_lm, load_tokenizer, resolve_model

    path = resolve_model(cfg.model.name)
    tokenizer, model = load_tokenizer(path), load_causal_lm(path, cfg.model.dtype, lean=cfg.perf.lean_layers)
    rows = encode_sft(read_sft_rows(cfg.data), tokenizer, cfg.train.max_length)
    t = cfg.train
    steps_per_epoch = -(-len(rows) // t.batch_size)
    engine = LocalEngine(model, t.lr, t, t.epochs * steps_per_epoch)
    model.train()
    losses = []
    for epoch in range(t.epochs):
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(t.seed * 100_003 + epoch)).tolist()
        for start in range(0, len(order), t.batch_size):
            batch = [rows[i] for i in order[start: start + t.batch_size]]
            n_tokens = sum(len(ids) - n for ids, n in batch)
            total = 0.0
            for m in range(0, len(batch), t.micro_batch_size):
                micro = batch[m: m + t.micro_batch_size]
                ids, mask, labels = _batch(micro, tokenizer.pad_token_id)
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="sum")
                engine.backward(loss / max(1, n_tokens))  # mean over the batch's response tokens
                total += loss.item()
            engine.step(math.isfinite(total))
            losses.append(total / max(1, n_tokens))
    final = Path(cfg.output_dir) / "final"
    with atomic_dir(final) as tmp:
        model.eval().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return {"final": final, "losses": losses}
