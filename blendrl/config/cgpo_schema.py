"""The typed configuration of ``blendrl cgpo`` (CGPO, docs/algorithms.md §1): a policy, a reference, and a list of
tasks, each with its own prompts, reward model(s), judges, optimizer, K, KL_max, batch size and weight ρ.

Sections: model, reference, generation, data, tasks[], train, logging. Each default has one home: its field here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from .schema import (
    ColumnsConfig, EnvironmentConfig, GenerationConfig, LoggingConfig, LoopSettings, ModelConfig, PerfConfig,
    ReferenceConfig, RewardSourceConfig, _require,
)


@dataclass
class JudgeConfig:
    """One judge (``blendrl.judges.JUDGES``): ``kind`` math | instructions | code | format | eos | refusal | llm |
    openai | http | hf_classifier | ray; ``name`` (default: the kind) is what metrics call it; ``options`` go to the
    judge's builder."""

    kind: str = "format"
    name: Optional[str] = None
    options: dict = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    """The task's constrained optimizer (CGPO §1): ``crpg`` (eq. 12), ``codpo`` (eq. 15, ``beta``, ``lam``),
    ``crraft`` (eq. 18), or ``lagrangian-reinforce`` (REINFORCE with Lagrange multipliers: each judge a constraint
    "violation rate ≤ ``threshold``", per judge name in ``thresholds``, with a multiplier from ``lambda_init`` moved
    by dual ascent at ``lambda_lr``). Each optimizer checks its own options (an option another optimizer reads, set
    here, is an error).
    ``kl_max`` is the sequence-level KL budget (CRPG's eq. 11 factor, CRRAFT's filter); the paper gives no numbers
    (lenient for verifiable tasks, strict for chat), so 10 nats is our default."""

    name: str = "crpg"  # a name in blendrl.algorithms.cgpo.CGPO_OPTIMIZERS
    kl_max: float = 10.0
    beta: float = 0.1
    lam: float = 5.0
    threshold: float = 0.05
    thresholds: dict = field(default_factory=dict)
    lambda_init: float = 1.0
    lambda_lr: float = 0.5

    def validate(self) -> None:
        _require(self.kl_max > 0, "kl_max: must be > 0")


@dataclass
class CalibrationConfig:
    """The calibrated reward R_calib = σ(r(s,a) − r(s,ā)) (eq. 5). ``baseline``: ``reference_response`` (ā from the
    prompt's metadata ``field``, e.g. the SFT golden or "chosen" response), ``generate`` (ā sampled once from the
    reference policy before training and cached in the run folder) or ``none`` (R_calib = r, for rewards already
    in [0, 1])."""

    baseline: Literal["reference_response", "generate", "none"] = "reference_response"
    field: str = "reference_response"


@dataclass
class TaskConfig:
    """One task D_l of Algorithm 2. Its rewards are never mixed with another task's."""

    name: str = "task"
    prompts: str = ""
    eval_prompts: Optional[str] = None
    rewards: list[RewardSourceConfig] = field(default_factory=list)
    judges: list[JudgeConfig] = field(default_factory=list)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    samples_per_prompt: int = 4  # K (TRL's CGPO default 4)
    prompts_per_iteration: int = 4
    weight: float = 1.0  # ρ_l
    max_new_tokens: Optional[int] = None  # default: generation.max_new_tokens
    system_prompt: Optional[str] = None
    columns: Optional[ColumnsConfig] = None  # this task's table columns; None: data.columns
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)  # multi-turn episodes for this task

    def validate(self) -> None:
        _require(bool(self.prompts), "prompts: required (a file or builtin:NAME)")
        _require(len(self.rewards) > 0, "rewards: a task needs at least one reward source")
        _require(self.samples_per_prompt >= 1 and self.prompts_per_iteration >= 1,
                 "samples_per_prompt and prompts_per_iteration: must be >= 1")
        _require(self.weight > 0, "weight: must be > 0")
        names = [j.name or j.kind for j in self.judges]
        _require(len(set(names)) == len(names), f"judges: names must be unique, got {names}")


@dataclass
class CGPODataConfig:
    """Options for every task's prompt files (as ``data`` of ``blendrl ppo``); the system prompt is per task."""

    max_prompt_tokens: int = 256
    chat_template: bool = True
    too_long: Literal["error", "skip"] = "error"
    on_empty: Literal["error", "skip"] = "error"
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)  # every task's; a task's own columns override


@dataclass
class CGPOTrainConfig(LoopSettings):
    """One iteration = one optimizer step whose gradient is Σ_l ρ_l g̃_l over all tasks (Algorithm 2). Gradient
    passes run in micro-batches of ``micro_batch_size`` rows, no-grad passes (reference log-probs, evaluation) in
    batches of ``forward_batch_size`` (default: ``micro_batch_size``)."""

    micro_batch_size: int = 8

    def validate(self) -> None:
        super().validate()
        _require(self.micro_batch_size >= 2, "micro_batch_size: must be >= 2 (CODPO pairs share a micro-batch)")


@dataclass
class CGPORunConfig:
    """Everything ``blendrl cgpo`` reads."""

    model: ModelConfig = field(default_factory=ModelConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    data: CGPODataConfig = field(default_factory=CGPODataConfig)
    tasks: list[TaskConfig] = field(default_factory=list)
    train: CGPOTrainConfig = field(default_factory=CGPOTrainConfig)
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(output_dir="runs/cgpo"))
    perf: PerfConfig = field(default_factory=PerfConfig)
    plugins: list[str] = field(default_factory=list)  # modules or .py files imported first (their registrations)

    def validate(self) -> None:
        _require(len(self.tasks) > 0, "tasks: at least one task is required")
        names = [t.name for t in self.tasks]
        _require(len(set(names)) == len(names), f"tasks: names must be unique, got {names}")
