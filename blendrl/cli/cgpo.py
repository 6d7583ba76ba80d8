"""``blendrl cgpo --config FILE.yaml [--set key=value ...] [--resume DIR]``: multi-task CGPO with a mixture of
judges."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("cgpo", help="CGPO: multi-task RLHF with judges as hard constraints (CRPG/CODPO/CRRAFT)")
    add_config_arguments(p, "train.iterations=4")
    p.add_argument("--resume", default=None, help="a run folder or checkpoint to continue from")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .common import load_checked
    from ..config.cgpo_schema import CGPORunConfig
    from ..training.cgpo.run import run_cgpo

    result = run_cgpo(load_checked(CGPORunConfig, args.config, args.overrides), resume=args.resume)
    if "final" in result:
        print(f"cgpo: final policy written to {result['final']}")
    return 0
