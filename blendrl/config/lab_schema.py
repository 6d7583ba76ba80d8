"""The typed configuration of ``blendrl lab overopt`` (the gold-vs-proxy protocol of Gao et al.; docs/algorithms.md §3).

Sections: model (the policy), generation, data (prompts: pairs are sampled on ``prompts``, curves measured on
``eval_prompts``), gold, labels, proxy, salsa, bon, ppo, train (``seed``, ``threads``), logging (``output_dir``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .schema import (
    DataConfig, GenerationConfig, ModelConfig, OutputSettings, PerfConfig, RewardSourceConfig, RunSettings, _require,
)

OBJECTIVES = ("single", "mean", "wco", "uwo")
STARTS = ("base", "sft", "salsa")


@dataclass
class LabelsConfig:
    """Preference data for the proxies: ``prompts`` training prompts × ``pairs_per_prompt`` pairs of policy samples,
    labelled by the gold reward (exact ties are dropped and counted), then a ``flip`` share of labels flipped at
    random (Gao et al. and Coste et al. use 25% label noise)."""

    prompts: int = 64
    pairs_per_prompt: int = 2
    flip: float = 0.25

    def validate(self) -> None:
        _require(self.prompts >= 1 and self.pairs_per_prompt >= 1, "prompts, pairs_per_prompt: must be >= 1")
        _require(0.0 <= self.flip < 0.5, "flip: must be in [0, 0.5)")


@dataclass
class ProxyConfig:
    """``members`` proxy reward models trained with ``blendrl rm`` on the same pairs, seeds 0..members−1 (the seed
    changes the head init and the data order). ``rm``: the RM config's ``model``/``loss``/``train`` sections as a
    mapping (defaults: ``blendrl rm``'s); the lab sets data, seed and output."""

    members: int = 3
    rm: dict = field(default_factory=dict)

    def validate(self) -> None:
        _require(self.members >= 1, "members: must be >= 1")
        _require(not ({"data", "logging"} & set(self.rm)), "rm: data and logging are set by the lab")


@dataclass
class SalsaConfig:
    """SALSA (docs/algorithms.md §4): ``sft_models`` SFT models of the policy (``blendrl sft``, seeds 0..n−1: different
    data orders) on the preferred responses of the proxies' training pairs, and their equal-weight soup. A PPO run
    with ``start: salsa`` starts from the soup and keeps it as its KL reference; ``start: sft`` starts from SFT model
    0 with itself as the reference (the baseline SALSA compares against). 0: no SFT stage. ``train``: ``blendrl
    sft``'s train section as a mapping (its defaults: 1 epoch, lr 2e-5, batch 16)."""

    sft_models: int = 0
    train: dict = field(default_factory=dict)

    def validate(self) -> None:
        _require(self.sft_models >= 0, "sft_models: must be >= 0")


@dataclass
class LabBoNConfig:
    """Best-of-n on ``prompts`` held-out prompts with a pool of ``pool`` samples each, picked by each objective."""

    pool: int = 16
    prompts: int = 16
    objectives: list[str] = field(default_factory=lambda: list(OBJECTIVES))
    uwo_lam: float = 0.5
    batch_size: int = 16

    def validate(self) -> None:
        _require(self.pool >= 1 and self.prompts >= 1, "pool, prompts: must be >= 1")
        bad = [o for o in self.objectives if o not in OBJECTIVES]
        _require(not bad, f"objectives: unknown {bad}; choose from {list(OBJECTIVES)}")


@dataclass
class LabPPORun:
    """One PPO run: optimise ``objective`` (single proxy or an ensemble aggregate) with per-token KL ``kl_coef``,
    starting from ``start`` (``base``: the lab's model, frozen reference; ``sft`` / ``salsa``: see
    :class:`SalsaConfig`); ``set``: more ``key=value`` overrides of its PPO config (``regularizer.kind=chi2``)."""

    objective: str = "single"
    kl_coef: float = 0.05
    start: str = "base"
    label: Optional[str] = None
    set: list[str] = field(default_factory=list)

    def validate(self) -> None:
        _require(self.objective in OBJECTIVES, f"objective: unknown '{self.objective}'; choose from {list(OBJECTIVES)}")
        _require(self.kl_coef >= 0, "kl_coef: must be >= 0")
        _require(self.start in STARTS, f"start: unknown '{self.start}'; choose from {list(STARTS)}")

    @property
    def name(self) -> str:
        return self.label or f"{self.objective}-kl{self.kl_coef:g}" + ("" if self.start == "base" else f"-{self.start}")


@dataclass
class LabPPOConfig:
    """PPO runs measured every ``eval_every`` iterations on ``eval_prompts`` held-out prompts (gold and proxy of the
    same samples, KL to the reference). ``base``: the PPO config's other sections (train, algorithm, kl kind, ...)
    as a mapping; model, generation, data, rewards and logging come from the lab."""

    runs: list[LabPPORun] = field(default_factory=list)
    base: dict = field(default_factory=dict)
    eval_every: int = 2
    eval_prompts: int = 16
    uwo_lam: float = 0.1  # Coste et al.'s PPO value

    def validate(self) -> None:
        _require(self.eval_every >= 1, "eval_every: must be >= 1")
        names = [r.name for r in self.runs]
        _require(len(set(names)) == len(names), f"runs: labels must be unique, got {names}")


@dataclass
class OverOptLabConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(temperature=1.0))
    data: DataConfig = field(default_factory=DataConfig)
    gold: list[RewardSourceConfig] = field(default_factory=lambda: [RewardSourceConfig(kind="gold", name="gold")])
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    salsa: SalsaConfig = field(default_factory=SalsaConfig)
    bon: LabBoNConfig = field(default_factory=LabBoNConfig)
    ppo: LabPPOConfig = field(default_factory=LabPPOConfig)
    train: RunSettings = field(default_factory=RunSettings)  # train.seed: labels, proxies i (seed + i), runs, ...
    logging: OutputSettings = field(default_factory=lambda: OutputSettings(output_dir="runs/lab_overopt"))
    perf: PerfConfig = field(default_factory=PerfConfig)
    plugins: list[str] = field(default_factory=list)  # modules or .py files imported first (their registrations)

    MOVED_KEYS = {"seed": "train.seed", "threads": "train.threads", "output_dir": "logging.output_dir"}

    def validate(self) -> None:
        _require(bool(self.data.eval_prompts), "data.eval_prompts: the curves are measured on held-out prompts")
        needs_ensemble = [o for o in self.bon.objectives if o != "single"] + \
            [r.objective for r in self.ppo.runs if r.objective != "single"]
        _require(self.proxy.members >= 2 or not needs_ensemble,
                 f"proxy.members: {needs_ensemble[:1]} needs an ensemble of at least 2 proxies")
        starts = {r.start for r in self.ppo.runs}
        _require("salsa" not in starts or self.salsa.sft_models >= 2,
                 "salsa.sft_models: a run with start: salsa needs a soup of at least 2 SFT models")
        _require("sft" not in starts or self.salsa.sft_models >= 1,
                 "salsa.sft_models: a run with start: sft needs at least 1 SFT model")
