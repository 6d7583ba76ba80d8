"""GRPO on the built-in math prompts with and without the calculator tool (examples/ppo_calculator.yaml), on the
embedded SmolLM2-135M-Instruct: the held-out pass rate of the math judge, the tool calls and the policy's tokens per
episode, before and after the same short training of each.

    python benchmarks/tool_demo.py --iterations 8

Prints a table and writes ``benchmarks/results/tool_demo/latest.md``. Both rows use the reward −1[the math judge
fails the last turn], the same prompts, seed, budget of policy tokens per turn and iterations.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendrl.config import PPORunConfig, load_config  # noqa: E402
from blendrl.training.run import run  # noqa: E402

REWARD = "[{kind: judge_violations, weight: -1.0, options: {judges: [{kind: math}]}}]"


def one(name: str, env: str, iterations: int, out: Path) -> dict:
    sets = [f"environment.kind={env}", f"rewards={REWARD}", f"train.iterations={iterations}",
            f"logging.output_dir={out / name}", "logging.progress=false", "logging.eval_prompts=16",
            "logging.tensorboard=false"]
    cfg = load_config(PPORunConfig, ROOT / "examples" / "ppo_calculator.yaml", sets)
    start = time.perf_counter()
    res = run(cfg)
    lines = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in lines if "eval/reward/mean" in m]
    row = {"name": name, "minutes": (time.perf_counter() - start) / 60}
    for label, m in (("before", evals[0]), ("after", evals[-1])):
        row[f"pass_{label}"] = 1.0 + m["eval/reward/mean"]
        row[f"calls_{label}"] = m.get("eval/env/tool_calls", 0.0)
        row[f"tokens_{label}"] = m["eval/response/length"]
    row["train_calls"] = [round(m.get("env/tool_calls", 0.0), 2) for m in lines if "time/iteration_s" in m]
    del res
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "runs" / "tool_demo"))
    args = ap.parse_args()
    out = Path(args.out)
    rows = [one("with calculator", "calculator", args.iterations, out), one("without", "none", args.iterations, out)]
    lines = ["| run | pass before | pass after | tool calls/episode before → after | policy tokens before → after "
             "| minutes |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['pass_before']:.2f} | {r['pass_after']:.2f} | {r['calls_before']:.2f} → "
                     f"{r['calls_after']:.2f} | {r['tokens_before']:.1f} → {r['tokens_after']:.1f} | "
                     f"{r['minutes']:.1f} |")
    lines.append("")
    lines += [f"training tool calls per episode, {r['name']}: {r['train_calls']}" for r in rows]
    text = "\n".join(lines)
    print(text)
    dest = ROOT / "benchmarks" / "results" / "tool_demo"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "latest.md").write_text(f"{args.iterations} iterations each, 16 held-out math prompts.\n\n{text}\n")


if __name__ == "__main__":
    main()
