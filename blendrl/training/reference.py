"""Reference strategies: the KL anchor is a registered piece, chosen by ``reference.kind``.

- ``frozen``: the initial policy. Under LoRA it is the same weights with adapters disabled (no second copy).
- ``ema``: ``θ_ref ← η·θ_π + (1−η)·θ_ref`` after each iteration's update (Xu et al. 2024; docs/algorithms.md §7;
  default η = 0.001 as ReaLHF).
- ``model``: any checkpoint folder (``reference.path``), e.g. a soup written by ``blendrl soup``.
- ``soup``: SALSA's reference, the weight average of ``reference.paths`` built at start (docs/algorithms.md §4).
Register another with ``@REFERENCES.register(name)``: a class built as ``cls(policy, cfg, model_dtype)``.

``model.offload_frozen`` (default ``auto``) keeps a separate frozen reference model in a file between uses
(:mod:`blendrl.models.offload`); ``model_for_forward()`` is then only valid inside ``context()``. Under ``auto`` a
reference is offloaded when :attr:`Reference.offloadable` holds: it has a model of its own and does not move
(a class that overrides ``after_update`` moves).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..config import ConfigError, ReferenceConfig
from ..core.registry import Registry
from ..models import is_peft, load_causal_lm, resolve_model
from ..models.offload import OffloadedWeights, mapped
from .experience import Experience, forward_rows, response_logprobs

REFERENCES: Registry = Registry("reference strategy")


class Reference:
    """Gives ``ref_logp`` for an experience; may move after each update; saves what resume needs."""

    needs_saving = False
    offloaded: OffloadedWeights | None = None

    def model_for_forward(self):
        raise NotImplementedError

    @torch.no_grad()
    def logprobs(self, exp: Experience, temperature: float, forward_batch_size: int) -> torch.Tensor:
        """π_ref's log-probs of ``exp``'s response tokens, (B, T), in no-grad passes of ``forward_batch_size`` rows."""
        with self.context():
            model = self.model_for_forward()
            return forward_rows(lambda mb: response_logprobs(model, mb, temperature), exp, forward_batch_size)

    @property
    def offloadable(self) -> bool:
        """Whether ``offload()`` applies: a separate model (``self.model``) that never changes after construction."""
        return getattr(self, "model", None) is not None and type(self).after_update is Reference.after_update

    def context(self):
        """What ``model_for_forward()`` must run under (LoRA: adapters disabled; offloaded: weights mapped in)."""
        return mapped(self.offloaded)

    def offload(self) -> None:
        """Keep this reference's own frozen model in a file between uses."""
        model = getattr(self, "model", None)
        if model is None:
            raise ConfigError("model.offload_frozen: the LoRA reference is the policy with adapters disabled; "
                              "there is no separate model to offload")
        self.offloaded = OffloadedWeights(model)

    def after_update(self, policy) -> None:
        return None

    def save(self, folder: Path) -> None:
        return None

    def load(self, folder: Path) -> None:
        return None


@REFERENCES.register("frozen")
class FrozenReference(Reference):
    def __init__(self, policy, cfg: ReferenceConfig, dtype: str) -> None:
        self.policy = policy
        self.model = None if is_peft(policy) else copy.deepcopy(policy).eval().requires_grad_(False)

    def model_for_forward(self):
        return self.policy if self.model is None else self.model

    def context(self):
        if self.model is None:
            return self.policy.disable_adapter()
        return super().context()

    def offload(self) -> None:
        if self.model is not None:  # under LoRA the reference is the policy itself: nothing to offload
            super().offload()


def _ema_check(cfg: ReferenceConfig, root=None) -> None:
    model = getattr(root, "model", None)
    if getattr(model, "lora", None) is not None:
        raise ValueError("kind: ema needs full fine-tuning (it averages all weights); drop model.lora")


@REFERENCES.register("ema", check=_ema_check)
class EMAReference(Reference):
    needs_saving = True

    def __init__(self, policy, cfg: ReferenceConfig, dtype: str) -> None:
        if is_peft(policy):  # a library user's policy; a config's lora is refused by the kind's check
            raise ConfigError("reference.kind: ema needs full fine-tuning (it averages all weights); drop model.lora")
        self.eta = cfg.ema_eta
        self.model = copy.deepcopy(policy).eval().requires_grad_(False)

    def model_for_forward(self):
        return self.model

    def offload(self) -> None:
        raise ConfigError("model.offload_frozen: the EMA reference changes after every update; it stays in memory "
                          "(use reference.kind frozen, model or soup, or set model.offload_frozen: false)")

    @torch.no_grad()
    def after_update(self, policy) -> None:
        for ref_p, p in zip(self.model.parameters(), policy.parameters()):
            ref_p.lerp_(p.detach(), self.eta)  # θ_ref + η(θ_π − θ_ref)

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)

    def load(self, folder: Path) -> None:
        loaded = load_causal_lm(str(folder))
        self.model.load_state_dict(loaded.state_dict())  # copies onto the reference's device


def _needs_path(cfg: ReferenceConfig, root=None) -> None:
    if not cfg.path:
        raise ValueError("path: required when kind is model")


def _soup_check(cfg: ReferenceConfig, root=None) -> None:
    if len(cfg.paths) < 2:
        raise ValueError("paths: a soup reference needs at least 2 models")
    if cfg.weights and len(cfg.weights) != len(cfg.paths):
        raise ValueError("weights: one per path")


@REFERENCES.register("model", check=_needs_path)
class ModelReference(Reference):
    def __init__(self, policy, cfg: ReferenceConfig, dtype: str) -> None:
        self.model = load_causal_lm(resolve_model(cfg.path), dtype).requires_grad_(False).to(_device(policy))

    def model_for_forward(self):
        return self.model


@REFERENCES.register("soup", check=_soup_check)
class SoupReference(ModelReference):
    """SALSA (Chegini et al.): the frozen weight average ``Σ_i w_i·θ_i`` of ``cfg.paths`` (equal weights by default)."""

    def __init__(self, policy, cfg: ReferenceConfig, dtype: str) -> None:
        from ..models.soups import weighted_state_dict

        weights = cfg.weights or [1.0 / len(cfg.paths)] * len(cfg.paths)
        models = [load_causal_lm(resolve_model(p), dtype) for p in cfg.paths]
        self.model = models[0].requires_grad_(False)
        self.model.load_state_dict(weighted_state_dict([m.state_dict() for m in models], weights))
        self.model.to(_device(policy))


def _device(model) -> torch.device:
    return next(model.parameters()).device


def build_reference(policy, cfg: ReferenceConfig, dtype: str, offload: bool | str = False) -> Reference:
    """The configured reference; ``offload``: its frozen model lives in a file between uses (True: required,
    an error where it cannot; ``"auto"``: where :attr:`Reference.offloadable`)."""
    reference = REFERENCES[cfg.kind](policy, cfg, dtype)  # the name and the kind's needs: checked by check_names
    if _device(policy).type != "cpu":  # offloading to files is a CPU-memory trick
        offload = False
    if offload is True or (offload == "auto" and reference.offloadable):
        reference.offload()
    return reference
