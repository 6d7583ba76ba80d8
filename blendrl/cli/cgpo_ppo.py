"""``blendrl cgpo-ppo --config CGPO.yaml [--set ...] [--ppo-set ...] [--judge-bonus 1.0] [--resume DIR]``:
summed-reward PPO on a CGPO config's tasks with the same budget (the baseline CGPO is compared with), evaluated
per task exactly as ``blendrl cgpo`` evaluates. Output: ``<logging.output_dir>_ppo``."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("cgpo-ppo", help="summed-reward PPO over a CGPO config's tasks, the same budget (baseline)")
    add_config_arguments(p, "train.iterations=4", config_help="the cgpo YAML config")
    p.add_argument("--ppo-set", dest="ppo_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of the derived PPO config, e.g. --ppo-set kl.coef=0.1 (repeatable)")
    p.add_argument("--judge-bonus", type=float, default=1.0,
                   help="added to a sample's task reward when every judge of its task passes (default 1.0)")
    p.add_argument("--resume", default=None, help="a run folder or checkpoint to continue from")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .common import load_checked
    from ..config.cgpo_schema import CGPORunConfig
    from ..training.cgpo.summed_ppo import run_summed_ppo

    cfg = load_checked(CGPORunConfig, args.config, args.overrides)
    result = run_summed_ppo(cfg, args.judge_bonus, args.ppo_overrides, args.resume)
    if "final" in result:
        print(f"cgpo-ppo: final policy written to {result['final']}")
    return 0
