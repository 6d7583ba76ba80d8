"""Settings shared by every command's configuration: LoRA adapters, the optimizer (:class:`OptimSettings`), the
RL loop (:class:`LoopSettings`), speed tricks (:class:`PerfConfig`) and logging (:class:`LogSettings`).
Each default has one home: its field here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from .loader import ConfigError


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass
class LoraConfig:
    """LoRA adapters through peft. With LoRA the reference policy is the same weights with adapters disabled."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    # module names, or "all-linear" (peft: every linear layer but the output head)
    target_modules: Union[list[str], str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def validate(self) -> None:
        _require(self.r > 0, "r: must be > 0")
        _require(not isinstance(self.target_modules, str) or self.target_modules == "all-linear",
                 f"target_modules: a list of module names or 'all-linear', got {self.target_modules!r}")


@dataclass
class ColumnsConfig:
    """Which columns of a prompt table hold what (``data.columns``), for tables written for other tools (verl's
    parquet, a hub dataset). ``prompt``: the column with the prompt, a string or a list of chat messages (TRL's
    conversational format); None: ``prompt``, else ``messages``. ``metadata``: metadata field → column, with dots
    into nested objects (verl: ``{answer: reward_model.ground_truth}``). Every other column stays in the metadata
    under its own name."""

    prompt: Optional[str] = None
    metadata: dict = field(default_factory=dict)

    def validate(self) -> None:
        _require(self.prompt is None or (isinstance(self.prompt, str) and self.prompt.strip()),
                 "prompt: a column name (or null: prompt, else messages)")
        for key, column in self.metadata.items():
            _require(isinstance(column, str) and column.strip(), f"metadata.{key}: expected a column name, got "
                     f"{column!r}")


@dataclass
class RunSettings:
    """The ``seed`` of a command's random streams (:mod:`blendrl.core.seeds`) and its torch ``threads``: the
    ``train:`` section of a command that trains nothing itself (``bon``, the lab) and the start of every trainer's
    (:class:`OptimSettings`), so both are ``train.seed`` and ``train.threads`` everywhere."""

    seed: int = 0
    threads: Optional[int] = None


@dataclass
class OptimSettings(RunSettings):
    """The optimizer of every trainer (PPO family, CGPO, reward models, DPO, SFT; one training engine,
    :mod:`blendrl.training.engine`): the ``seed`` and torch ``threads`` (:class:`RunSettings`), AdamW ``lr`` and
    ``weight_decay``, the lr ``schedule`` (constant, linear or cosine decay to 0) after ``warmup_steps`` optimizer
    steps of linear warm-up, gradient clipping at ``max_grad_norm``."""

    lr: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    max_grad_norm: float = 1.0

    def validate(self) -> None:
        _require(self.lr > 0, "lr: must be > 0")
        _require(self.warmup_steps >= 0, "warmup_steps: must be >= 0")
        _require(self.max_grad_norm > 0, "max_grad_norm: must be > 0")


@dataclass
class LoopSettings(OptimSettings):
    """What every RL loop adds to the optimizer: ``iterations``, rows per gradient pass (``micro_batch_size``) and
    per no-grad pass (``forward_batch_size``; left unset it is ``micro_batch_size``, filled in when the config is
    built, so every pass reads one field)."""

    iterations: int = 20
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # autocast of the trained forwards (fp16: loss scaling)
    fsdp: bool = False  # under torchrun: shard policy and critic with FSDP2 (blendrl.training.fsdp)
    micro_batch_size: int = 16
    forward_batch_size: Optional[int] = None  # rows per no-grad pass; None: micro_batch_size

    def __post_init__(self) -> None:
        if self.forward_batch_size is None:
            self.forward_batch_size = self.micro_batch_size

    def validate(self) -> None:
        super().validate()
        _require(self.iterations >= 1, "iterations: must be >= 1")
        _require(self.forward_batch_size is None or self.forward_batch_size >= 1, "forward_batch_size: must be >= 1")


@dataclass
class PerfConfig:
    """Speed and memory tricks, one switch each, all on for a config-driven run (``blendrl`` commands and
    :func:`blendrl.build_trainer`); a library user of :mod:`blendrl.models` gets none of them unless asked. None
    changes a result beyond float rounding (each has tests against the plain path).

    ``lean_layers``: trained models keep fewer activations for backward (:mod:`blendrl.models.lean`).
    ``tied_grads_in_place``: a tied embedding/LM head accumulates its gradient in one buffer
    (:mod:`blendrl.models.tied_grads`; it changes autograd's contract for that weight, so it is opt-out).
    ``cpu_kernels``: decode steps on the CPU through blendrl's C++ kernel (:mod:`blendrl.rollout.cpu_gemm`;
    ``BLENDRL_CPU_KERNELS=0`` also turns it off).
    ``freed_memory`` (glibc's malloc; no effect elsewhere): ``keep`` (default) keeps freed blocks in the process for
    the next iteration's tensors, ``glibc`` leaves glibc's own thresholds, ``return`` hands blocks over 1 MiB back
    to the OS at once (lower peak RSS, slower updates: every fresh page costs a page fault). Measurements:
    docs/performance.md."""

    lean_layers: bool = True
    tied_grads_in_place: bool = True
    cpu_kernels: bool = True
    freed_memory: Literal["keep", "glibc", "return"] = "keep"


@dataclass
class OutputSettings:
    """Where a command writes: ``output_dir``, the ``logging:`` section of a command without a step loop (``bon``,
    the lab) and the start of every trainer's (:class:`LogSettings`), so it is ``logging.output_dir`` everywhere."""

    output_dir: str = "runs/out"


@dataclass
class TrackerConfig:
    """An experiment tracker (``blendrl.training.trackers.TRACKERS``): ``wandb`` (offline unless ``options.mode``
    says otherwise), ``mlflow`` (a file store in the run folder unless ``options.tracking_uri``), ``trackio``
    (local), or a kind a plugin registers; ``options`` go to its builder."""

    kind: str = "wandb"
    options: dict = field(default_factory=dict)


@dataclass
class LogSettings(OutputSettings):
    """Where and how every trainer writes: ``output_dir`` (metrics.jsonl, TensorBoard events, checkpoints/, final/),
    metrics every ``log_every`` steps, a checkpoint every ``save_every`` steps (0 = only at the end; a step is an
    iteration of an RL loop, an optimizer step of the reward-model, DPO and SFT trainers), the last
    ``keep_checkpoints`` kept. Every training command runs through one loop (:mod:`blendrl.training.driver`)."""

    output_dir: str = "runs/ppo"
    save_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 1
    tensorboard: bool = True
    progress: bool = True
    trackers: list[TrackerConfig] = field(default_factory=list)  # W&B, MLflow, trackio: metrics, config, samples

    def validate(self) -> None:
        _require(self.log_every >= 1, "log_every: must be >= 1")
        _require(self.keep_checkpoints >= 1, "keep_checkpoints: must be >= 1")


@dataclass
class EvalLogSettings(LogSettings):
    """Where and how a trainer with held-out data writes: the keys of :class:`LogSettings`, and held-out evaluations
    (``eval/…`` metrics, logged at their step) before training and every ``eval_every`` steps. 0: none of these
    (``dpo`` still evaluates before training; ``dpo`` and ``rm train`` evaluate after it either way)."""

    eval_every: int = 0

    def validate(self) -> None:
        super().validate()
        _require(self.eval_every >= 0, "eval_every: must be >= 0")


@dataclass
class PairTrainSettings(OptimSettings):
    """The optimizer of the trainers that step over preference pairs (reward models, DPO): ``batch_size`` pairs per
    optimizer step in micro-batches of ``micro_batch_size`` pairs, for ``epochs``. Each command sets its defaults."""

    epochs: int = 1
    batch_size: int = 32
    micro_batch_size: int = 8
    schedule: Literal["constant", "linear", "cosine"] = "linear"

    def validate(self) -> None:
        super().validate()
        for name in ("epochs", "batch_size", "micro_batch_size"):
            _require(getattr(self, name) >= 1, f"{name}: must be >= 1")
