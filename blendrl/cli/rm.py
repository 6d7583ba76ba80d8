"""``blendrl rm train|strength|eval|c2rm --config FILE.yaml [--set key=value ...]``."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("rm", help="reward models: train, preference strength, evaluation (Secrets of RLHF II)")
    actions = p.add_subparsers(dest="action", required=True)
    for name, help_text in [("train", "train a reward model (recipes: every combination of flip, label smoothing "
                                      "and adaptive margin; contrastive; MetaRM; segments; calibration)"),
                            ("strength", "train M reward models and write preference strength mu/sigma per pair"),
                            ("eval", "accuracy, accuracy per mu decile, reward statistics and a calibration plot"),
                            ("c2rm", "confidence-aware math preference pairs (C2RM): sample k answers per question, "
                                     "classify by correctness and self-consistency, pair by recipe")]:
        a = actions.add_parser(name, help=help_text)
        add_config_arguments(a, "loss.recipe=flip", "YAML config (see examples/rm_secrets.yaml)")
        if name == "train":
            a.add_argument("--resume", help="a run folder or checkpoint folder to continue from")
        a.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .common import load_checked
    from ..config.rm_schema import RMRunConfig
    from ..eval.rm_eval import format_report
    from ..training.rm import run as rm_run

    cfg = load_checked(RMRunConfig, args.config, args.overrides)
    if args.action == "train":
        result = rm_run.train_rm(cfg, resume=args.resume)
        print(f"reward model: {result['final']}  (use as {{kind: hf_rm, path: {result['final']}}} in blendrl ppo)")
    elif args.action == "c2rm":
        from ..eval.c2rm import build_c2rm_pairs

        stats = build_c2rm_pairs(cfg.c2rm)
        print(f"{stats['prompts']} prompts × {cfg.c2rm.k} samples, accuracy {stats['accuracy']:.3f}, classes "
              f"{stats['classes']}; {stats['pairs']} pairs → {stats['output']} (train on it: --set data.train=...)")
    elif args.action == "strength":
        result = rm_run.strength(cfg)
        print(rm_run.format_strength_table(result["table"], cfg.strength.report_columns))
        print(f"pairs with mu/sigma: {result['output']}")
    else:
        metrics = rm_run.eval_rm(cfg)
        print(format_report(metrics))
        print(f"wrote {cfg.logging.output_dir}/eval.json and calibration.png")
    return 0
