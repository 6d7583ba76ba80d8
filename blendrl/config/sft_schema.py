"""The typed configuration of ``blendrl sft`` (supervised fine-tuning on responses).

Sections: model, data, train, logging, perf. Each default has one home: its field here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .schema import ModelConfig, PerfConfig, _require
from .settings import LogSettings, OptimSettings


@dataclass
class SFTTrainConfig(OptimSettings):
    """The optimizer (:class:`~blendrl.config.settings.OptimSettings`), ``batch_size`` conversations per step in
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
    """Everything ``blendrl sft`` reads: ``model``, ``data`` (a .jsonl file), ``train``, ``logging`` (the run folder
    ``logging.output_dir`` with metrics, checkpoints and ``final/``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = "sft.jsonl"
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    logging: LogSettings = field(default_factory=lambda: LogSettings(output_dir="runs/sft"))
    perf: PerfConfig = field(default_factory=PerfConfig)  # lean_layers applies to the trained model
    plugins: list[str] = field(default_factory=list)

    MOVED_KEYS = {"output_dir": "logging.output_dir"}  # the loader says where a moved key went
