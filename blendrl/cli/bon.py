"""``blendrl bon --config FILE.yaml [--set key=value ...]``: best-of-n with the unbiased estimator."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("bon", help="best-of-n sampling: unbiased estimate for every n, KL_bon, picks")
    add_config_arguments(p, "bon.pool=32")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .common import load_checked
    from ..config.schema import BoNRunConfig
    from ..eval.bon_run import format_bon, run_bon

    cfg = load_checked(BoNRunConfig, args.config, args.overrides)
    result = run_bon(cfg)
    print(format_bon(result["table"]))
    print(f"wrote {cfg.logging.output_dir}/bon.json and picks.jsonl")
    return 0
