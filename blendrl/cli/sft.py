"""``blendrl sft --config FILE.yaml [--set key=value ...] [--resume DIR]``: supervised fine-tuning on responses."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning (e.g. the two SFT models of a SALSA soup)")
    add_config_arguments(p, "train.seed=1")
    p.add_argument("--resume", help="a run folder or checkpoint folder to continue from")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..config.sft_schema import SFTRunConfig
    from ..training.sft import run_sft
    from .common import load_checked

    result = run_sft(load_checked(SFTRunConfig, args.config, args.overrides), resume=args.resume)
    losses = result["losses"]
    print(f"sft: {len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}; model: {result['final']}")
    return 0
