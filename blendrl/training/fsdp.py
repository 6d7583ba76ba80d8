"""Sharded data-parallel training (``train.fsdp: true`` under ``torchrun``): FSDP2's ``fully_shard`` on every
decoder layer and on the model, so each rank holds 1/world of the policy's and the critic's weights, gradients and
optimizer state. Gradients are reduce-scattered as sums (each rank's losses are already its share of the whole
batch's token mean; FSDP averages over ranks, so :class:`~blendrl.training.engine.FSDPEngine` scales each loss by
the world size), the one-step rule is :class:`~blendrl.training.engine.LocalEngine`'s, and checkpoints are
gathered into plain ``save_pretrained`` folders and full optimizer states, so a run resumes on any world size.

What steps aside under sharding (the model's parts are only whole inside its own forward): the chunked log-prob
head and shared-prompt passes (the full forward runs instead), in-place tied gradients, the lean layers, the static
decoder. Supported: ``blendrl ppo`` (PPO, RLOO, GRPO, REINFORCE) with one minibatch per epoch, no LoRA, a frozen,
``model`` or ``soup`` reference (an unsharded copy on every rank), ``generation.backend: hf``.
"""
from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule, fully_shard

from ..config import ConfigError
from ..models.layout import transformers_model


def check_supported(cfg) -> None:
    """A clear error for what sharded training does not cover yet."""
    problems = []
    if cfg.train.minibatches != 1:
        problems.append("train.minibatches must be 1")
    if cfg.model.lora is not None or cfg.critic.lora is not None:
        problems.append("no LoRA")
    if cfg.reference.kind == "ema":
        problems.append("reference.kind ema (it would need the whole policy on every rank)")
    if cfg.generation.backend != "hf":
        problems.append("generation.backend hf")
    if problems:
        raise ConfigError("train.fsdp: " + "; ".join(problems))


def shard(model: torch.nn.Module) -> torch.nn.Module:
    """``fully_shard`` each decoder layer, then the model (embeddings, final norm, head)."""
    base = transformers_model(model)
    layers = getattr(getattr(base, base.base_model_prefix), "layers", None)
    for layer in layers or []:
        fully_shard(layer)
    fully_shard(model)
    return model


def reshard(model: torch.nn.Module) -> None:
    """Put every FSDP unit of ``model`` back to its shards (a no-grad forward, e.g. sampling, leaves the root's
    parameters gathered), so the module's parameters are the ones the optimizer holds."""
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


def full_state_dict(model: torch.nn.Module) -> dict:
    """The whole model's state dict on the CPU of every rank (a collective: every rank calls it)."""
    reshard(model)
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
