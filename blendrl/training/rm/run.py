"""``blendrl rm train|strength|eval``: build everything from an :class:`RMRunConfig` and run it.

``rm train`` runs through the one run loop (:mod:`blendrl.training.driver`). Layout of ``logging.output_dir``::

    metrics.jsonl, tensorboard/      per-step training metrics (and held-out ones every ``logging.eval_every``)
    checkpoints/step-000040/         model/ (save_pretrained or LoRA adapter), optim.pt, trainer_state.pt, config.yaml
    final/                           the reward model: save_pretrained + tokenizer (plain transformers loads it;
                                     use it as ``{kind: hf_rm, path: …/final}`` in ``blendrl ppo``)
    eval.json, calibration.png       written by ``blendrl rm eval`` (and after ``rm train`` when data.eval is set)
"""
from __future__ import annotations

import copy
from dataclasses import replace
import json
import logging
from pathlib import Path

import torch

from ...config import ConfigError
from ...config.rm_schema import C2RMConfig, RMLossConfig, RMRunConfig
from ...data.pair_encoding import EncodedPairs, encode_pairs
from ...data.preferences import load_preferences, write_preferences
from ...eval.rm_eval import calibration_plot, decile_ids, format_report, pair_metrics
from ...core.fsutil import atomic_write_text
from ...functional.c2rm import C2RM_RECIPES
from ...functional.rm_losses import fit_temperature, preference_strength
from ...models.lora import add_lora
from ...models.reward_model import load_reward_model, save_reward_model
from ...core import dist
from ...core.seeds import stream
from ..driver import RunPlan, checkpoint_saver, load_checkpoint, metrics_report, run_loop
from ..names import check_names
from ..trainer import StepOutput
from .recipes import RECIPES
from .trainer import ModelScorer, RMTrainer

log = logging.getLogger("blendrl")


# named fields of an RM config (with NAMED_FIELDS)
RM_NAMES = {(RMLossConfig, "recipe"): (RECIPES, ()), (C2RMConfig, "recipe"): (C2RM_RECIPES, ())}


def load_pairs(source: str, tokenizer, cfg: RMRunConfig) -> EncodedPairs:
    pairs = load_preferences(source, cfg.data.on_empty)[: cfg.data.limit]
    return encode_pairs(pairs, tokenizer, cfg.data.max_length, cfg.data.too_long, source)


def build_model(cfg: RMRunConfig):
    """``(model, tokenizer)`` with LoRA adapters when ``model.trainable`` is lora."""
    torch.manual_seed(cfg.train.seed)  # the fresh score head
    model, tokenizer = load_reward_model(cfg.model.name, cfg.model.dtype, cfg.model.dropout, lean=cfg.perf.lean_layers)
    if cfg.model.trainable == "lora":
        model = add_lora(model, cfg.model.lora, task_type="SEQ_CLS")
    return model, tokenizer


def build_rm_trainer(cfg: RMRunConfig, resume: str | None = None) -> RMTrainer:
    from ..run import set_up_torch

    check_names(cfg, RM_NAMES)
    dist.require_single_process("blendrl rm")
    set_up_torch(cfg.train.threads, cfg.train.seed, cfg.perf)
    model, tokenizer = build_model(cfg)
    train = load_pairs(cfg.data.train, tokenizer, cfg)
    if cfg.metarm.enabled:
        from .metarm import MetaRMTrainer, build_meta_set

        trainer: RMTrainer = MetaRMTrainer(cfg, model, tokenizer, train, build_meta_set(cfg.metarm, tokenizer, cfg))
    elif cfg.segments.enabled:
        from .segments import make_segment_scorer

        trainer = RMTrainer(cfg, model, tokenizer, train, scorer=make_segment_scorer(model, tokenizer, cfg, train))
    else:
        trainer = RMTrainer(cfg, model, tokenizer, train)
    if resume:
        load_checkpoint(trainer, resume, "model", model)
    return trainer


