"""The typed configuration of ``blendrl rm train|strength|eval`` (Secrets of RLHF II, docs/algorithms.md §2).

Sections: model, data, loss, contrastive, metarm, segments, c2rm, train, strength, eval, logging. Each default
has one home: its field here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from .schema import LoraConfig, PerfConfig, _require
from .settings import EvalLogSettings, PairTrainSettings


@dataclass
class RMModelConfig:
    """The reward model: a sequence-classification head (1 label) read at the last token, on ``name`` (a causal-LM
    backbone such as the embedded ``smollm2-135m-instruct``, or a sequence-classification folder).
    ``trainable``: ``full`` (every weight), ``lora`` (adapters + head; merged on save), ``head`` (only the score
    head on frozen, cached last-token features — cheap enough for M=10 strength models). ``dropout`` is set on the
    backbone's dropout knobs during training (Secrets II uses 0.05 for its contrastive views)."""

    name: str = "smollm2-135m-instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trainable: Literal["full", "lora", "head"] = "full"
    lora: Optional[LoraConfig] = None
    dropout: float = 0.0

    def validate(self) -> None:
        _require(0.0 <= self.dropout < 1.0, "dropout: must be in [0, 1)")


@dataclass
class RMDataConfig:
    """Preference data (see :mod:`blendrl.data.preferences` for formats). ``max_length`` counts prompt+response
    tokens; longer conversations are ``truncate``d on the right (counted and reported), ``skip``ped (counted), or an
    ``error``. A row with an empty prompt or response is an ``error`` or ``skip``ped and counted (``on_empty``).
    ``limit`` keeps the first N pairs of each source (None: all). ``calibration``: held-out pairs on which a
    temperature T is fitted after training (min NLL of σ(Δ/T)) and folded into the saved score head, so the reward
    a PPO run sees is r/T — comparable across recipes; eval.json reports ECE before and after."""

    train: str = "builtin:synthetic"
    eval: Optional[str] = "builtin:synthetic_eval"
    calibration: Optional[str] = None
    max_length: int = 512
    too_long: Literal["truncate", "skip", "error"] = "truncate"
    on_empty: Literal["error", "skip"] = "error"
    limit: Optional[int] = None

    def validate(self) -> None:
        _require(self.max_length > 1, "max_length: must be > 1")
        _require(self.limit is None or self.limit >= 1, "limit: must be >= 1")


@dataclass
class RMLossConfig:
    """The pair loss (``blendrl.training.rm.recipes.RECIPES``): a recipe names which of flip, adaptive margin and
    label smoothing it uses (``bt``, ``flip``, ``margin``, ``flip_margin``, ``label_smoothing``, ``soft_label``,
    ``soft_label_margin``, … — every combination). All but ``bt`` and ``label_smoothing`` read μ̂ from a ``mu``
    column (``blendrl rm strength``). ``margin``: a fixed margin for recipes without the adaptive one.
    ``alpha``: the smoothing (not given in the paper; 0.1). ``flip_rule``: ``fraction`` swaps the
    ``flip_fraction`` lowest-μ̂ pairs (the paper's two bottom deciles, 0.2); ``confident`` swaps pairs with
    μ̂ < −``flip_z``·σ̂ (needs a ``sigma`` column). ``margin_scale`` multiplies μ̂ in the adaptive margin;
    ``margin_unit: mean_abs`` first divides it by the mean |μ̂| of the training set (the margin then does not
    depend on the strength models' reward scale)."""

    recipe: str = "bt"
    margin: float = 0.0
    alpha: float = 0.1
    flip_rule: Literal["fraction", "confident"] = "fraction"
    flip_fraction: float = 0.2
    flip_z: float = 1.0
    margin_scale: float = 1.0
    margin_unit: Literal["raw", "mean_abs"] = "raw"

    def validate(self) -> None:
        _require(0.0 <= self.alpha < 0.5, "alpha: must be in [0, 0.5)")
        _require(0.0 <= self.flip_fraction <= 1.0, "flip_fraction: must be in [0, 1]")
        _require(self.flip_z >= 0, "flip_z: must be >= 0")
        _require(self.margin_scale >= 0, "margin_scale: must be >= 0")


