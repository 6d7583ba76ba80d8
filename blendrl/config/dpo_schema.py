"""The typed configuration of ``blendrl dpo`` (offline DPO, IPO and conservative DPO; docs/algorithms.md §12).

Sections: model, data, loss, train, logging, perf. Each default has one home: its field here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .rm_schema import RMDataConfig
from .schema import ModelConfig, PerfConfig, _require
from .settings import EvalLogSettings, PairTrainSettings


@dataclass
class DPOLossConfig:
    """``kind``: ``sigmoid`` (DPO; with ``label_smoothing`` ε > 0, conservative DPO) or ``ipo`` (on length-averaged
    log-probs), or any name in ``blendrl.functional.dpo.DPO_LOSSES``. ``beta``: TRL's default 0.1.
    ``strength`` reads the pairs' μ̂ column (``blendrl rm strength``): ``none``, ``weight`` (each pair's loss × σ(μ̂),
    so likely-mislabelled pairs count less) or ``filter`` (drop pairs with μ̂ < ``min_strength``)."""

    kind: str = "sigmoid"
    beta: float = 0.1
    label_smoothing: float = 0.0
    strength: Literal["none", "weight", "filter"] = "none"
    min_strength: float = 0.0

    def validate(self) -> None:
        _require(self.beta > 0, "beta: must be > 0")
        _require(0.0 <= self.label_smoothing < 0.5, "label_smoothing: must be in [0, 0.5)")


@dataclass
class DPOTrainConfig(PairTrainSettings):
    """The optimizer (:class:`~blendrl.config.settings.PairTrainSettings`), ``batch_size`` pairs per optimizer step
    in micro-batches of ``micro_batch_size`` pairs, for ``epochs``."""

    batch_size: int = 16
    micro_batch_size: int = 4
    lr: float = 5e-7


@dataclass
class DPORunConfig:
    """Everything ``blendrl dpo`` reads. The policy and the reference live on ``model.device`` in ``model.dtype``;
    the reference is a frozen copy of the initial policy (kept in a file between uses unless ``model.offload_frozen``
    says otherwise), or the policy with its adapters disabled under ``model.lora``. ``logging.eval_every``: optimizer
    steps between held-out evaluations of ``data.eval``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: RMDataConfig = field(default_factory=RMDataConfig)
    loss: DPOLossConfig = field(default_factory=DPOLossConfig)
    train: DPOTrainConfig = field(default_factory=DPOTrainConfig)
    logging: EvalLogSettings = field(default_factory=lambda: EvalLogSettings(output_dir="runs/dpo"))
    perf: PerfConfig = field(default_factory=PerfConfig)  # lean_layers applies to the policy, tied_grads_in_place not
    plugins: list[str] = field(default_factory=list)

    MOVED_KEYS = {"eval_every": "logging.eval_every"}  # the loader says where a moved key went
