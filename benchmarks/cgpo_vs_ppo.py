"""CGPO's constrained optimizers vs summed-reward PPO on SmolLM2-135M-Instruct (issue #4), in miniature.

Same prompts, judges, rewards, generation settings, lr, iterations and responses per iteration for every row:
- ``ppo-sum``: ``blendrl cgpo-ppo`` (PPO with critic; reward = task reward + 1 if the task's judges pass);
- ``crpg`` / ``codpo`` / ``crraft`` / ``lagrangian-reinforce``: ``blendrl cgpo`` with every task's optimizer set to
  that one (``lagrangian-reinforce``: REINFORCE with Lagrange multipliers, each judge a constraint with a dual-ascent
  multiplier);
- ``mixed``: the config as written (its per-task optimizers);
- ``dpo``: offline DPO on pairs from the *initial* policy's samples of the same prompts with the same budget
  (``iterations`` CGPO batches; judge-passing over judge-failing, CODPO's pair rule:
  :mod:`blendrl.training.cgpo.pairs`), ``--dpo-epochs`` over them at the config's lr × ``--dpo-lr-scale``, then
  ``blendrl eval`` on the same held-out prompts.
Per seed and row: held-out pass rate per task, the chat reward (SmolLM2 helpfulness log-odds), KL to the reference,
wall time. Prints mean ± std over seeds and writes ``benchmarks/results/cgpo_vs_ppo/<name of --out>.json``.

    python benchmarks/cgpo_vs_ppo.py [--config examples/cgpo_multitask.yaml] [--seeds 0 1] [--iterations 12]
        [--set KEY=VALUE ...] [--tag NAME]
    python benchmarks/cgpo_vs_ppo.py --report benchmarks/results/cgpo_vs_ppo/*.json   # tables of finished runs

With two rows (e.g. ``--rows mixed ppo-sum``) it also prints a paired comparison per task: the per-seed difference
of pass rates (mean ± std) and, pooled over seeds, the held-out prompts one row passes and the other fails, with
an exact two-sided sign test on those discordant prompts.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendrl.eval.compare import read_evals, task_metrics  # noqa: E402


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/cgpo_multitask.yaml")
    ap.add_argument("--rows", nargs="+", default=["ppo-sum", "crpg", "codpo", "crraft", "mixed"],
                    help="any of ppo-sum, crpg, codpo, crraft, lagrangian-reinforce, mixed, dpo")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--out", default="runs/bench_cgpo_vs_ppo")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for every row, e.g. 'tasks.chat.judges=[...]' (repeatable)")
    ap.add_argument("--dpo-epochs", type=int, default=2, help="dpo row: epochs over its pairs")
    ap.add_argument("--dpo-lr-scale", type=float, default=1.0, help="dpo row: lr = the config's train.lr × this")
    ap.add_argument("--tag", default="", help="appended to the row names (a variant made with --set)")
    ap.add_argument("--report", nargs="+", metavar="JSON",
                    help="run nothing: print the table of these results files together (e.g. one per seed)")
    args = ap.parse_args()
    if args.report:
        merged = merge(args.report)
        print_table(merged)
        if len(merged) == 2:
            print_paired(merged, *merged)
        return
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / args.config).read_text())
    blendrl = str(Path(sys.executable).with_name("blendrl"))
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for row in args.rows:
            cfg = json.loads(json.dumps(base))
            if row in ("crpg", "codpo", "crraft", "lagrangian-reinforce"):
                for task in cfg["tasks"]:
                    task["optimizer"]["name"] = row
                    if row == "codpo":
                        task["samples_per_prompt"] = max(task["samples_per_prompt"], 2)
            run_dir = out / f"{row}_s{seed}"
            cfg_path = out / f"{row}_s{seed}.yaml"
            sets = args.overrides + [f"train.seed={seed}", f"train.iterations={args.iterations}",
                                     "logging.progress=false", "logging.tensorboard=false"]
            if row == "dpo":
                cfg.setdefault("logging", {})["output_dir"] = str(run_dir)
                cfg_path.write_text(yaml.safe_dump(cfg))
                print(f"[seed {seed}] dpo ...", flush=True)
                seconds, before, after = run_dpo_row(blendrl, cfg_path, sets, args, out, seed)
                results.setdefault(row + args.tag, []).append(
                    {"seed": seed, "seconds": seconds, "before": before, "after": after, "after_passed": {}})
                (out / "results.json").write_text(json.dumps(results, indent=1))
                continue
            if row == "ppo-sum":
                cfg.setdefault("logging", {})["output_dir"] = str(out / f"ppo_s{seed}")  # cgpo-ppo appends _ppo
                cfg_path.write_text(yaml.safe_dump(cfg))
                run_dir = out / f"ppo_s{seed}_ppo"
                cmd = [blendrl, "cgpo-ppo", "--config", str(cfg_path)] + [x for s in sets for x in ("--set", s)]
            else:
                cfg.setdefault("logging", {})["output_dir"] = str(run_dir)
                cfg_path.write_text(yaml.safe_dump(cfg))
                cmd = [blendrl, "cgpo", "--config", str(cfg_path)] + [x for s in sets for x in ("--set", s)]
            print(f"[seed {seed}] {row} ...", flush=True)
            seconds = run(cmd, out / f"{row}_s{seed}.log")
            before, after = (task_metrics(m) for m in read_evals(run_dir))
            results.setdefault(row + args.tag, []).append(
                {"seed": seed, "seconds": seconds, "before": before, "after": after,
                 "after_passed": last_eval_passes(run_dir)})
            (out / "results.json").write_text(json.dumps(results, indent=1))
    print_table(results)
    if len(results) == 2:
        print_paired(results, *results)
    dest = ROOT / "benchmarks" / "results" / "cgpo_vs_ppo" / f"{out.name}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(results, indent=1))


def run_dpo_row(blendrl: str, cfg_path: Path, sets: list[str], args, out: Path, seed: int):
    """Pairs from the initial policy (same budget as ``args.iterations`` CGPO batches), ``blendrl dpo`` on them,
    ``blendrl eval`` of the result. Returns (seconds, before, after) task metrics."""
    from blendrl.config import load_config
    from blendrl.config.cgpo_schema import CGPORunConfig
    from blendrl.training.cgpo.pairs import judge_pairs

    start = time.perf_counter()
    cfg = load_config(CGPORunConfig, str(cfg_path), sets)
    pairs = out / f"dpo_s{seed}_pairs.jsonl"
    stats = judge_pairs(cfg, args.iterations, pairs)
    if not stats["pairs"]:
        raise SystemExit(f"dpo row, seed {seed}: no judge-passing/failing pairs in {args.iterations} batches")
    dpo_dir = out / f"dpo_s{seed}"
    dpo_sets = [f"model.name={cfg.model.name}", f"data.train={pairs}", "data.eval=null", f"train.seed={seed}",
                f"train.epochs={args.dpo_epochs}", f"train.lr={cfg.train.lr * args.dpo_lr_scale}",
                "train.batch_size=8", "train.micro_batch_size=4", f"logging.output_dir={dpo_dir}",
                "logging.tensorboard=false", "logging.progress=false"]
    run([blendrl, "dpo"] + [x for s in dpo_sets for x in ("--set", s)], out / f"dpo_s{seed}_train.log")
    evals = {}
    for label, model in (("before", cfg.model.name), ("after", str(dpo_dir / "final"))):
        path = out / f"dpo_s{seed}_{label}.json"
        anchor = ["--set", "reference.kind=model", "--set", f"reference.path={cfg.model.name}"]  # KL to the start
        run([blendrl, "eval", "--config", str(cfg_path), "--set", f"model.name={model}", "--output", str(path)]
            + anchor + [x for s in sets for x in ("--set", s)], out / f"dpo_s{seed}_{label}.log")
        evals[label] = task_metrics(json.loads(path.read_text()))
    return time.perf_counter() - start, evals["before"], evals["after"]


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f}±{statistics.stdev(values):.2f}"


def print_table(results: dict[str, list[dict]]) -> None:
    """Mean ± std over seeds of each row's held-out pass rate, reward, KL and length per task; "before" averages
    every seed's untrained model once (all rows of a seed start from the same model, prompts and sampling seed)."""
    seeds = {r["seed"]: r for runs in results.values() for r in runs}  # one run per seed gives its "before"
    tasks = list(next(iter(seeds.values()))["before"])
    metrics = [("pass", "pass_rate"), ("reward", "reward/mean"), ("KL", "kl/seq_k1"), ("length", "response/length")]
    cols = [f"{t} {label}" for label, _ in metrics for t in tasks] + ["seeds", "min/run"]
    print("| row | " + " | ".join(cols) + " |")
    print("|" + "---|" * (len(cols) + 1))

    def line(label: str, runs: list[dict], key: str) -> None:
        vals = [cell([r[key][t][name] for r in runs]) for _, name in metrics for t in tasks]
        vals.append(",".join(str(r["seed"]) for r in runs))
        seconds = [r["seconds"] for r in runs if "seconds" in r]  # runs taken from the main job have none
        vals.append(f"{statistics.mean(seconds) / 60:.1f}" if key == "after" and seconds else "-")
        print(f"| {label} | " + " | ".join(vals) + " |")

    line("before", [seeds[s] for s in sorted(seeds)], "before")
    for row, runs in results.items():
        line(row, sorted(runs, key=lambda r: r["seed"]), "after")


