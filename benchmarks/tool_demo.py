"""GRPO with and without the calculator tool (examples/ppo_calculator.yaml) on the embedded SmolLM2-135M-Instruct,
on the built-in arithmetic word problems (``builtin:arithmetic``, held out: ``builtin:arithmetic_eval``): the
held-out pass rate of the math judge, the tool calls and the policy's tokens per episode, before and after the
same short training of each arm.

    python benchmarks/tool_demo.py --iterations 6 [--warm-start 96]

Each arm starts from SmolLM2 as it is ("cold") and, with ``--warm-start N``, also from a supervised warm start on
N training problems written out the way that arm should solve them (``blendrl sft``, one epoch): with the tool, a
calculator call, the real calculator's answer and a final answer that quotes it (two rows per problem: the call,
then the answer after the tool's turn, since SFT trains the last turn); without it, the problem's worked
reference answer. The warm-start prompts are the episodes' own (the system message that lists the tools). Both
arms use the reward −1[the math judge fails the last turn], the same prompts, seed, token budgets and
iterations. Prints a table and writes ``benchmarks/results/tool_demo/latest.md``.
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
from blendrl.config.sft_schema import SFTRunConfig  # noqa: E402
from blendrl.training.run import run  # noqa: E402

REWARD = "[{kind: judge_violations, weight: -1.0, options: {judges: [{kind: math}]}}]"
TASKS = ["data.prompts=builtin:arithmetic", "data.eval_prompts=builtin:arithmetic_eval"]


def warm_start_rows(with_tool: bool, n: int) -> list[dict]:
    """The SFT rows of an arm's warm start: the first ``n`` training problems solved the arm's way."""
    from blendrl.core.tool_calls import ToolCall, format_call
    from blendrl.data import BUILTIN_PROMPTS
    from blendrl.envs import ENVIRONMENTS, EpisodeRunner, EpisodeSettings
    from blendrl.models.loading import load_tokenizer, resolve_model

    rows = []
    env = ENVIRONMENTS["calculator"]()
    runner = EpisodeRunner(None, load_tokenizer(resolve_model("smollm2-135m-instruct")), env, EpisodeSettings())
    for problem in BUILTIN_PROMPTS["arithmetic"]()[:n]:
        meta, user = problem["metadata"], [{"role": "user", "content": problem["prompt"]}]
        if not with_tool:
            rows.append({"messages": user + [{"role": "assistant", "content": meta["reference_response"]}]})
            continue
        prompt = runner.with_tool_note(user)
        call = format_call(ToolCall("calculator", {"expression": meta["expression"]}))
        step = env.step(env.reset(None), call)  # the real tool's answer, as the episode would splice it in
        answer = (f"The calculator returned {meta['answer']}, so {meta['expression']} = {meta['answer']}. "
                  f"The final answer is {meta['answer']}.")
        rows.append({"messages": prompt + [{"role": "assistant", "content": call}]})
        rows.append({"messages": prompt + [{"role": "assistant", "content": call},
                                           {"role": step.role, "content": step.observation},
                                           {"role": "assistant", "content": answer}]})
    return rows


def warm_start(with_tool: bool, n: int, out: Path) -> tuple[str, float]:
    """SFT on the arm's rows; returns the model folder and the minutes it took."""
    from blendrl.training.sft import run_sft

    out.mkdir(parents=True, exist_ok=True)
    data = out / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in warm_start_rows(with_tool, n)))
    cfg = load_config(SFTRunConfig, None, ["model.name=smollm2-135m-instruct", f"data={data}", "train.epochs=1",
                                           "train.batch_size=8", "train.micro_batch_size=8", "train.lr=1e-4",
                                           "train.max_length=384", f"logging.output_dir={out}",
                                           "logging.progress=false", "logging.save_every=0"])
    start = time.perf_counter()
    result = run_sft(cfg)
    return str(result["final"]), (time.perf_counter() - start) / 60


def one(name: str, env: str, model: str, iterations: int, out: Path) -> dict:
    sets = [f"model.name={model}", f"environment.kind={env}", f"rewards={REWARD}", f"train.iterations={iterations}",
            f"logging.output_dir={out / name}", "logging.progress=false", "logging.eval_prompts=16",
            "logging.tensorboard=false", *TASKS]
    cfg = load_config(PPORunConfig, ROOT / "examples" / "ppo_calculator.yaml", sets)
    start = time.perf_counter()
    run(cfg)
    lines = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in lines if "eval/reward/mean" in m]
    row = {"name": name, "minutes": (time.perf_counter() - start) / 60}
    for label, m in (("before", evals[0]), ("after", evals[-1])):
        row[f"pass_{label}"] = 1.0 + m["eval/reward/mean"]
        row[f"calls_{label}"] = m.get("eval/env/tool_calls", 0.0)
        row[f"tokens_{label}"] = m["eval/response/length"]
    row["train_calls"] = [round(m.get("env/tool_calls", 0.0), 2) for m in lines if "time/iteration_s" in m]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--warm-start", type=int, default=0, help="training problems in each arm's SFT warm start")
    ap.add_argument("--out", default=str(ROOT / "runs" / "tool_demo"))
    args = ap.parse_args()
    out = Path(args.out)
    starts = [("cold", "smollm2-135m-instruct", "smollm2-135m-instruct", 0.0, 0.0)]
    if args.warm_start:
        (tool_model, tool_min), (plain_model, plain_min) = (warm_start(t, args.warm_start, out / f"sft-{name}")
                                                            for t, name in ((True, "tool"), (False, "plain")))
        starts.append((f"SFT on {args.warm_start} problems", tool_model, plain_model, tool_min, plain_min))
    rows = []
    for start, tool_model, plain_model, tool_min, plain_min in starts:
        tag = start.split()[0].lower()
        for label, env, model, sft_min in (("with calculator", "calculator", tool_model, tool_min),
                                           ("without", "none", plain_model, plain_min)):
            row = one(f"{label} ({tag})", env, model, args.iterations, out)
            rows.append({**row, "start": start, "sft_minutes": sft_min})
    lines = ["| start | run | pass before | pass after | tool calls/episode before → after "
             "| policy tokens before → after | minutes (SFT + GRPO) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['start']} | {r['name'].split(' (')[0]} | {r['pass_before']:.2f} | {r['pass_after']:.2f} "
                     f"| {r['calls_before']:.2f} → {r['calls_after']:.2f} | {r['tokens_before']:.1f} → "
                     f"{r['tokens_after']:.1f} | {r['sft_minutes']:.1f} + {r['minutes']:.1f} |")
    lines.append("")
    lines += [f"training tool calls per episode, {r['name']}: {r['train_calls']}" for r in rows]
    text = "\n".join(lines)
    print(text)
    dest = ROOT / "benchmarks" / "results" / "tool_demo"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "latest.md").write_text(f"GRPO, {args.iterations} iterations each, 16 held-out arithmetic problems "
                                    f"(builtin:arithmetic_eval).\n\n{text}\n")


if __name__ == "__main__":
    main()
