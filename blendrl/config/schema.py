"""The typed configuration of ``blendrl ppo``. Each default has one home: its field here.

Sections: model, critic, reference, generation, rewards, costs, shaping, kl, regularizer, algorithm, filter,
dynamic_sampling, environment, data, train, logging.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Optional, Union

from .loader import ConfigError  # noqa: F401  (re-exported)
from .settings import (  # noqa: F401  (re-exported)
    ColumnsConfig, EvalLogSettings, LogSettings, LoopSettings, LoraConfig, OptimSettings, OutputSettings, PerfConfig,
    RunSettings, _require,
)

from .algorithm_schema import AlgorithmConfig, LagrangianConfig, VineConfig  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from ..core.types import ModelPlacement


@dataclass
class ModelConfig:
    """The policy. ``name``: a hub id, a ``save_pretrained`` folder, a ``.gguf`` file, or the alias
    ``smollm2-135m-instruct`` (the embedded default). ``dtype``: the weights' type (float32 on CPU: bf16 matmuls
    are many times slower on a CPU without AMX, and bf16 weights mean bf16 AdamW state).
    ``offload_frozen`` (default ``auto``): keep frozen models in files between uses, read back for each pass
    (``blendrl.models.offload``; OpenRLHF's ``--ref_reward_offload`` on CPU). Results are unchanged; the
    iteration's peak RSS drops by up to their size, and each use reads the weights back (docs/performance.md has
    the numbers). ``auto`` offloads the
    reward models (``hf_rm``) and a reference with a frozen model of its own (``frozen`` without LoRA, ``model``,
    ``soup``), and keeps in memory what cannot be offloaded (an EMA reference, which moves every update; LoRA's
    reference, which is the policy with adapters disabled). ``true`` is the same but an EMA reference is an error;
    ``false`` keeps every model in memory; ``reference`` or ``rewards`` offloads only the reference model or only
    the reward models (one read per iteration instead of two)."""

    name: str = "smollm2-135m-instruct"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora: Optional[LoraConfig] = None
    gradient_checkpointing: bool = False
    offload_frozen: Union[bool, Literal["reference", "rewards", "auto"]] = "auto"
    device: str = "auto"  # auto (cuda:LOCAL_RANK when CUDA is there, else cpu) | cpu | cuda | cuda:N
    revision: Optional[str] = None  # a hub model's branch, tag or commit (the policy's and its tokenizer's)
    # run the model repository's own Python (a model class transformers does not ship): off unless you trust it;
    # a run that turns it on says so in its log
    trust_remote_code: bool = False
    attn_implementation: Optional[str] = None  # eager | sdpa | flash_attention_2 | ... (transformers' choice)

    def validate(self) -> None:
        import re

        _require(re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
                 f"device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")

    @property
    def hub(self) -> dict:
        """What ``from_pretrained`` is handed for the policy and its tokenizer beyond the path (the options set)."""
        opts = {"revision": self.revision, "attn_implementation": self.attn_implementation}
        return {**{k: v for k, v in opts.items() if v is not None},
                **({"trust_remote_code": True} if self.trust_remote_code else {})}

    @property
    def offload_reference(self) -> Union[bool, Literal["auto"]]:
        """True, False, or ``auto`` (offload the reference when it has a frozen model of its own)."""
        return "auto" if self.offload_frozen == "auto" else self.offload_frozen in (True, "reference")

    @property
    def offload_rewards(self) -> bool:
        return self.offload_frozen in (True, "rewards", "auto")

    def placement(self, device) -> "ModelPlacement":
        """The run's :class:`~blendrl.core.types.ModelPlacement` for its reward models on ``device`` (a torch device):
        that device, ``dtype``, and offloading (``offload_rewards``) on the CPU only."""
        from ..core.types import ModelPlacement

        return ModelPlacement(str(device), self.dtype, self.offload_rewards and str(device) == "cpu")


@dataclass
class CriticConfig:
    """The value model: a token-classification head (1 label) on a backbone from the policy or a reward model.
    ppo-lagrangian adds a cost critic on ``cost_path`` (safe-rlhf starts it from the cost model); the two share
    ``lr`` and ``lora``."""

    init: Literal["policy", "reward_model"] = "policy"
    path: Optional[str] = None  # reward-model folder when init=reward_model; defaults to the policy otherwise
    lr: float = 1e-5
    cost_path: Optional[str] = None  # ppo-lagrangian's cost critic's backbone (e.g. the cost model); None: path's
    lora: Optional[LoraConfig] = None

    def validate(self) -> None:
        _require(self.init == "policy" or self.path, "path: required when init is reward_model")


@dataclass
class ReferenceConfig:
    """The KL anchor. ``frozen`` (copy of the initial policy, or adapters-off under LoRA), ``ema``
    (θ_ref ← η·θ_π + (1−η)·θ_ref after each update; η default 0.001 = ReaLHF, docs/algorithms.md §7), or ``model``
    (any other checkpoint given by ``path``), or ``soup`` (SALSA: the weight average of ``paths`` with
    ``weights``, default equal — docs/algorithms.md §4). Custom strategies register in
    ``blendrl.training.reference.REFERENCES``."""

    kind: str = "frozen"
    ema_eta: float = 0.001
    path: Optional[str] = None
    paths: list[str] = field(default_factory=list)  # kind soup: the models to average (SALSA: two SFT runs)
    weights: list[float] = field(default_factory=list)  # kind soup: one weight each (default: equal)

    def validate(self) -> None:
        _require(0.0 < self.ema_eta <= 1.0, "ema_eta: must be in (0, 1]")  # what each kind needs: its own check


@dataclass
class GenerationConfig:
    """Sampling. The training forward divides logits by the same ``temperature``."""

    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 1.0
    backend: str = "hf"
    options: dict = field(default_factory=dict)  # the backend's own keyword arguments (ray: num_cpus, dtype, ...)
    stop_at_eos: bool = True  # False: always max_new_tokens (fixed-length benchmarks; TRL's stop_token=None)

    def validate(self) -> None:
        _require(self.max_new_tokens > 0, "max_new_tokens: must be > 0")
        _require(self.temperature > 0, "temperature: must be > 0")
        _require(0 < self.top_p <= 1, "top_p: must be in (0, 1]")


@dataclass
class RewardSourceConfig:
    """One reward source. ``kind``: ``rule`` (a built-in rule by ``name``), ``callable`` (``name`` =
    ``module:function`` or ``file.py:function``), ``hf_rm`` (a sequence-classification model at ``path``),
    ``ensemble`` (``options: {members: [folders], aggregate: mean|wco|uwo, lam: 0.5}``, Coste et al.),
    ``llm_judge`` (an LLM judge's log-odds log p(pass) − log p(fail); ``options`` as the ``llm`` judge), ``gold``
    (the lab's gold reward), or any kind registered in ``REWARD_SOURCES``. Sources are summed with their
    ``weight``."""

    kind: str = "rule"
    name: Optional[str] = None
    path: Optional[str] = None
    weight: float = 1.0
    options: dict = field(default_factory=dict)  # checked by the kind itself (blendrl.training.names)


@dataclass
class ShapingConfig:
    """Sequence-score shaping before advantages (PPO-max eq. 18; §11). ``normalize``: running mean/std
    (``scale`` divides by std only); ``clip``: δ after normalising; ``missing_eos_penalty`` subtracted from scores
    of responses that hit ``max_new_tokens`` without EOS."""

    normalize: Literal["none", "normalize", "scale"] = "none"
    clip: Optional[float] = None
    missing_eos_penalty: Optional[float] = None
    # DAPO's overlong soft penalty: a response longer than max_new_tokens − overlong_buffer tokens loses
    # overlong_penalty × (its excess / overlong_buffer), the whole penalty at max_new_tokens; None: off
    overlong_buffer: Optional[int] = None
    overlong_penalty: float = 1.0

    def validate(self) -> None:
        _require(self.overlong_buffer is None or self.overlong_buffer >= 1, "overlong_buffer: must be >= 1 (or null)")
        _require(self.overlong_penalty >= 0, "overlong_penalty: must be >= 0")


@dataclass
class EnvironmentConfig:
    """Multi-turn episodes (docs/environments.md): ``kind`` ``none`` (one response per prompt), ``calculator`` or
    ``python`` (a tool, called as ``<tool_call>{json}</tool_call>``), ``guess`` (a game for tests), or any kind in
    ``blendrl.envs.ENVIRONMENTS``; ``options`` go to its builder. At most ``max_turns`` policy turns of
    ``max_tokens_per_turn`` tokens (default ``generation.max_new_tokens``) and ``max_total_tokens`` policy tokens
    in all (default turns × per turn); an episode cut by a limit is not finished (the judges see it so)."""

    kind: str = "none"
    options: dict = field(default_factory=dict)
    max_turns: int = 4
    max_tokens_per_turn: Optional[int] = None
    max_total_tokens: Optional[int] = None
    stop_words: list[str] = field(default_factory=list)  # end a turn as EOS does; each one token of the tokenizer

    def validate(self) -> None:
        _require(self.max_turns >= 1, "max_turns: must be >= 1")
        for name in ("max_tokens_per_turn", "max_total_tokens"):
            _require(getattr(self, name) is None or getattr(self, name) >= 1, f"{name}: must be >= 1 (or null)")


@dataclass
class DynamicSamplingConfig:
    """DAPO's dynamic sampling: a prompt group whose k rewards are all equal (no learning signal for a group
    baseline) is dropped and more prompts are sampled until the batch holds ``train.prompts_per_iteration`` groups,
    at most ``max_extra_rounds`` more rounds (then the batch is what was kept). Needs samples_per_prompt >= 2."""

    enabled: bool = False
    max_extra_rounds: int = 2

    def validate(self) -> None:
        _require(self.max_extra_rounds >= 0, "max_extra_rounds: must be >= 0")


@dataclass
class KLConfig:
    """Per-token KL to the reference. ``kind`` k1|k2|k3|clamped|js|js_lora_ppo (blendrl/functional/kl.py) or one
    registered in ``KL_ESTIMATORS``;
    ``placement`` reward (−β·kl per token, the PPO default) or loss (β·masked-mean kl added to the loss, GRPO
    style); ``adaptive`` uses Ziegler's controller with ``target``/``horizon``; the per-token estimate is clamped
    to ±``clip`` (OpenRLHF: 10)."""

    kind: str = "k1"  # a name in blendrl.functional.KL_ESTIMATORS
    placement: Literal["reward", "loss"] = "reward"
    coef: float = 0.05
    adaptive: bool = False
    target: float = 6.0
    horizon: float = 10000.0
    clip: Optional[float] = 10.0


@dataclass
class RegularizerConfig:
    """An extra term in the policy loss (``blendrl.functional.regularizers.REGULARIZERS``). ``kind``: ``none`` or
    ``chi2`` (ORPO's ``coef·sqrt(χ̂²)`` of the sequence occupancy ratio to the reference, §9; ORPO's example coef
    0.0008; ``clip`` on the sequence log-ratio). It is computed per micro-batch (its mean over the micro-batch)."""

    kind: str = "none"
    coef: float = 0.0008
    clip: float = 10.0

    def validate(self) -> None:
        _require(self.clip > 0, "clip: must be > 0")


@dataclass
class DataConfig:
    """Prompts: ``builtin:NAME`` or a file (``blendrl.data.prompts``); ``too_long``/``on_empty`` ones: error or skip."""

    prompts: str = "builtin:concise"
    eval_prompts: Optional[str] = "builtin:concise_eval"
    max_prompt_tokens: int = 256
    chat_template: bool = True
    system_prompt: Optional[str] = None
    too_long: Literal["error", "skip"] = "error"
    on_empty: Literal["error", "skip"] = "error"
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)  # a table's column names (verl, hub datasets)


@dataclass
class TrainConfig(LoopSettings):
    """The loop's sizes. Each iteration samples ``prompts_per_iteration × samples_per_prompt`` responses, then
    runs ``algorithm.epochs`` passes of ``minibatches`` optimizer steps, each accumulated over micro-batches of
    ``micro_batch_size`` sequences. ``forward_batch_size`` (default: ``micro_batch_size``) is the rows per no-grad
    pass (reference log-probs, critic values, π_old, evaluation): those keep no activations, so a small
    ``micro_batch_size`` chosen for memory need not slow them down (TRL's ``local_rollout_forward_batch_size``)."""

    prompts_per_iteration: int = 8
    samples_per_prompt: int = 2
    minibatches: int = 1

    def validate(self) -> None:
        super().validate()
        for name in ("prompts_per_iteration", "samples_per_prompt", "minibatches", "micro_batch_size"):
            _require(getattr(self, name) >= 1, f"{name}: must be >= 1")
        n = self.prompts_per_iteration * self.samples_per_prompt
        _require(n % self.minibatches == 0, f"minibatches: {n} samples do not split into {self.minibatches}")


@dataclass
class LoggingConfig(EvalLogSettings):
    """:class:`EvalLogSettings` plus the RL loops' held-out evaluation: every ``eval_every`` iterations (0 = before
    and at the end only) on ``eval_prompts`` prompts, and ``log_samples`` sample generations per iteration to
    samples.jsonl.
    ``eval_before`` (default true): evaluate before training; a run whose starting point another run has already
    measured with the same model, prompts and seed (the main job's summed-PPO baseline) can skip it — ``blendrl eval
    --runs`` takes the "before" column from the first run that has one."""

    eval_prompts: int = 16
    eval_before: bool = True
    log_samples: int = 2


@dataclass
class FilterConfig:
    """PF-PPO policy filtration (docs/algorithms.md §14): of each prompt's ``train.samples_per_prompt`` responses
    train only on ``keep``, chosen by reward — ``best_worst`` (both ends of the reward range, where a reward model
    is most reliable; PF-PPO's best), ``best_random``, ``best_of_n``, or any name in
    ``blendrl.functional.filters.ROLLOUT_FILTERS``; ``none`` trains on all. Filtered rows are masked out of the
    update (PPO with a critic: rows are independent)."""

    kind: str = "none"
    keep: int = 2

    def validate(self) -> None:
        _require(self.keep >= 1, "keep: must be >= 1")


@dataclass
class PPORunConfig:
    """Everything ``blendrl ppo`` reads. ``costs`` (ppo-lagrangian only): the episode cost is the weighted sum of
    these sources, of the same kinds as ``rewards`` but higher is worse and never shaped: a cost model (``hf_rm``),
    a rule or callable, or ``judge_violations`` (``options: {judges: [...]}``: the number of judges a response
    fails)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rewards: list[RewardSourceConfig] = field(
        default_factory=lambda: [RewardSourceConfig(kind="rule", name="concise_mention")]
    )
    costs: list[RewardSourceConfig] = field(default_factory=list)  # ppo-lagrangian's cost sources (see above)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    dynamic_sampling: DynamicSamplingConfig = field(default_factory=DynamicSamplingConfig)
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    plugins: list[str] = field(default_factory=list)  # modules or .py files imported first (their registrations)

    def validate(self) -> None:
        lagrangian = self.algorithm.name == "ppo-lagrangian"
        _require(not lagrangian or self.costs, "costs: ppo-lagrangian needs at least one cost source")
        _require(lagrangian or not self.costs, "costs: only algorithm.name ppo-lagrangian reads them")
        episodes = self.environment.kind != "none"
        _require(not episodes or self.algorithm.name != "vineppo", "environment: not with vineppo (its "
                 "continuations restart one response, not an episode)")
        _require(not episodes or all(r.kind != "segment_rm" for r in self.rewards), "environment: not with a "
                 "segment_rm reward (its per-character rewards are over one response)")
        _require(not self.dynamic_sampling.enabled or self.train.samples_per_prompt >= 2,
                 "dynamic_sampling.enabled: needs train.samples_per_prompt >= 2 (a group to compare)")
        _require(self.shaping.overlong_buffer is None or self.algorithm.name != "vineppo",
                 "shaping.overlong_buffer: not with vineppo (its continuations' scores would not carry it)")
        _require(self.shaping.overlong_buffer is None or self.shaping.overlong_buffer <= self.generation.max_new_tokens,
                 "shaping.overlong_buffer: must be <= generation.max_new_tokens")

    # what a named kind needs of the rest of the config (rloo's samples, a filter's algorithm, a dense reward's
    # shaping) is that kind's own check, run with its key path before any model loads (blendrl.training.names)


@dataclass
class BestOfNConfig:
    """Best-of-n: ``pool`` (N) samples per prompt; the unbiased estimator is reported for every n in ``ns``
    (default: 1, 2, 4, … up to N, and N)."""

    pool: int = 16
    ns: list[int] = field(default_factory=list)
    prompts: int = 16  # number of prompts from data.prompts
    batch_size: int = 16

    def validate(self) -> None:
        _require(self.pool >= 1, "pool: must be >= 1")
        _require(all(1 <= n <= self.pool for n in self.ns), f"ns: every n must be in [1, pool={self.pool}]")


@dataclass
class BoNRunConfig:
    """Everything ``blendrl bon`` reads: the policy, sampling, prompts, the proxy reward (``rewards``, what picks) and
    an optional ``gold`` reward scored on the same samples."""

    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rewards: list[RewardSourceConfig] = field(
        default_factory=lambda: [RewardSourceConfig(kind="rule", name="concise_mention")]
    )
    gold: list[RewardSourceConfig] = field(default_factory=list)
    bon: BestOfNConfig = field(default_factory=BestOfNConfig)
    train: RunSettings = field(default_factory=RunSettings)  # train.seed: the sampling seed
    logging: OutputSettings = field(default_factory=lambda: OutputSettings(output_dir="runs/bon"))
    plugins: list[str] = field(default_factory=list)

    MOVED_KEYS = {"seed": "train.seed", "output_dir": "logging.output_dir"}  # the loader says where they went
