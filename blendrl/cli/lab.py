"""``blendrl lab overopt --config FILE.yaml [--set key=value ...]``: the gold-vs-proxy lab (reward over-optimisation
with single proxies, ensembles, SALSA and χ²; Gao et al., Coste et al.). Stages are cached in ``output_dir``."""
from __future__ import annotations

import argparse

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("lab", help="experiments: `lab overopt` plots gold vs proxy reward against √KL")
    labs = p.add_subparsers(dest="lab", required=True)
    o = labs.add_parser("overopt", help="gold-vs-proxy over-optimisation: labels → proxies → best-of-n → PPO → report")
    add_config_arguments(o, "proxy.members=3")
    o.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .common import load_checked
    from ..config.lab_schema import OverOptLabConfig
    from ..lab.overopt import run_lab
    from ..lab.report import markdown_table, summary_rows

    result = run_lab(load_checked(OverOptLabConfig, args.config, args.overrides))
    print(markdown_table(summary_rows(result)))
    print(f"lab overopt: report written to {result['report']}")
    return 0
