"""``blendrl report RUN_DIR [--out FILE]``: the run as one self-contained HTML page (curves, judge pass rates, hack
signals, the samples with their verdicts, flagged ones first)."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of a run: curves, judges, hack signals, samples")
    p.add_argument("run_dir", help="a run folder (logging.output_dir of blendrl ppo or cgpo)")
    p.add_argument("--out", help="where to write the page (default: RUN_DIR/report.html)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..eval.report import write_report

    print(f"report: {write_report(args.run_dir, args.out)}")
    return 0
