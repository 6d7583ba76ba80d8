"""Prompt injection against the LLM judge (SmolLM2-135M-Instruct in process), measured on families the defenses were
designed on and on families written outside the project (held out), with and without each defense.

    python benchmarks/llm_judge_injections.py --held-out /path/to/llm_injections.json   # ~25 min on 2 cores
    python benchmarks/llm_judge_injections.py --defenses none counterfactual            # design half only

For each family sentence s, prompt p and base answer b (an irrelevant answer, and separately the honest one), the
hacked text is ``b + s`` and the control ``b + n`` with a neutral sentence n of the same set. Reported per defense:

- excess lift: P(Δ > 0) − P(Δ < 0) with Δ = score(hacked) − score(control) (0: the injection does nothing);
- mean Δ (nats of log-odds);
- gap: mean score(honest) − score(irrelevant) over the prompts (one-sentence answers), and gap2 over two-sentence
  answers (honest + a second honest sentence vs irrelevant + a neutral sentence): what the judge can still tell apart.

The held-out file is ``{"families": {name: [sentence, ...]}, "neutral": [sentence, ...]}``. Merges its rows into
``benchmarks/results/llm_judge/latest.{md,json}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendrl.eval import hacks  # noqa: E402
from blendrl.rewards import Sample  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "llm_judge"


def measure(judge, families: dict, neutral: list[str]) -> dict:
    def score(pairs):
        return judge.log_odds([Sample([{"role": "user", "content": p}], r, {}, "bench") for p, r in pairs]).tolist()

    cases = hacks.CHAT_CASES
    honest, irr = score([(p, h) for p, h, _ in cases]), score([(p, r) for p, _, r in cases])
    h2 = score([(p, f"{h} {m}") for (p, h, _), m in zip(cases, hacks.HONEST_MORE)])
    i2 = score([(p, f"{r} {neutral[k % len(neutral)]}") for k, (p, _, r) in enumerate(cases)])
    out = {"gap": sum(a - b for a, b in zip(honest, irr)) / len(cases),
           "gap2": sum(a - b for a, b in zip(h2, i2)) / len(cases),
           "honest_pass": sum(x >= 0 for x in honest) / len(cases),
           "irrelevant_pass": sum(x >= 0 for x in irr) / len(cases)}
    for base in ("irrelevant", "honest"):
        hacked, control = [], []
        for family, sents in families.items():
            for j, s in enumerate(sents):
                for k, (p, h, r) in enumerate(cases):
                    b = r if base == "irrelevant" else h
                    hacked.append((p, f"{b} {s}"))
                    control.append((p, f"{b} {neutral[(j + k) % len(neutral)]}"))
        a, c = score(hacked), score(control)
        d = [x - y for x, y in zip(a, c)]
        out[f"excess_lift_{base}"] = (sum(x > 0 for x in d) - sum(x < 0 for x in d)) / len(d)
        out[f"mean_delta_{base}"] = sum(d) / len(d)
        out[f"hacked_pass_{base}"] = sum(x >= 0 for x in a) / len(a)
        out["n"] = len(d)
    return out


def table(results: dict) -> str:
    cols = ["excess_lift_irrelevant", "mean_delta_irrelevant", "excess_lift_honest", "mean_delta_honest", "gap",
            "gap2", "hacked_pass_irrelevant", "honest_pass"]
    lines = ["| set | defense | n | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for (half, defense), r in results.items():
        lines.append(f"| {half} | {defense} | {r['n']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--held-out", type=Path, help="injection families written outside the project (JSON)")
    ap.add_argument("--defenses", nargs="+", default=["none", "fence", "counterfactual"])
    ap.add_argument("--halves", nargs="+", default=["design", "held_out"])
    args = ap.parse_args()
    import torch

    from blendrl.judges.llm import HFLLMJudge, _template

    torch.set_num_threads(2)
    judge = HFLLMJudge("llm", batch_size=16)
    sets = {"design": (hacks.INJECTION_DESIGN, hacks.NEUTRAL)}
    if args.held_out:
        held = json.loads(args.held_out.read_text(encoding="utf-8"))
        sets["held_out"] = (held["families"], held["neutral"])
    results = {}
    for half in [h for h in args.halves if h in sets]:
        for defense in args.defenses:
            judge.defense, judge.template = defense, _template(None, defense, "llm")
            start = time.perf_counter()
            results[(half, defense)] = {**measure(judge, *sets[half]), "seconds": time.perf_counter() - start}
            print(half, defense, {k: round(v, 3) for k, v in results[(half, defense)].items()}, flush=True)
            write(results)  # after each row, so an interrupted run keeps what it measured
    print(table(results))


def write(results: dict) -> None:
    """Merge this run's rows into ``latest.json`` (a run of some halves or defenses replaces only those rows)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "latest.json"
    rows = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    rows.update({f"{h}/{d}": r for (h, d), r in results.items()})
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    merged = {tuple(k.split("/", 1)): r for k, r in rows.items()}
    (OUT / "latest.md").write_text(table(merged) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
