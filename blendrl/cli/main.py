"""The ``blendrl`` command: one thin sub-module per command group."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..core import malloc
from . import bon, cgpo, cgpo_ppo, dpo, evaluate, lab, ppo, redteam, report, rm, sft, soup


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blendrl", description="RLHF post-training that does not reward-hack")
    parser.add_argument("--allocator", choices=malloc.ALLOCATORS, default=os.environ.get("BLENDRL_ALLOCATOR", "glibc"),
                        help="malloc for this run (default glibc, or $BLENDRL_ALLOCATOR): mimalloc or jemalloc "
                             "restart the command with that library preloaded (lower peak RSS; see docs/usage.md, "
                             "Memory)")
    sub = parser.add_subparsers(dest="command", required=True)
    ppo.add_parser(sub)
    cgpo.add_parser(sub)
    cgpo_ppo.add_parser(sub)
    dpo.add_parser(sub)
    evaluate.add_parser(sub)
    rm.add_parser(sub)
    bon.add_parser(sub)
    soup.add_parser(sub)
    sft.add_parser(sub)
    lab.add_parser(sub)
    redteam.add_parser(sub)
    report.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..config import ConfigError
    from ..data import DataError
    from ..judges import JudgeDataError
    from ..models import ModelNotFoundError
    from ..rewards import RewardError

    args = build_parser().parse_args(argv)
    try:
        if argv is None:  # the command line: restart under the allocator if it is not loaded yet
            malloc.reexec_with(args.allocator, sys.argv[1:])
        elif args.allocator not in ("glibc", malloc.active_allocator()):
            raise RuntimeError(f"allocator {args.allocator} is not loaded in this process (start it with "
                               f"LD_PRELOAD={malloc.library_path(args.allocator)})")
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"blendrl: error: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("blendrl")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("blendrl: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    if args.allocator != "glibc":
        log.info("malloc: %s (LD_PRELOAD=%s)", malloc.active_allocator(), os.environ.get("LD_PRELOAD", ""))
    try:
        return args.func(args)
    except (ConfigError, DataError, JudgeDataError, ModelNotFoundError, RewardError, FileNotFoundError) as exc:
        print(f"blendrl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