@dataclass
class ContrastiveConfig:
    """Contrastive auxiliary loss ``L = L_rm + β·L_cl`` (Secrets II §3.1) over two dropout views (set
    ``model.dropout`` > 0). ``kind``: ``none``, ``simcse`` (eq. 9, InfoNCE; β=1 in the paper) or ``swav`` (eqs.
    7–8: swapped prediction of Sinkhorn codes over ``prototypes`` K learnable prototypes, ``sinkhorn_eps``,
    ``sinkhorn_iters``; the paper's SwAV K=50 β=0.1, SwAV-diff K=20 β=0.5). ``representation``: ``pairs``
    {f_c, f_r} or ``difference`` {f_c − f_r, f_r − f_c} of last-token hidden states. τ is not given in the paper
    (0.05, SimCSE's default; SwAV's own is 0.1)."""

    kind: Literal["none", "simcse", "swav"] = "none"
    beta: float = 1.0
    tau: float = 0.05
    representation: Literal["pairs", "difference"] = "pairs"
    prototypes: int = 50
    sinkhorn_eps: float = 0.05
    sinkhorn_iters: int = 3

    def validate(self) -> None:
        _require(self.tau > 0, "tau: must be > 0")
        _require(self.prototypes >= 2, "prototypes: must be >= 2")
        _require(self.sinkhorn_eps > 0 and self.sinkhorn_iters >= 1, "sinkhorn_eps > 0 and sinkhorn_iters >= 1")


@dataclass
class MetaRMConfig:
    """MetaRM (Secrets II §3.2, Alg. 1, first order). Each step: θ' = θ + η·∇J(meta batch) (eq. 11 difference
    loss on ``k`` unlabeled responses per prompt sampled from ``policy``), the pair loss's gradient at θ' is applied
    to θ by the optimizer (α = ``train.lr``). Meta prompts come from ``prompts`` (any prompt source of
    ``blendrl ppo``); responses are sampled once at start with ``temperature`` / ``max_new_tokens``, or read from
    ``responses`` (jsonl rows ``{"prompt": ..., "responses": [...]}``). η is not given in the paper."""

    enabled: bool = False
    policy: Optional[str] = None
    prompts: Optional[str] = None
    responses: Optional[str] = None
    k: int = 4
    eta: float = 1e-5
    meta_batch_size: int = 4
    max_new_tokens: int = 32
    temperature: float = 1.0

    def validate(self) -> None:
        if self.enabled:
            _require(bool(self.responses) or bool(self.policy and self.prompts),
                     "responses: required when enabled (or give policy and prompts to sample them)")
            _require(self.k >= 2, "k: must be >= 2")
            _require(self.eta > 0, "eta: must be > 0")


@dataclass
class RMSegmentsConfig:
    """A segment reward model (docs/algorithms.md §10): the sequence score is the mean of the per-token head at the
    ends of the response's segments; a segment ends at a token whose predictive entropy under ``entropy_model`` (a
    causal LM with the reward model's tokenizer; default ``model.name``) exceeds ``threshold`` (paper: 2.0 for
    Llama, 1.75 for Phi-3) once it has ``min_length`` tokens. After training, the location-aware normaliser is
    fitted on the training responses; ``final/segments.json`` holds it for the ``segment_rm`` reward source."""

    enabled: bool = False
    entropy_model: Optional[str] = None
    threshold: float = 2.0
    min_length: int = 2

    def validate(self) -> None:
        _require(self.min_length >= 1, "min_length: must be >= 1")


@dataclass
class C2RMConfig:
    """``blendrl rm c2rm`` (docs/algorithms.md §5): ``k`` samples per prompt of ``prompts`` (rows with
    ``metadata.answer``) from ``policy``; ``answer``: how a response's answer is read (``final_sentence``, the
    math judge's "The final answer is X"; ``last_number``); classes by correctness and self-consistency confidence
    at ``threshold``; pairs by ``recipe`` (``c2rm``: class 1 over 2, 3, 4; ``correctness``; ``confidence``; any
    name in ``blendrl.functional.c2rm.C2RM_RECIPES``), at most ``max_pairs_per_prompt`` each (None: all);
    written to ``output``. ``limit``: the first N prompts (None: all)."""

    policy: str = "smollm2-135m-instruct"
    prompts: str = "builtin:math"
    k: int = 5
    answer: Literal["final_sentence", "last_number"] = "final_sentence"
    threshold: float = 0.5
    recipe: str = "c2rm"
    max_pairs_per_prompt: Optional[int] = 4
    max_new_tokens: int = 96
    temperature: float = 0.8
    top_p: float = 1.0
    batch_prompts: int = 8
    limit: Optional[int] = None
    seed: int = 0
    output: str = "runs/c2rm/pairs.jsonl"

    def validate(self) -> None:
        _require(self.k >= 2, "k: must be >= 2 (self-consistency compares answers)")
        _require(0.0 < self.threshold <= 1.0, "threshold: must be in (0, 1]")


