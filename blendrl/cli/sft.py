"""``blendrl sft --config FILE.yaml [--set key=value ...]``: supervised fine-tuning on responses."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning (e.g. the two SFT models of a SALSA soup)")
    add_config_arguments(p, "train.seed=1")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .common import load_checked
    from ..training.sft import SFTRunConfig, run_sft

    result = run_sft(load_checked(SFTRunConfig, args.config, args.overrides))
    losses = result["losses"]
    print(f"sft: {len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}; model: {result['final']}")
    return 0