def last_eval_passes(run_dir: Path) -> dict[str, list[bool]]:
    """task → whether each held-out prompt's sample passed every judge, in prompt order, at the last evaluation."""
    rows = [r for r in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines()) if r.get("tag") == "eval"]
    last = max(r["iteration"] for r in rows)
    out: dict[str, list[bool]] = {}
    for r in rows:
        if r["iteration"] == last:
            out.setdefault(r["task"], []).append(bool(r["passed"]))
    return out


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided p-value of ``wins`` vs ``losses`` discordant pairs under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def print_paired(results: dict[str, list[dict]], a: str, b: str) -> None:
    """Row ``a`` against row ``b``, seed by seed and prompt by prompt (same held-out prompts and sampling seed)."""
    runs_a, runs_b = ({r["seed"]: r for r in results[x]} for x in (a, b))
    seeds = sorted(set(runs_a) & set(runs_b))
    print(f"\npaired: {a} − {b} over seeds {seeds}")
    print("| task | pass-rate difference (mean ± std over seeds) | prompts only " + a + " passes | prompts only " + b +
          " passes | sign test p |")
    print("|---|---|---|---|---|")
    for task in runs_a[seeds[0]]["after"]:
        diffs = [runs_a[s]["after"][task]["pass_rate"] - runs_b[s]["after"][task]["pass_rate"] for s in seeds]
        wins = losses = 0
        for s in seeds:
            pa, pb = runs_a[s].get("after_passed", {}).get(task, []), runs_b[s].get("after_passed", {}).get(task, [])
            wins += sum(x and not y for x, y in zip(pa, pb))
            losses += sum(y and not x for x, y in zip(pa, pb))
        print(f"| {task} | {cell(diffs)} | {wins} | {losses} | {sign_test(wins, losses):.2g} |")


def merge(paths: list[str]) -> dict[str, list[dict]]:
    """Rows of several results files (e.g. one per seed) combined; a (row, seed) present twice is an error."""
    results: dict[str, list[dict]] = {}
    for path in paths:
        for row, runs in json.loads(Path(path).read_text()).items():
            have = {r["seed"] for r in results.get(row, [])}
            for r in runs:
                if r["seed"] in have:
                    raise SystemExit(f"{path}: row {row!r} seed {r['seed']} is already in an earlier file")
                results.setdefault(row, []).append(r)
    return results


if __name__ == "__main__":
    main()
