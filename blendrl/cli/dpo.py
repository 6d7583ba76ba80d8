"""``blendrl dpo --config FILE.yaml [--set key=value ...] [--resume DIR]``: offline DPO / IPO / conservative DPO."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("dpo", help="offline preference optimisation: DPO, IPO, conservative DPO")
    add_config_arguments(p, "loss.kind=ipo", "YAML config (see examples/dpo.yaml)")
    p.add_argument("--resume", help="a run folder or checkpoint folder to continue from")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..config.dpo_schema import DPORunConfig
    from ..training.dpo import run_dpo
    from .common import load_checked

    result = run_dpo(load_checked(DPORunConfig, args.config, args.overrides), resume=args.resume)
    for label in ("before", "after"):
        if label in result:
            m = result[label]
            print(f"held-out {label}: loss {m['eval/loss/dpo']:.4f}, implicit-reward accuracy "
                  f"{m['eval/dpo/reward_accuracy']:.3f}, margin {m['eval/dpo/margin']:.4f}")
    if "final" in result:
        print(f"final policy: {result['final']}  (load with AutoModelForCausalLM.from_pretrained)")
    return 0