def train_rm(cfg: RMRunConfig, resume: str | None = None, stop_after: int | None = None) -> dict:
    """Train a reward model; write checkpoints, ``final/`` and (with data.eval) ``eval.json``. Returns ``final``,
    ``eval``, ``temperature`` and ``segments`` where they apply, ``trainer`` and the run loop's entries."""
    trainer = build_rm_trainer(cfg, resume)
    p = trainer.pairs
    log.info("%d training pairs (%d truncated, %d skipped), %d steps of %d pairs, recipe %s%s", len(p), p.truncated,
             p.skipped, trainer.total_steps, cfg.train.batch_size, cfg.loss.recipe,
             f", flipped {int(trainer.flipped.sum())}" if trainer.flipped.any() else "")
    held = load_pairs(cfg.data.eval, trainer.tokenizer, cfg) if cfg.data.eval and cfg.logging.eval_every else None
    report = metrics_report("rm", held is not None, {"loss": "loss/total", "acc": "train/accuracy"},
                            ["loss/total", "train/accuracy", "train/margin", "grad_norm"],
                            ["eval/accuracy", "eval/margin_mean", "eval/ece"])
    plan = RunPlan(
        total=trainer.total_steps, save=checkpoint_saver(trainer, cfg, "model", trainer.model, trainer.tokenizer),
        export=lambda out, logger: export_rm(trainer, cfg, out, logger),
        evaluate=(lambda: StepOutput(pair_eval_metrics(trainer, held, cfg))) if held is not None else None,
        eval_every=cfg.logging.eval_every, eval_after=False)  # the final evaluation is export_rm's (calibrated)
    return run_loop(trainer, cfg, report, plan, stop_after)


def pair_eval_metrics(trainer: RMTrainer, enc: EncodedPairs, cfg: RMRunConfig) -> dict:
    """``eval/...`` accuracy, margin, ECE and reward statistics of the current model on held-out pairs."""
    return eval_scalars(pair_metrics(*trainer.score_pairs(enc), _mu(enc), cfg.eval.bins))


def eval_scalars(metrics: dict) -> dict:
    """The numbers of :func:`~blendrl.eval.rm_eval.pair_metrics` as ``eval/…`` metrics (its tables left out)."""
    return {f"eval/{k}": v for k, v in metrics.items() if isinstance(v, float)}


def export_rm(trainer: RMTrainer, cfg: RMRunConfig, out: Path, logger) -> dict:
    """After the last checkpoint: fold the calibration temperature into the head (``data.calibration``), write
    ``final/`` (and the segment settings), then evaluate on ``data.eval`` into ``eval.json`` and calibration.png."""
    result: dict = {}
    temperature = calibrate(trainer, cfg) if cfg.data.calibration else None
    result["final"] = save_reward_model(trainer.model, trainer.tokenizer, out / "final", cfg.model.name)
    if cfg.segments.enabled:
        from .segments import save_segment_settings

        result["segments"] = save_segment_settings(trainer.scorer, trainer.pairs, result["final"])
    if temperature is not None:
        result["temperature"] = temperature
        atomic_write_text(result["final"] / "calibration.json", json.dumps(
            {"temperature": temperature, "data": cfg.data.calibration}, indent=2))
    if cfg.data.eval:
        ev = load_pairs(cfg.data.eval, trainer.tokenizer, cfg)
        chosen, rejected = trainer.score_pairs(ev)
        metrics = pair_metrics(chosen, rejected, _mu(ev), cfg.eval.bins)
        if temperature is not None:  # the same scores before the head was divided by T
            before = pair_metrics(chosen * temperature, rejected * temperature, None, cfg.eval.bins)
            metrics.update(temperature=temperature, ece_before_calibration=before["ece"],
                           reward_std_before_calibration=before["reward_std"])
        result["eval"] = write_eval(metrics, out)
        logger.log(trainer.iteration, eval_scalars(result["eval"]))
        logger.write(format_report(result["eval"]))
    return result


