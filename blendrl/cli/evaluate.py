"""``blendrl eval --config CGPO.yaml [--set model.name=runs/cgpo/final] [--humaneval N]``: held-out evaluation per
task (judge pass rates, reward, KL to the reference, length) and optionally HumanEval pass@1 in the sandbox.
``blendrl eval --runs runs/cgpo runs/cgpo_ppo``: the before/after tables of finished runs side by side."""
from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="per-task judge pass rates, reward, KL and length; HumanEval pass@1")
    p.add_argument("--config", help="a cgpo YAML config (its tasks' eval_prompts are evaluated)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.name=runs/cgpo/final (repeatable)")
    p.add_argument("--humaneval", type=int, default=0, metavar="N",
                   help="also run HumanEval pass@1 on the first N problems (164 = all; 0 = skip)")
    p.add_argument("--output", default=None, help="write the metrics (and HumanEval per-problem verdicts) as JSON here")
    p.add_argument("--runs", nargs="+", default=None, metavar="[LABEL=]DIR",
                   help="instead of evaluating: print the before/after table of finished runs side by side")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .common import load_checked
    from ..config.cgpo_schema import CGPORunConfig
    from ..eval.humaneval import humaneval_pass_at_1, load_problems
    from ..training.cgpo.run import build_cgpo_trainer, eval_table

    if args.runs:
        from ..eval.compare import compare_table

        runs = dict(r.split("=", 1) if "=" in r else (r.rstrip("/").split("/")[-1], r) for r in args.runs)
        print(compare_table(runs))
        return 0
    cfg = load_checked(CGPORunConfig, args.config, args.overrides)
    trainer = build_cgpo_trainer(cfg)
    metrics = trainer.evaluate(cfg.logging.eval_prompts).metrics
    print(f"eval of {cfg.model.name} on {cfg.logging.eval_prompts} held-out prompts per task:")
    print(eval_table(metrics, trainer.tasks))
    if args.humaneval:
        params = trainer.tasks[0].params.__class__(max(cfg.generation.max_new_tokens, 256),
                                                   cfg.generation.temperature, cfg.generation.top_p)
        he = humaneval_pass_at_1(trainer.generator, trainer.m.tokenizer, load_problems(args.humaneval), params,
                                 cfg.train.seed)
        metrics["humaneval/pass@1"] = he["pass@1"]
        per_problem = he["results"]
        print(f"  HumanEval pass@1 = {he['pass@1']:.3f} ({he['passed']}/{he['total']})")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({**metrics, **({"humaneval/results": per_problem} if args.humaneval else {})}, f, indent=1)
    return 0
