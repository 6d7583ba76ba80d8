"""Label-noise experiment (issue #3; Secrets of RLHF II §2 in miniature).

Data: the synthetic preference task of :mod:`blendrl.data.synthetic` (true preference = a known function of the text,
with prompt- and order-dependent terms), ``--train`` pairs with 25% of labels flipped at random (Coste et al.'s
noise level), and a *clean* held-out set of ``--eval`` pairs from another seed.
Per seed:
1. ``blendrl rm strength``: M reward models (different init and data order) → μ̂, σ̂ per training pair; we report
   the share of flipped pairs in the bottom μ̂ deciles (how well μ̂ finds the wrong labels).
2. Every recipe trains a fresh reward model with the same budget (epochs, lr, batch) on the noisy pairs + μ̂:
   bt, label_smoothing, flip, margin, flip_margin, soft_label_margin; plus bt on the *clean* labels as a ceiling.
   We report accuracy on the clean held-out pairs (mean ± std over seeds).

Models are tiny random Llamas (word-level tokenizer) trained from scratch so that the whole table runs on 2 CPU cores
in minutes; ``--hidden/--layers`` change the size.

    python benchmarks/rm_noise.py [--seeds 3] [--models 10] [--epochs 2]
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
from blendrl.data.synthetic import make_pairs  # noqa: E402
from blendrl.training.rm import run as rm_run  # noqa: E402
from tests.tiny import build_model, build_tokenizer  # noqa: E402

RECIPES = ["bt", "label_smoothing", "flip", "margin", "flip_margin", "soft_label_margin"]


def config(model: Path, out: Path, train: Path, held: Path, args, seed: int, **sets) -> RMRunConfig:
    base = {"model.name": model, "data.train": train, "data.eval": held, "train.epochs": args.epochs,
            "train.lr": args.lr, "train.batch_size": 32, "train.micro_batch_size": 32, "train.seed": seed,
            "train.schedule": "linear", "logging.output_dir": out, "logging.tensorboard": False,
            "logging.progress": False, **sets}
    return load_config(RMRunConfig, None, [f"{k}={v}" for k, v in base.items()])


def run_seed(seed: int, args, work: Path) -> dict:
    tokenizer = build_tokenizer("rm")
    model_dir = work / f"init-{seed}"
    build_model(tokenizer, seed, args.hidden, args.layers).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    noisy, clean, held = work / f"noisy-{seed}.jsonl", work / f"clean-{seed}.jsonl", work / f"held-{seed}.jsonl"
    write_preferences(make_pairs(args.train, seed=seed, noise=args.noise), noisy)
    write_preferences(make_pairs(args.train, seed=seed, noise=0.0), clean)
    write_preferences(make_pairs(args.eval, seed=1000 + seed), held)
    strength_file = work / f"strength-{seed}.jsonl"
    t = time.time()
    res = rm_run.strength(config(model_dir, work / "s", noisy, held, args, seed * 100,
                                 **{"strength.models": args.models, "strength.output": strength_file,
                                    "strength.report_columns": "[flipped]"}))
    table = res["table"]
    n_flipped = sum(r["flipped"] * r["count"] for r in table)
    out = {"strength_s": time.time() - t,
           "flipped_in_bottom_decile": sum(r["flipped"] * r["count"] for r in table[:1]) / n_flipped,
           "flipped_in_bottom_2_deciles": sum(r["flipped"] * r["count"] for r in table[:2]) / n_flipped,
           "flipped_share_by_decile": [round(r["flipped"], 3) for r in table], "accuracy": {}}
    for recipe in RECIPES:
        r = rm_run.train_rm(config(model_dir, work / recipe, strength_file, held, args, seed,
                                   **{"loss.recipe": recipe}))
        out["accuracy"][recipe] = r["eval"]["accuracy"]
    r = rm_run.train_rm(config(model_dir, work / "clean", clean, held, args, seed))
    out["accuracy"]["bt (clean labels)"] = r["eval"]["accuracy"]
    print(f"seed {seed}: " + "  ".join(f"{k}={v:.3f}" for k, v in out["accuracy"].items()), flush=True)
    return out


def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", type=int, default=10, help="M reward models for preference strength")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--eval", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    import transformers

    transformers.utils.logging.disable_progress_bar()
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_seed(s, args, Path(tmp)) for s in range(args.seeds)]
    print(f"\n{args.train} training pairs ({args.noise:.0%} flipped), {args.eval} clean held-out pairs, "
          f"{args.seeds} seeds, M={args.models}, {args.epochs} epochs, tiny Llama h={args.hidden} L={args.layers}, "
          f"{time.time() - start:.0f} s total\n")
    print("| recipe | clean held-out accuracy (mean ± std) | per seed |\n|---|---|---|")
    for recipe in results[0]["accuracy"]:
        accs = [r["accuracy"][recipe] for r in results]
        print(f"| {recipe} | {mean_std(accs)} | {', '.join(f'{a:.3f}' for a in accs)} |")
    print("\n| preference strength | mean ± std |\n|---|---|")
    for key in ("flipped_in_bottom_decile", "flipped_in_bottom_2_deciles"):
        print(f"| share of flipped pairs in {key.split('in_')[1].replace('_', ' ')} | "
              f"{mean_std([r[key] for r in results])} |")
    print(f"| flipped share per μ̂ decile (seed 0, lowest first) | {results[0]['flipped_share_by_decile']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