@dataclass
class RMTrainConfig(PairTrainSettings):
    """The optimizer (:class:`~blendrl.config.settings.PairTrainSettings`) and ``batch_size`` pairs per optimizer
    step, accumulated over ``micro_batch_size`` pairs, for ``epochs``. Secrets II: lr 5e-6, batch 32
    (16 contrastive), 1 epoch."""

    batch_size: int = 32
    micro_batch_size: int = 8
    lr: float = 5e-6


@dataclass
class StrengthConfig:
    """``blendrl rm strength``: train ``models`` reward models (seeds seed..seed+M−1, each its own data order) on
    ``data.train`` and write μ̂ / σ̂ per pair (eq. 4) to ``output`` (.jsonl or .parquet), plus a decile table.
    ``report_columns``: boolean/numeric columns averaged per decile in the table (e.g. ``flipped``). ``folds`` K > 0
    cross-fits: model m skips fold m mod K and each pair's μ̂ / σ̂ come from the models that did not see it.
    ``trainable``, ``lr`` and ``epochs`` override ``model.trainable``, ``train.lr`` and ``train.epochs`` for these M
    models (``head`` makes M=10 cheap on a real backbone; a bare head wants a larger lr and more epochs)."""

    models: int = 10
    folds: int = 0
    trainable: Optional[Literal["full", "lora", "head"]] = None
    lr: Optional[float] = None
    epochs: Optional[int] = None
    output: str = "runs/rm_strength/pairs_with_strength.jsonl"
    report_columns: list[str] = field(default_factory=list)

    def validate(self) -> None:
        _require(self.models >= 2, "models: must be >= 2 (σ̂ needs an ensemble)")
        _require(self.folds == 0 or (self.folds >= 2 and self.models % self.folds == 0
                                     and self.models // self.folds >= 2),
                 "folds: 0, or >= 2 dividing models with >= 2 models per fold (each pair's σ̂ needs 2)")


@dataclass
class RMEvalConfig:
    """``blendrl rm eval``: the reward model folder to score (default: ``logging.output_dir``/final) and the
    number of bins of the calibration plot."""

    model: Optional[str] = None
    bins: int = 10
    batch_size: int = 32


@dataclass
class RMRunConfig:
    """Everything ``blendrl rm`` reads."""

    model: RMModelConfig = field(default_factory=RMModelConfig)
    data: RMDataConfig = field(default_factory=RMDataConfig)
    loss: RMLossConfig = field(default_factory=RMLossConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    metarm: MetaRMConfig = field(default_factory=MetaRMConfig)
    segments: RMSegmentsConfig = field(default_factory=RMSegmentsConfig)
    c2rm: C2RMConfig = field(default_factory=C2RMConfig)
    train: RMTrainConfig = field(default_factory=RMTrainConfig)
    strength: StrengthConfig = field(default_factory=StrengthConfig)
    eval: RMEvalConfig = field(default_factory=RMEvalConfig)
    logging: EvalLogSettings = field(default_factory=lambda: EvalLogSettings(output_dir="runs/rm"))
    perf: PerfConfig = field(default_factory=PerfConfig)  # lean_layers applies to the trained reward model
    plugins: list[str] = field(default_factory=list)  # modules or .py files imported first (their registrations)

    def validate(self) -> None:
        if self.contrastive.kind != "none":
            _require(self.model.trainable != "head", "contrastive.kind: needs a trainable backbone (model.trainable "
                     "full or lora), not head")
            _require(self.model.dropout > 0, "model.dropout: must be > 0 for contrastive dropout views")
        if self.metarm.enabled:
            _require(self.model.trainable != "head", "metarm.enabled: needs model.trainable full or lora")
        if self.segments.enabled:
            _require(self.model.trainable != "head", "segments.enabled: needs model.trainable full or lora")
        _require(self.model.trainable != "lora" or self.model.lora is not None,
                 "model.lora: required when model.trainable is lora")
