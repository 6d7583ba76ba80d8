"""The gold-vs-proxy lab on SmolLM2 over several seeds (issue #5): runs ``blendrl lab overopt`` once per seed
(the seed changes the labelled pairs, the flipped labels, the proxies' init and order, and the sampling), then
prints per objective / PPO run the gold score at the start, the best gold and the last gold (mean ± std over
seeds), and whether the single proxy shows the hump (gold rises, then falls, while proxy keeps rising).

    python benchmarks/overopt.py [--config examples/lab_overopt.yaml] [--seeds 0 1 2] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blendrl.config import load_config  # noqa: E402
from blendrl.config.lab_schema import OverOptLabConfig  # noqa: E402
from blendrl.lab.overopt import run_lab  # noqa: E402
from blendrl.lab.report import summary_rows  # noqa: E402


def hump(points: list[dict]) -> bool:
    """Gold peaks strictly inside the curve (a later point is lower than the best) while proxy ends at its top."""
    golds = [p["gold"] for p in points]
    best = max(range(len(golds)), key=golds.__getitem__)
    return 0 < best < len(golds) - 1 and points[-1]["proxy"] >= max(p["proxy"] for p in points) - 1e-9


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f}" + (f"±{statistics.stdev(values):.3f}" if len(values) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/lab_overopt.yaml")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    rows: dict[tuple[str, str], list[dict]] = {}
    humps: dict[str, list[bool]] = {}
    for seed in args.seeds:
        base = load_config(OverOptLabConfig, ROOT / args.config, args.overrides)
        cfg = load_config(OverOptLabConfig, ROOT / args.config, args.overrides + [
            f"train.seed={seed}", f"logging.output_dir={base.logging.output_dir}/seed{seed}"])
        result = run_lab(cfg)
        for r in summary_rows(result):
            rows.setdefault((r["method"], r["label"]), []).append(r)
        for name, pts in result["ppo"].items():
            humps.setdefault(f"ppo {name}", []).append(hump(sorted(pts, key=lambda p: p["iteration"])))
        bon = {}
        for r in result["bon"]:
            bon.setdefault(r["objective"], []).append(r)
        for name, pts in bon.items():
            humps.setdefault(f"bon {name}", []).append(hump(sorted(pts, key=lambda p: p["kl"])))
    print("| method | objective / run | gold at start | best gold | √KL at best | last gold | last proxy | hump |")
    print("|---|---|---|---|---|---|---|---|")
    for (method, label), rs in rows.items():
        print(f"| {method} | {label} | {mean_std([r['gold_start'] for r in rs])} | "
              f"{mean_std([r['best_gold'] for r in rs])} | {mean_std([r['best_sqrt_kl'] for r in rs])} | "
              f"{mean_std([r['last_gold'] for r in rs])} | {mean_std([r['last_proxy'] for r in rs])} | "
              f"{sum(humps.get(f'{method} {label}', []))}/{len(rs)} |")
    (ROOT / "benchmarks" / "results_overopt.json").write_text(json.dumps(
        {f"{m} {lbl}": rs for (m, lbl), rs in rows.items()}, indent=1, default=str))


if __name__ == "__main__":
    main()
