"""C2RM against a correctness-only reward model on the built-in math tasks (issue #28; docs/algorithms.md §5).

1. Sample ``--k`` responses per prompt of ``builtin:math`` from SmolLM2 once and classify them (correctness by
   ``--answer``, self-consistency confidence): :func:`blendrl.eval.c2rm.sample_questions`.
2. Per recipe (``--recipes``, default ``c2rm correctness``): write its pairs and train a LoRA reward model on them
   with ``blendrl rm train`` for every ``--seeds`` (the seed orders the data and initialises the head).
3. Sample a pool of ``--pool`` responses per prompt of ``builtin:math_eval`` once; each reward model scores it.
   Per model: the unbiased best-of-n accuracy for n = 1, 2, 4, …, pool (the chance that the model's pick among n
   random pool members is correct; n = 1 is the policy itself), and the within-prompt AUC (P(a correct response
   outscores a wrong one of the same prompt), over prompts with both).

    python benchmarks/c2rm_math.py [--k 8] [--pool 8] [--seeds 0 1] [--out runs/bench_c2rm]

Prints mean ± std over seeds per recipe and writes ``benchmarks/results/c2rm/<name of --out>.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendrl.config.rm_schema import C2RMConfig  # noqa: E402
from blendrl.config.schema import RewardSourceConfig  # noqa: E402
from blendrl.core.types import make_samples  # noqa: E402
from blendrl.data.preferences import write_preferences  # noqa: E402
from blendrl.eval.best_of_n import best_of_n  # noqa: E402
from blendrl.eval.bon_run import default_ns  # noqa: E402
from blendrl.eval.c2rm import Question, question_pairs, sample_questions  # noqa: E402
from blendrl.functional.c2rm import c2rm_class  # noqa: E402
from blendrl.rewards import build_reward  # noqa: E402


def within_prompt_auc(scores: list[torch.Tensor], correct: list[list[bool]]) -> float | None:
    """Share of (correct, wrong) response pairs of the same prompt where the correct one scores higher (ties ½)."""
    wins = total = 0.0
    for s, ok in zip(scores, correct):
        for i, a in enumerate(ok):
            for j, b in enumerate(ok):
                if a and not b:
                    total += 1
                    wins += 1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0
    return wins / total if total else None


def evaluate(model: str, pool, ns: list[int]) -> dict:
    """Score the eval pool with the reward model folder ``model``: best-of-n accuracy per n and the AUC."""
    rm = build_reward([RewardSourceConfig(kind="hf_rm", path=model)])
    scores = [rm.score(make_samples([q.prompt] * len(q.responses), q.responses, q.finished)).total for q in pool]
    correct = [q.correct for q in pool]
    bon = {n: statistics.mean(best_of_n(s, torch.tensor(ok, dtype=torch.float64), n)[1]
                              for s, ok in zip(scores, correct)) for n in ns}
    return {"bon_accuracy": bon, "auc": within_prompt_auc(scores, correct)}


def sampled(path: Path, c: C2RMConfig) -> list:
    """``sample_questions(c)``, cached in ``path`` (reused when it was written with the same settings)."""
    key = {k: v for k, v in vars(c).items() if k not in ("threshold", "output", "recipe")}
    if path.exists():
        cached = json.loads(path.read_text())
        if cached["settings"] == key:
            from blendrl.data import load_prompt_set
            from blendrl.config.schema import DataConfig
            from blendrl.models import load_tokenizer, resolve_model

            prompts = load_prompt_set(c.prompts, load_tokenizer(resolve_model(c.policy)), DataConfig(prompts=c.prompts),
                                      None)[: c.limit]
            return [Question(p, q["responses"], q["finished"], q["correct"], q["confidence"], q["classes"])
                    for p, q in zip(prompts, cached["questions"], strict=True)]
    questions = sample_questions(c)
    path.write_text(json.dumps({"settings": key, "questions": [
        {"responses": q.responses, "finished": q.finished, "correct": q.correct, "confidence": q.confidence,
         "classes": q.classes} for q in questions]}))
    return questions


def class_counts(questions: list, threshold: float) -> dict[int, int]:
    """How many training samples fall in each C2RM class (1..4) at ``threshold``."""
    counts = Counter(c2rm_class(ok, conf, threshold) for q in questions for ok, conf in zip(q.correct, q.confidence))
    return {c: counts.get(c, 0) for c in (1, 2, 3, 4)}


def cell(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]  # an AUC without a prompt holding both kinds is None
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f}±{statistics.stdev(values):.3f}"


def table(results: dict, ns: list[int]) -> str:
    lines = ["| reward model | " + " | ".join(f"best-of-{n} accuracy" for n in ns) + " | within-prompt AUC | pairs | "
             "seeds | min/model |", "|" + "---|" * (len(ns) + 5)]
    for recipe, r in results["recipes"].items():
        runs = r["runs"]
        vals = [cell([x["bon_accuracy"][str(n)] for x in runs]) for n in ns]
        lines.append(f"| {recipe} | " + " | ".join(vals) + f" | {cell([x['auc'] for x in runs])} | {r['pairs']} | "
                     f"{','.join(str(x['seed']) for x in runs)} | "
                     f"{statistics.mean(x['seconds'] for x in runs) / 60:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["c2rm", "correctness"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--k", type=int, default=8, help="samples per training prompt")
    ap.add_argument("--pool", type=int, default=8, help="samples per held-out prompt")
    ap.add_argument("--answer", default="last_number", choices=["last_number", "final_sentence"])
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--max-pairs", type=int, default=8, help="pairs per prompt at most")
    ap.add_argument("--limit", type=int, default=None, help="the first N training prompts")
    ap.add_argument("--pool-limit", type=int, default=None, help="the first N held-out prompts")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", default="runs/bench_c2rm")
    args = ap.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    common = dict(k=args.k, answer=args.answer, threshold=args.threshold, max_new_tokens=96, temperature=0.8,
                  batch_prompts=16)
    start = time.perf_counter()
    train_q = sampled(out / "train_samples.json", C2RMConfig(prompts="builtin:math", limit=args.limit, seed=0,
                                                              **common))
    pool = sampled(out / "pool_samples.json", C2RMConfig(prompts="builtin:math_eval", limit=args.pool_limit, seed=1,
                                                          **{**common, "k": args.pool}))
    for q in train_q:  # the classes at --threshold (a cached sample may come from another threshold)
        q.classes = [c2rm_class(ok, conf, args.threshold) for ok, conf in zip(q.correct, q.confidence)]
    acc = lambda qs: statistics.mean(ok for q in qs for ok in q.correct)  # noqa: E731
    classes, at_half = class_counts(train_q, args.threshold), class_counts(train_q, 0.5)
    results = {"train": {"prompts": len(train_q), "k": args.k, "accuracy": acc(train_q), "classes": classes,
                         "classes_at_0.5": at_half},
               "pool": {"prompts": len(pool), "size": args.pool, "accuracy": acc(pool),
                        "oracle": statistics.mean(any(q.correct) for q in pool)},
               "args": vars(args), "sampling_seconds": time.perf_counter() - start, "recipes": {}}
    print(f"sampled in {results['sampling_seconds'] / 60:.1f} min; train {results['train']}; pool {results['pool']}",
          flush=True)
    ns = default_ns(args.pool)
    config = out / "rm.yaml"  # the LoRA reward model of examples/rm_secrets.yaml
    config.write_text(yaml.safe_dump({"model": {"name": "smollm2-135m-instruct", "trainable": "lora", "lora": {
        "r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}}}))
    blendrl = str(Path(sys.executable).with_name("blendrl"))
    for recipe in args.recipes:
        pairs = question_pairs(train_q, recipe, args.max_pairs, 0)
        if not pairs:
            raise SystemExit(f"recipe {recipe}: no pairs (classes {classes} at threshold {args.threshold}); "
                             "raise --k or --limit, or lower --threshold")
        path = out / f"{recipe}_pairs.jsonl"
        write_preferences(pairs, str(path))
        entry = results["recipes"][recipe] = {"pairs": len(pairs), "runs": []}
        for seed in args.seeds:
            run_dir = out / f"{recipe}_s{seed}"
            sets = [f"data.train={path}", "data.eval=null",
                    "data.max_length=192", "loss.recipe=bt", f"train.epochs={args.epochs}", "train.batch_size=32",
                    "train.micro_batch_size=16", f"train.lr={args.lr}", f"train.seed={seed}",
                    f"logging.output_dir={run_dir}", "logging.tensorboard=false", "logging.progress=false"]
            t0 = time.perf_counter()
            with (out / f"{recipe}_s{seed}.log").open("w") as log:
                proc = subprocess.run([blendrl, "rm", "train", "--config", str(config)]
                                      + [x for s in sets for x in ("--set", s)],
                                      stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            if proc.returncode:
                raise SystemExit(f"rm train failed for {recipe} seed {seed}; see {out / f'{recipe}_s{seed}.log'}")
            seconds = time.perf_counter() - t0
            metrics = evaluate(str(run_dir / "final"), pool, ns)
            entry["runs"].append({"seed": seed, "seconds": seconds, "auc": metrics["auc"],
                                  "bon_accuracy": {str(n): v for n, v in metrics["bon_accuracy"].items()}})
            print(f"{recipe} seed {seed}: {entry['runs'][-1]}", flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=1))
    text = table(results, ns)
    print(text)
    dest = ROOT / "benchmarks" / "results" / "c2rm" / out.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.with_suffix(".json").write_text(json.dumps(results, indent=1))
    dest.with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
