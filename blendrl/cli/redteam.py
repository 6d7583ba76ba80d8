"""``blendrl redteam --config FILE.yaml (--judge NAME | --reward NAME) [--budget N]``: search for hacks against a
configured judge or reward source before training against it (:mod:`blendrl.eval.redteam`). Exits 1 when a hack
was found, so it can gate a training job."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_config_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("redteam", help="search black-box for responses that hack a configured judge or reward")
    add_config_arguments(p, "tasks.0.judges.0.options.answer=boxed",
                         config_help="a CGPO config (tasks with judges and rewards) or a PPO config (rewards)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--judge", help="a judge's name (or kind) in the config's tasks")
    what.add_argument("--reward", help="a reward source's name (or kind) in the config")
    p.add_argument("--task", help="only this task's prompts and judges (CGPO configs)")
    p.add_argument("--budget", type=int, default=2000, help="samples judged or scored, in all (default 2000)")
    p.add_argument("--strategy", choices=("beam", "greedy"), default="beam")
    p.add_argument("--beam", type=int, default=8, help="candidates kept per prompt (beam search)")
    p.add_argument("--depth", type=int, default=3, help="mutations composed after the first (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompts", type=int, default=64, help="at most this many prompts per task (default 64)")
    p.add_argument("--contract", choices=("math", "instructions", "format", "refusal", "llm"),
                   help="the contract whose mutations to search with (default: the judge's kind; set it for a "
                        "plugin judge, e.g. --contract math for your own math verifier)")
    p.add_argument("--rewriter", help="a causal LM (name or folder) that paraphrases the carrier text")
    p.add_argument("--out", default="runs/redteam", help="folder for report.json (default runs/redteam)")
    p.set_defaults(func=main)


def _targets(args) -> list[tuple[str, str, dict, object, object, list]]:
    """(name, kind, options, judge, reward, rows) for every configured judge or reward the arguments name."""
    import yaml

    from .common import load_checked
    from ..config.cgpo_schema import CGPORunConfig
    from ..config.schema import PPORunConfig
    from ..data.prompts import read_prompt_rows
    from ..judges import JUDGES
    from ..rewards import build_reward

    raw = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    if isinstance(raw, dict) and "tasks" in raw:
        cfg = load_checked(CGPORunConfig, args.config, args.overrides)
        groups = [(t.name, t.prompts, t.judges, t.rewards) for t in cfg.tasks if args.task in (None, t.name)]
    else:
        cfg = load_checked(PPORunConfig, args.config, args.overrides)
        groups = [("ppo", cfg.data.prompts, [], cfg.rewards)]
    out = []
    for task, prompts, judges, rewards in groups:
        rows = [(m[-1]["content"], meta, f"{src}, row {row}") for m, meta, src, row in read_prompt_rows(prompts)]
        rows = rows[: args.prompts]
        for j in judges if args.judge else []:
            if args.judge in (j.name, j.kind):
                out.append((f"{task}/{j.name or j.kind}", args.contract or j.kind, dict(j.options),
                            JUDGES[j.kind](name=j.name or j.kind, **j.options), None, rows))
        for r in rewards if args.reward else []:
            if args.reward in (r.name, r.kind):
                out.append((f"{task}/{r.name or r.kind}", args.contract or _reward_kind(rows), {}, None,
                            build_reward([r]), rows))
    return out


def _reward_kind(rows) -> str:
    """The contract a reward's hacks are built against: math where the prompts have gold answers."""
    return "math" if rows and all("answer" in meta for _, meta, _ in rows) else "llm"


def main(args: argparse.Namespace) -> int:
    from ..eval.redteam import Scorer, format_report, search

    targets = _targets(args)
    if not targets:
        what = f"judge '{args.judge}'" if args.judge else f"reward '{args.reward}'"
        print(f"blendrl: error: no {what} in {args.config}" + (f" task {args.task}" if args.task else ""))
        return 2
    rewriter = _rewriter(args.rewriter) if args.rewriter else None
    reports = []
    for name, kind, options, judge, reward, rows in targets:
        report = search(Scorer(name, judge, reward), kind, rows, options, budget=args.budget // len(targets),
                        strategy=args.strategy, beam=args.beam, depth=args.depth, seed=args.seed, rewriter=rewriter)
        print(format_report(report))
        reports.append(report.as_dict())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(reports, indent=1, ensure_ascii=False), encoding="utf-8")
    found = sum(r["hacks_found"] for r in reports)
    print(f"{found} hacks found in {sum(r['queries'] for r in reports)} queries; report: {out / 'report.json'}")
    return 1 if found else 0


def _rewriter(model: str):
    """A paraphrasing function from a local causal LM (greedy, at most 60 new tokens)."""
    import torch

    from ..models import load_causal_lm, load_tokenizer, resolve_model

    path = resolve_model(model)
    tok, lm = load_tokenizer(path), load_causal_lm(path).eval()

    @torch.no_grad()
    def rewrite(text: str) -> str:
        ids = tok.apply_chat_template([{"role": "user", "content": f"Say this in other words, in one or two "
                                        f"sentences:\n\n{text}"}], add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
        gen = lm.generate(**ids, max_new_tokens=60, do_sample=False)
        return tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip() or text

    return rewrite
