"""Side-by-side held-out results of several runs (``blendrl eval --runs DIR ...``): per task, the pass rate of all
judges and of each, reward, KL to the reference and length, before training and after each run. Reads the
``eval/<task>/...`` lines that ``blendrl cgpo`` and ``blendrl cgpo-ppo`` write to ``metrics.jsonl``."""
from __future__ import annotations

import json
from pathlib import Path


def read_evals(run_dir: str | Path) -> tuple[dict | None, dict]:
    """(before, after): the evaluation logged at iteration 0 (None when the run skipped it,
    ``logging.eval_before: false``) and the last evaluation logged in ``run_dir/metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (is {run_dir} a blendrl run folder?)")
    evals = [m for m in map(json.loads, path.read_text().splitlines()) if any(k.startswith("eval/") for k in m)]
    if not evals:
        raise ValueError(f"{path}: no held-out evaluation was logged")
    before = evals[0] if evals[0].get("iteration") == 0 else None
    return before, evals[-1]


def task_metrics(metrics: dict) -> dict[str, dict[str, float]]:
    """``eval/<task>/<name>`` → {task: {name: value}} for the CGPO tasks (the groups with a ``pass_rate``; a plain
    PPO run's ``eval/reward/mean`` is not a task)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/", 2)
        if len(parts) == 3 and parts[0] == "eval":
            out.setdefault(parts[1], {})[parts[2]] = value
    return {task: values for task, values in out.items() if "pass_rate" in values}


def compare_table(runs: dict[str, str | Path]) -> str:
    """A markdown table: one row per (task, metric); columns "before" (of the first run that evaluated before
    training) and each run's "after"."""
    loaded = {label: read_evals(d) for label, d in runs.items()}
    befores = [b for b, _ in loaded.values() if b is not None]
    if not befores:
        raise ValueError(f"none of {', '.join(map(str, runs.values()))} evaluated before training "
                         f"(logging.eval_before was false in every run)")
    before = task_metrics(befores[0])
    afters = {label: task_metrics(after) for label, (_, after) in loaded.items()}
    header = ["task", "metric", "before"] + [f"{label} after" for label in runs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, values in before.items():
        names = ["pass_rate", *sorted(k for k in values if k.startswith("judge/")), "reward/mean", "kl/seq_k1",
                 "response/length"]
        for name in names:
            cells = [values.get(name)] + [a.get(task, {}).get(name) for a in afters.values()]
            text = ["-" if v is None else f"{v:.2f}" for v in cells]
            lines.append(f"| {task} | {name} | " + " | ".join(text) + " |")
    return "\n".join(lines)