def calibrate(trainer: RMTrainer, cfg: RMRunConfig) -> float:
    """Fit a temperature on ``data.calibration`` pairs and divide the score head by it (weights and bias, so every
    reward becomes r/T in the saved folder that plain transformers loads). Returns T."""
    from ...models.heads import score_head

    cal = load_pairs(cfg.data.calibration, trainer.tokenizer, cfg)
    chosen, rejected = trainer.score_pairs(cal)
    try:
        t = fit_temperature(chosen - rejected)
    except ValueError as exc:
        raise ConfigError(f"data.calibration: {cfg.data.calibration}: {exc}") from None
    with torch.no_grad():
        for p in score_head(trainer.model).parameters():
            p.div_(t)
    log.info("calibration on %d pairs (%s): temperature %.4f", len(cal), cfg.data.calibration, t)
    return t


def _mu(enc: EncodedPairs) -> torch.Tensor | None:
    if all(p.mu is not None for p in enc.pairs):
        return torch.tensor([float(p.mu) for p in enc.pairs])
    return None


def write_eval(metrics: dict, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "eval.json", json.dumps(metrics, indent=2))
    calibration_plot(metrics, out / "calibration.png")
    return metrics


def eval_rm(cfg: RMRunConfig) -> dict:
    """Score ``data.eval`` with ``eval.model`` (default ``logging.output_dir``/final); write eval.json + PNG."""
    if not cfg.data.eval:
        raise ConfigError("data.eval: required for rm eval")
    folder = cfg.eval.model or str(Path(cfg.logging.output_dir) / "final")
    model, tokenizer = load_reward_model(folder, cfg.model.dtype)
    enc = load_pairs(cfg.data.eval, tokenizer, cfg)
    if cfg.segments.enabled:  # the sequence score of a segment reward model is its segment mean
        from .segments import make_segment_scorer

        scorer = make_segment_scorer(model, tokenizer, cfg, enc)
    else:
        scorer = ModelScorer(model, tokenizer.pad_token_id, cfg.eval.batch_size)
    metrics = pair_metrics(scorer.score(enc.chosen), scorer.score(enc.rejected), _mu(enc), cfg.eval.bins)
    metrics.update({"model": folder, "data": cfg.data.eval, "truncated": enc.truncated, "skipped": enc.skipped})
    return write_eval(metrics, Path(cfg.logging.output_dir))


def strength(cfg: RMRunConfig) -> dict:
    """Secrets II eq. 4: train ``strength.models`` reward models (seed, seed+1, …; each its own data order) on
    ``data.train``, score every training pair with each, and write μ̂ / σ̂ as columns next to the original fields.
    With ``strength.folds`` K > 0, model m trains on every fold but m mod K, and a pair's μ̂ / σ̂ come only from
    the M/K models that held it out (cross-fitting: a model cannot vouch for a label it memorised).
    With ``model.trainable: head`` the backbone features are computed once and shared by all heads."""
    s = cfg.strength
    cfg = replace(cfg, model=replace(cfg.model, trainable=s.trainable or cfg.model.trainable),  # derived, not mutated
                  train=replace(cfg.train, lr=s.lr or cfg.train.lr, epochs=s.epochs or cfg.train.epochs))
    if cfg.model.trainable == "lora" and cfg.model.lora is None:
        raise ConfigError("model.lora: required when strength.trainable is lora")
    if RECIPES[cfg.loss.recipe].needs_mu:
        raise ConfigError(f"loss.recipe: strength trains plain reward models; '{cfg.loss.recipe}' needs μ̂ already "
                          "(use bt or label_smoothing)")
    from ..run import set_up_torch

    set_up_torch(cfg.train.threads, cfg.train.seed, cfg.perf)
    base, tokenizer = build_model(cfg)
    enc = load_pairs(cfg.data.train, tokenizer, cfg)
    folds = pair_folds(len(enc), s.folds, cfg.train.seed)  # (N,) fold of each pair, or None
    shared = None
    diffs = []
    for m in range(s.models):
        seed = cfg.train.seed + m
        torch.manual_seed(seed)
        model = base if cfg.model.trainable == "head" else copy.deepcopy(base)
        _reinit_head(model, seed)
        seen = torch.ones(len(enc), dtype=torch.bool) if folds is None else folds != m % s.folds  # (N,)
        train = enc if folds is None else subset(enc, seen.nonzero().flatten().tolist())
        trainer = RMTrainer(cfg, model, tokenizer, train, seed=seed, scorer=shared)
        if cfg.model.trainable == "head":
            shared = trainer.scorer
        while not trainer.done:
            trainer.train_step()
        chosen, rejected = trainer.score_pairs(enc)
        diffs.append(chosen - rejected)
        log.info("strength model %d/%d: accuracy %.3f on its training pairs", m + 1, s.models,
                 (chosen > rejected)[seen].float().mean().item())
    d = torch.stack(diffs)  # (M, N)
    if folds is None:
        mu, sigma = preference_strength(d)  # (N,), (N,)
    else:  # pairs of fold f get their strength from models f, f+K, … (the ones that did not train on them)
        mu, sigma = torch.empty(len(enc)), torch.empty(len(enc))
        for f in range(s.folds):
            mu[folds == f], sigma[folds == f] = preference_strength(d[f::s.folds][:, folds == f])
    rows = [{**p.raw, "mu": round(float(u), 6), "sigma": round(float(sd), 6)}
            for p, u, sd in zip(enc.pairs, mu, sigma)]
    path = write_preferences(rows, cfg.strength.output)
    table = strength_table(mu, sigma, rows, cfg.strength.report_columns)
    atomic_write_text(path.with_name(path.stem + ".deciles.json"), json.dumps(table, indent=2))
    return {"output": path, "mu": mu, "sigma": sigma, "table": table}


