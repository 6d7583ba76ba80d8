"""Reward-model robustness across noisy-preference generators (issue #30; Secrets of RLHF II §2).

A cell is (generator, noise kind, noise rate, seed). Per cell:

1. data: ``--train`` noisy pairs from the generator (``blendrl.data.synthetic.make_pairs``), ``--calib`` clean pairs
   for the temperature and ``--eval`` clean held-out pairs (other seeds); ``uniform`` noise flips exactly that
   share at random, ``near_tie`` flips each pair with a Bradley–Terry annotator's probability (near-ties most);
2. preference strength twice: as in the paper (every strength model sees every pair) and cross-fitted
   (``strength.folds: 2``: a pair's μ̂ / σ̂ come from the models that did not train on it);
3. every recipe variant of ``VARIANTS`` trains a fresh reward model with the same budget on the noisy pairs, is
   calibrated on the clean calibration split (``data.calibration``), and is scored on the clean held-out pairs:
   accuracy, ECE before and after calibration, reward std before calibration.

Backbones: ``tiny`` (random Llama h=64 L=2 trained in full from scratch, word-level tokenizer), ``smollm2`` (the
embedded SmolLM2-135M-Instruct with LoRA r=16 as ``examples/rm_secrets.yaml``; strength from 10 score heads on
frozen features) or ``smollm2-head`` (SmolLM2 frozen, every reward model a score head on its features: cheap).
Results are appended to ``--json`` after every cell, and ``--resume`` skips finished cells.

    python benchmarks/rm_robustness.py --json out.json [--backbone tiny|smollm2|smollm2-head] [--seeds 3]
    python benchmarks/rm_robustness.py --report out.json     # print the tables of a finished (or partial) run
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendrl.config import load_config  # noqa: E402
from blendrl.config.rm_schema import RMRunConfig  # noqa: E402
from blendrl.data.preferences import write_preferences  # noqa: E402
from blendrl.data.synthetic import ALL_VOCABULARY, make_pairs  # noqa: E402
from blendrl.training.rm import run as rm_run  # noqa: E402

# name → (recipe, loss overrides, strength: "paper" | "crossfit" | None)
VARIANTS = {
    "bt": ("bt", {}, None),
    "label_smoothing": ("label_smoothing", {}, None),
    "flip (paper: lowest 20%)": ("flip", {}, "paper"),
    "margin (paper: raw μ̂)": ("margin", {}, "paper"),
    "flip_margin (paper)": ("flip_margin", {}, "paper"),
    "soft_label_margin (paper)": ("soft_label_margin", {}, "paper"),
    "soft_label": ("soft_label", {}, "paper"),
    "margin, mean_abs unit": ("margin", {"margin_unit": "mean_abs"}, "paper"),
    "flip confident": ("flip", {"flip_rule": "confident"}, "paper"),
    "flip 20%, cross-fit μ̂": ("flip", {}, "crossfit"),
    "flip confident, cross-fit μ̂": ("flip", {"flip_rule": "confident"}, "crossfit"),
    "soft_label, cross-fit μ̂": ("soft_label", {}, "crossfit"),
    "flip confident + soft_label, cross-fit": ("flip_soft_label", {"flip_rule": "confident"}, "crossfit"),
    "flip confident + margin mean_abs, cross-fit": ("flip_margin", {"flip_rule": "confident",
                                                                    "margin_unit": "mean_abs"}, "crossfit"),
}
CEILING = "bt (clean labels)"
GENERATORS = ["topics", "arithmetic", "bag_of_words"]
NOISES = ["uniform:0.1", "uniform:0.25", "uniform:0.4", "near_tie:0.25"]
BACKBONES = {
    "tiny": {"train.epochs": 2, "train.lr": 2e-3, "train.batch_size": 32, "train.micro_batch_size": 32,
             "train.schedule": "linear", "data.max_length": 64},
    "smollm2-head": {"model.name": "smollm2-135m-instruct", "model.trainable": "head", "train.epochs": 10,
                     "train.lr": 5e-3, "train.batch_size": 32, "train.micro_batch_size": 32, "train.schedule": "linear",
                     "data.max_length": 128, "strength.trainable": "head"},
    "smollm2": {"model.name": "smollm2-135m-instruct", "model.trainable": "lora", "model.lora.r": 16,
                "model.lora.alpha": 32, "train.epochs": 2, "train.lr": 1e-3, "train.batch_size": 32,
                "train.micro_batch_size": 16, "train.schedule": "linear", "data.max_length": 128,
                "strength.trainable": "head", "strength.lr": 5e-3, "strength.epochs": 10},
}


def config(args, out: Path, train: Path, seed: int, model: str | None, **sets) -> RMRunConfig:
    base = {**BACKBONES[args.backbone], "data.train": train, "data.eval": None, "train.seed": seed,
            "logging.output_dir": out, "logging.tensorboard": False, "logging.progress": False,
            "logging.save_every": 0, "logging.keep_checkpoints": 1, **({"model.name": model} if model else {}),
            **sets}
    return load_config(RMRunConfig, None, [f"{k}={'null' if v is None else v}" for k, v in base.items()])


def tiny_model(work: Path, seed: int) -> str:
    from tests.tiny import WORDS, build_model, build_tokenizer

    tokenizer = build_tokenizer(WORDS + [w for w in ALL_VOCABULARY if w not in WORDS])
    folder = work / f"init-{seed}"
    build_model(tokenizer, seed, hidden=64, layers=2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def share_frozen_features() -> None:
    """``smollm2-head``: every reward model of this process is a score head on the same frozen SmolLM2, so one
    feature cache serves them all (the backbone's last-token features of a conversation never change)."""
    from blendrl.training.rm.trainer import CachedFeatureScorer

    shared: dict = {}
    init = CachedFeatureScorer.__init__

    def shared_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.cache = shared

    CachedFeatureScorer.__init__ = shared_init


def strength_report(res: dict, rows: list[dict]) -> dict:
    import torch

    from blendrl.eval.rm_eval import decile_ids

    mu, sigma = res["mu"], res["sigma"]
    flipped = torch.tensor([bool(r["flipped"]) for r in rows])
    d = decile_ids(mu)
    n_flipped = max(int(flipped.sum()), 1)
    confident = mu < -sigma
    return {"flipped_rate": flipped.float().mean().item(),
            "flipped_in_lowest_decile": flipped[d == 0].float().mean().item(),
            "share_of_flipped_in_lowest_2_deciles": int(flipped[d <= 1].sum()) / n_flipped,
            "flipped_share_by_decile": [round(flipped[d == k].float().mean().item(), 3) for k in range(10)],
            "confident_count": int(confident.sum()),
            "confident_precision": flipped[confident].float().mean().item() if confident.any() else None}


def run_cell(args, generator: str, noise: str, seed: int, work: Path) -> dict:
    kind, rate = noise.split(":")
    common = {"generator": generator, "noise_kind": kind}
    noisy, clean = work / "noisy.jsonl", work / "clean.jsonl"
    calib, held = work / "calib.jsonl", work / "held.jsonl"
    rows = make_pairs(args.train, seed=seed, noise=float(rate), **common)
    write_preferences(rows, noisy)
    write_preferences(make_pairs(args.train, seed=seed, **common), clean)
    write_preferences(make_pairs(args.calib, seed=2000 + seed, **common), calib)
    write_preferences(make_pairs(args.eval, seed=1000 + seed, **common), held)
    model = tiny_model(work, seed) if args.backbone == "tiny" else None
    out: dict = {"generator": generator, "noise": noise, "seed": seed, "strength": {}, "recipes": {}}
    files = {}
    needed = {VARIANTS[v][2] for v in args.variants} | {"paper"}  # the paper's μ̂ is always reported
    for variant, folds in (("paper", 0), ("crossfit", 2)):
        if variant not in needed:
            continue
        files[variant] = work / f"strength-{variant}.jsonl"
        res = rm_run.strength(config(args, work / "s", noisy, seed * 100, model, **{
            "strength.models": args.models, "strength.folds": folds, "strength.output": files[variant]}))
        out["strength"][variant] = strength_report(res, rows)
    todo = [(name, *spec) for name, spec in VARIANTS.items() if name in args.variants]
    todo += [(CEILING, "bt", {}, "clean")] if args.ceiling else []
    for name, recipe, loss, strength in todo:
        train = {None: noisy, "clean": clean}.get(strength) or files[strength]
        t = time.time()
        r = rm_run.train_rm(config(args, work / "r", train, seed, model, **{
            "loss.recipe": recipe, **{f"loss.{k}": v for k, v in loss.items()}, "data.eval": held,
            "data.calibration": calib}))
        ev = r["eval"]
        out["recipes"][name] = {"accuracy": ev["accuracy"], "ece": ev["ece"],
                                "ece_before_calibration": ev["ece_before_calibration"],
                                "reward_std": ev["reward_std_before_calibration"], "temperature": ev["temperature"],
                                "flipped": int(r["trainer"].flipped.sum()), "seconds": round(time.time() - t, 1)}
    return out


def mean(xs) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.mean(xs) if xs else float("nan")


def report(results: list[dict], backbone: str) -> str:
    names = [n for n in [*VARIANTS, CEILING] if all(n in c["recipes"] for c in results)]
    gens = sorted({c["generator"] for c in results}, key=GENERATORS.index)
    noises = sorted({c["noise"] for c in results}, key=NOISES.index)
    lines = [f"{len(results)} cells ({len(gens)} generators × {len(noises)} noise settings × seeds), backbone "
             f"{backbone}; accuracy and ECE on clean held-out pairs; ECE after a temperature fitted on clean "
             "calibration pairs; Δ acc = paired difference with bt in the same cell.", "",
             "| recipe | accuracy | Δ acc vs bt | cells won / lost vs bt | ECE before → after calibration "
             "| reward std before → after | " + " | ".join(f"acc {g}" for g in gens) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(gens)]
    for n in names:
        cells = [c["recipes"][n] for c in results]
        diffs = [c["recipes"][n]["accuracy"] - c["recipes"]["bt"]["accuracy"] for c in results]
        won, lost = sum(d > 0.0005 for d in diffs), sum(d < -0.0005 for d in diffs)
        per_gen = [mean(c["recipes"][n]["accuracy"] for c in results if c["generator"] == g) for g in gens]
        lines.append(f"| {n} | {mean(x['accuracy'] for x in cells):.3f} | {mean(diffs):+.3f} | {won} / {lost} | "
                     f"{mean(x['ece_before_calibration'] for x in cells):.3f} → {mean(x['ece'] for x in cells):.3f} | "
                     f"{mean(x['reward_std'] for x in cells):.2f} → "
                     f"{mean(x['reward_std'] / x['temperature'] for x in cells):.2f} | "
                     + " | ".join(f"{a:.3f}" for a in per_gen) + " |")
    lines += ["", "Accuracy by noise setting (mean over generators and seeds):", "",
              "| recipe | " + " | ".join(noises) + " |", "|---|" + "---|" * len(noises)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(
            f"{mean(c['recipes'][n]['accuracy'] for c in results if c['noise'] == z):.3f}" for z in noises) + " |")
    lines += ["", "Preference strength: does μ̂ find the flipped pairs? (mean over seeds; 'confident' = μ̂ < −σ̂)", "",
              "| generator | noise | μ̂ | flipped share in lowest decile | share of flipped pairs in lowest 2 deciles "
              "| confident flips: count, precision |", "|---|---|---|---|---|---|"]
    for g in gens:
        for z in noises:
            cells = [c for c in results if c["generator"] == g and c["noise"] == z]
            for v in ("paper", "crossfit"):
                s = [c["strength"][v] for c in cells if v in c["strength"]]
                if s:
                    lines.append(f"| {g} | {z} | {v} | {mean(x['flipped_in_lowest_decile'] for x in s):.2f} | "
                                 f"{mean(x['share_of_flipped_in_lowest_2_deciles'] for x in s):.2f} | "
                                 f"{mean(x['confident_count'] for x in s):.0f}, "
                                 f"{mean(x['confident_precision'] for x in s):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", choices=sorted(BACKBONES), default="tiny")
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--noise", default=",".join(NOISES), help="kind:rate, comma-separated")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default=";".join(VARIANTS), help="names of VARIANTS separated by ';'")
    ap.add_argument("--models", type=int, default=10, help="M strength models")
    ap.add_argument("--no-ceiling", dest="ceiling", action="store_false", help="skip bt on the clean labels")
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--calib", type=int, default=200)
    ap.add_argument("--eval", type=int, default=500)
    ap.add_argument("--json", help="results file (appended after every cell; --resume skips finished cells)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--report", help="only print the tables of this results file")
    args = ap.parse_args()
    if args.report:
        data = json.loads(Path(args.report).read_text())
        print(report(data["results"], data["args"]["backbone"]))
        return
    unknown = set(args.variants.split(";")) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; choose from {list(VARIANTS)}")
    args.variants = [v for v in VARIANTS if v in args.variants.split(";")]
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if args.backbone == "smollm2-head":
        share_frozen_features()
    results = []
    if args.resume and args.json and Path(args.json).exists():
        results = json.loads(Path(args.json).read_text())["results"]
    done = {(c["generator"], c["noise"], c["seed"]) for c in results}
    start = time.time()
    for seed in range(args.seeds):
        for generator in args.generators.split(","):
            for noise in args.noise.split(","):
                if (generator, noise, seed) in done:
                    continue
                t = time.time()
                with tempfile.TemporaryDirectory() as tmp:
                    results.append(run_cell(args, generator, noise, seed, Path(tmp)))
                accs = results[-1]["recipes"]
                print(f"{generator} {noise} seed {seed} ({time.time() - t:.0f} s): "
                      + "  ".join(f"{k.split(' ')[0]}={v['accuracy']:.3f}" for k, v in accs.items()), flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"\n{time.time() - start:.0f} s; {args.train} noisy training pairs, {args.calib} clean calibration pairs, "
          f"{args.eval} clean held-out pairs per cell, M={args.models}\n")
    print(report(results, args.backbone))


if __name__ == "__main__":
    main()
