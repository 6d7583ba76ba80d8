"""The one run loop of every training command: ``blendrl ppo``, ``cgpo`` and ``cgpo-ppo`` (through
:func:`blendrl.training.run.drive`), ``rm train``, ``dpo`` and ``sft``.

A command brings a trainer (:class:`Trainer`), how it shows itself (:class:`RunReport`) and what differs between
products (:class:`RunPlan`: the number of steps, the held-out evaluation, what a checkpoint holds, what is exported);
:func:`run_loop` brings the run, the same for all: the run folder ``logging.output_dir``, the logger (metrics.jsonl,
samples.jsonl, TensorBoard, a progress bar or one line a step), evaluation before training, every ``eval_every``
steps and after, metrics every ``logging.log_every`` steps, a checkpoint every ``logging.save_every`` steps and at
the end (atomic: :mod:`.checkpoint`), the export of ``final/``, and ``stop_after`` (return after that many steps of
this call, where a killed run would have stopped). A trainer resumed from a checkpoint continues at its
``iteration``, so a stopped and resumed run takes the same steps as one that never stopped.

In a data-parallel run every rank steps and calls the checkpoint and export hooks (a sharded model gathers its
weights there); rank 0 alone logs and writes, and evaluates unless the evaluation needs every rank.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..config import to_dict
from ..core import dist
from ..core.fsutil import atomic_dir, atomic_write_text
from ..models import is_peft
from .checkpoint import find_checkpoint, load_trainer_state, load_weights, write_checkpoint
from .logging import NullLogger, RunLogger
from .trackers import build_trackers
from .trainer import StepOutput


class Trainer(Protocol):
    """What the loop drives. ``step()`` runs one step (an RL iteration, an optimizer step) and adds one to
    ``iteration``; ``state_dict()`` is ``(trainer state, optimizer state)``, which ``load_state_dict`` restores
    exactly (RNG states included)."""

    iteration: int

    def step(self) -> StepOutput: ...

    def state_dict(self) -> tuple[dict, dict]: ...

    def load_state_dict(self, trainer: dict, optim: dict) -> None: ...


@dataclass
class RunReport:
    """How a run shows itself: the progress-bar postfix, the per-step line (without a progress bar) and the
    evaluation text for a label ("before", "@ 10", "after"). ``has_eval``: whether there is held-out data;
    ``desc``: the command on the progress bar; ``unit``: what a step is (an ``iteration`` prints as ``iter``)."""

    has_eval: bool
    progress: Callable[[dict], dict]
    step_line: Callable[[dict], str]
    eval_text: Callable[[str, dict], str]
    desc: str = "ppo"
    unit: str = "iteration"


@dataclass
class RunPlan:
    """What a product adds to the loop. ``total``: the step the run ends at. ``save(out)``: write a checkpoint
    under ``out/checkpoints`` (every rank calls it; :func:`checkpoint_saver` makes the usual one).
    ``export(out, logger)``: after the last checkpoint, write ``final/`` and whatever else the product hands over;
    returns the entries it adds to the run's result. ``evaluate()``: the held-out evaluation (None: the run has
    none), run before training when ``eval_before`` (and at step 0 only), every ``eval_every`` steps, and after
    training when ``eval_after``. ``collective_eval``: every rank runs it (a sharded model's forward needs all)."""

    total: int
    save: Callable[[Path], Path | None]
    export: Callable[[Path, RunLogger | NullLogger], dict]
    evaluate: Callable[[], StepOutput] | None = None
    eval_every: int = 0
    eval_before: bool = True
    eval_after: bool = True
    collective_eval: bool = False


def fmt_metrics(metrics: dict, keys: list[str]) -> str:
    """``name=value`` of those ``keys`` that ``metrics`` has (``eval/`` dropped from the names)."""
    return "  ".join(f"{k.removeprefix('eval/')}={metrics[k]:.3f}" for k in keys if k in metrics)


def metrics_report(desc: str, has_eval: bool, bar: dict[str, str], step_keys: list[str],
                   eval_keys: list[str]) -> RunReport:
    """The report of a supervised command (its steps are optimizer steps): ``bar`` {label: metric} on the progress
    bar, ``step_keys`` in the per-step line and ``eval_keys`` in each evaluation's line."""
    return RunReport(has_eval=has_eval, progress=lambda m: {label: m[key] for label, key in bar.items()},
                     step_line=lambda m: fmt_metrics(m, step_keys),
                     eval_text=lambda label, m: f"[eval {label}] {fmt_metrics(m, eval_keys)}", desc=desc,
                     unit="step")


def run_loop(trainer: Trainer, cfg, report: RunReport, plan: RunPlan, stop_after: int | None = None) -> dict:
    """Run ``trainer`` to ``plan.total`` steps (or ``stop_after`` steps of this call) with ``cfg.logging``'s folder,
    cadences and checkpoints; ``cfg`` is saved with each checkpoint. Returns ``trainer``, ``steps_run`` (steps of
    this call), ``last`` (the last step's output), ``before``/``after`` (evaluations) and what ``plan.export``
    adds (on rank 0)."""
    out, lg, main = Path(cfg.logging.output_dir), cfg.logging, dist.is_main()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        trackers = build_trackers(lg.trackers, out, to_dict(cfg), resumed=trainer.iteration > 0)
        logger = RunLogger(out, lg.tensorboard, lg.progress, plan.total, trainer.iteration, report.desc, trackers)
    else:
        logger = NullLogger()
    result: dict = {"trainer": trainer, "steps_run": 0}
    label = "iter" if report.unit == "iteration" else report.unit

    def evaluate(name: str, key: str | None) -> None:
        if plan.evaluate is None or not (main or plan.collective_eval):
            return
        t0 = time.perf_counter()
        ev = plan.evaluate()
        seconds = time.perf_counter() - t0
        if not main:
            return
        logger.log(trainer.iteration, {**ev.metrics, "time/eval_s": seconds})
        logger.log_samples(trainer.iteration, "eval", ev.samples)  # every evaluation: the lab re-scores them
        if key is not None:
            result[key] = ev
        logger.write(f"{report.eval_text(name, ev.metrics)} ({seconds:.0f} s)")

    started = time.perf_counter()
    try:
        if trainer.iteration == 0 and plan.eval_before:
            evaluate("before", "before")
        while trainer.iteration < plan.total:
            step = trainer.step()
            it = trainer.iteration
            if it % lg.log_every == 0 or it == plan.total:
                logger.log(it, step.metrics)
            logger.log_samples(it, "train", step.samples)
            logger.progress(report.progress(step.metrics))
            if not lg.progress:
                logger.write(f"{label} {it}: " + report.step_line(step.metrics))
            if plan.eval_every and it % plan.eval_every == 0 and it < plan.total:
                evaluate(f"@ {it}", None)
            if lg.save_every and it % lg.save_every == 0:
                plan.save(out)
            result["last"] = step
            result["steps_run"] += 1
            if stop_after is not None and result["steps_run"] >= stop_after:
                return result
        if plan.eval_after:
            evaluate("after", "after")
        plan.save(out)
        exported = plan.export(out, logger)
        if main:
            result.update(exported)
            for folder in exported.values():  # each exported model folder gets its model card
                if isinstance(folder, Path) and (folder / "config.json").is_file():
                    write_model_card(folder, cfg, report.desc, result)
        logger.write(f"{report.desc}: {result['steps_run']} {report.unit}s, evaluations and checkpoints in "
                     f"{(time.perf_counter() - started) / 60:.1f} min")
    finally:
        logger.close()
    return result


def checkpoint_saver(trainer: Trainer, cfg, name: str, model, tokenizer) -> Callable[[Path], Path]:
    """The save hook of a single-process command: ``checkpoints/step-NNNNNN`` with ``name/`` (``model``'s
    ``save_pretrained`` folder, or its LoRA adapter, and the tokenizer), optim.pt, trainer_state.pt and
    config.yaml; the newest ``logging.keep_checkpoints`` stay."""

    def save(out: Path) -> Path:
        state, optim = trainer.state_dict()

        def fill(tmp: Path) -> None:
            model.save_pretrained(tmp / name)
            tokenizer.save_pretrained(tmp / name)

        return write_checkpoint(out / "checkpoints", f"step-{trainer.iteration:06d}", fill, to_dict(cfg), state,
                                optim, cfg.logging.keep_checkpoints)

    return save


def load_checkpoint(trainer: Trainer, resume: str, name: str, model) -> Path:
    """Continue ``trainer`` from the checkpoint ``--resume`` points to (a checkpoint, its ``checkpoints/`` folder or
    the run folder): ``model``'s weights from ``name/``, then the trainer and optimizer state. Returns the folder."""
    ckpt = find_checkpoint(resume)
    load_weights(model, ckpt / name)
    trainer.load_state_dict(*load_trainer_state(ckpt))
    return ckpt


def export_pretrained(model, tokenizer, folder: Path, state_dict: dict | None = None) -> Path:
    """``model`` and ``tokenizer`` as a plain ``save_pretrained`` folder, written atomically (LoRA adapters merged
    into a copy). ``state_dict``: whole weights to write instead of the model's own (a sharded model's)."""
    if is_peft(model):
        model = copy.deepcopy(model).merge_and_unload()
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
    return folder


def write_model_card(folder: Path, cfg, command: str, result: dict) -> Path:
    """``folder/README.md``: what trained this model (command, base model, data, steps, the last held-out metrics and
    the whole config), with the hub's metadata header, so that the folder is ready to publish. Written atomically."""
    from importlib.metadata import PackageNotFoundError, version

    import yaml

    try:
        __version__ = version("blendrl")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        __version__ = "(source tree)"
    config = to_dict(cfg)
    model = config.get("model", {}).get("name", "?")
    data = config.get("data")
    if isinstance(data, dict):  # prompts (RL), train (preferences), or each CGPO task's prompts
        data = data.get("prompts") or data.get("train")
    prompts = data or [t.get("prompts") for t in config.get("tasks", []) if isinstance(t, dict)]
    after = result.get("after")
    metrics = {} if after is None else {k: v for k, v in after.metrics.items() if isinstance(v, (int, float))}
    lines = ["---", "library_name: transformers", f"base_model: {model}", f"tags: [blendrl, rlhf, {command}]", "---",
             "", f"# {folder.parent.name}", "",
             f"Trained with blendrl {__version__} (`blendrl {command}`) from `{model}` for {result.get('steps_run', 0)}"
             " steps of this run.", "", f"Training data: `{prompts}`.", ""]
    if metrics:
        lines += ["## Held-out metrics after training", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())] + [""]
    lines += ["## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```", ""]
    atomic_write_text(folder / "README.md", "\n".join(lines))
    return folder / "README.md"