def pair_folds(n: int, folds: int, seed: int) -> torch.Tensor | None:
    """A seeded fold id in 0..folds−1 for each of ``n`` pairs (balanced), or None when ``folds`` is 0."""
    if not folds:
        return None
    order = torch.randperm(n, generator=stream(seed, "folds"))
    out = torch.empty(n, dtype=torch.long)
    out[order] = torch.arange(n) % folds
    return out


def subset(enc: EncodedPairs, idx: list[int]) -> EncodedPairs:
    return EncodedPairs([enc.pairs[i] for i in idx], [enc.chosen[i] for i in idx], [enc.rejected[i] for i in idx],
                        enc.truncated, enc.skipped)


def _reinit_head(model, seed: int) -> None:
    """A fresh score head per strength model (LoRA wrappers keep their own trainable copy)."""
    from ...models.heads import score_head

    torch.manual_seed(seed)
    std = getattr(getattr(model, "config", None), "initializer_range", 0.02)
    for mod in score_head(model).modules():
        if isinstance(mod, torch.nn.Linear):
            torch.nn.init.normal_(mod.weight, std=std)


def strength_table(mu: torch.Tensor, sigma: torch.Tensor, rows: list[dict], columns: list[str]) -> list[dict]:
    """Per μ̂ decile (1 = lowest): μ̂ range and mean, mean σ̂, and the mean of each report column."""
    d = decile_ids(mu)
    table = []
    for k in range(10):
        sel = (d == k).nonzero().flatten().tolist()
        if not sel:
            continue
        row = {"decile": k + 1, "count": len(sel), "mu_min": mu[sel].min().item(), "mu_max": mu[sel].max().item(),
               "mu_mean": mu[sel].mean().item(), "sigma_mean": sigma[sel].mean().item()}
        for col in columns:
            values = [rows[i].get(col) for i in sel]
            if any(not isinstance(v, (bool, int, float)) for v in values):
                raise ConfigError(f"strength.report_columns: column '{col}' is missing or not numeric in some rows")
            row[col] = sum(float(v) for v in values) / len(values)
        table.append(row)
    return table


def format_strength_table(table: list[dict], columns: list[str]) -> str:
    head = "decile  pairs  mu range            mu mean  sigma mean" + "".join(f"  {c:>10}" for c in columns)
    lines = [head]
    for r in table:
        lines.append(f"{r['decile']:>6}  {r['count']:5d}  [{r['mu_min']:+.3f}, {r['mu_max']:+.3f}]  "
                     f"{r['mu_mean']:+7.3f}  {r['sigma_mean']:10.3f}" + "".join(f"  {r[c]:10.3f}" for c in columns))
    return "\n".join(lines)
