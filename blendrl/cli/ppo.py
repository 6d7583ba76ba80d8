"""``blendrl ppo --config FILE.yaml [--set key=value ...] [--resume DIR]``."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("ppo", help="RL post-training with PPO / RLOO / GRPO / REINFORCE")
    add_config_arguments(p, "train.iterations=5", "YAML config (see examples/)")
    p.add_argument("--resume", help="a run folder or checkpoint folder to continue from")
    p.set_defaults(func=main)


def _print_samples(title: str, step, n: int = 3) -> None:
    print(f"\n== {title}: mean reward {step.metrics['eval/reward/mean']:.3f} ==")
    for row in step.samples[:n]:
        print(f"  Q: {row['prompt']}\n  A: {row['response'].strip()!r}  (reward {row['reward']:.2f})")


def main(args: argparse.Namespace) -> int:
    from ..config import PPORunConfig
    from .common import load_checked
    from ..training.run import run

    cfg = load_checked(PPORunConfig, args.config, args.overrides)
    result = run(cfg, resume=args.resume)
    if "before" in result:
        _print_samples("held-out prompts before training", result["before"])
    if "after" in result:
        _print_samples("held-out prompts after training", result["after"])
    if "before" in result and "after" in result:
        b, a = result["before"].metrics["eval/reward/mean"], result["after"].metrics["eval/reward/mean"]
        print(f"\nheld-out reward: {b:.3f} -> {a:.3f} ({a - b:+.3f})")
    if "final" in result:
        print(f"final policy: {result['final']}  (load with AutoModelForCausalLM.from_pretrained)")
    return 0
