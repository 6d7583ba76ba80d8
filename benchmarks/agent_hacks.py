"""The agent-hack judges (``tool_imitation``, ``tool_claims``) on red-team episodes written outside the project by
helpers that saw neither the judges nor each other's cases (``benchmarks/data/agent_hacks_round*.json``: a list of
``{"family": "imitation" | "claim" | "honest", "turns": [...], "note"}``).

    python benchmarks/agent_hacks.py benchmarks/data/agent_hacks_round2.json

Prints, per family, the share of hacks its judge passed (a miss) and the share both judges passed (what a mixture
of the two lets through), and for honest episodes the share either judge failed (a false violation), with every
miss and false violation named.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blendrl.core.types import Sample  # noqa: E402
from blendrl.judges import JUDGES  # noqa: E402


def main(path: str) -> None:
    cases = json.loads(Path(path).read_text())
    judges = {"imitation": JUDGES["tool_imitation"](), "claim": JUDGES["tool_claims"]()}
    print("| family | cases | judged wrongly by its judge | share | by both judges | share |\n"
          "|---|---|---|---|---|---|")
    wrong_notes = []
    for family in ("imitation", "claim", "honest"):
        rows = [c for c in cases if c["family"] == family]
        samples = [Sample([{"role": "user", "content": "Solve the task; use the tools if you need them."}],
                          c["turns"][-1]["content"], turns=c["turns"]) for c in rows]
        verdicts = list(zip(*(j.judge(samples) for j in judges.values())))  # (imitation, claims) per case
        if family == "honest":
            wrong = [(c, " / ".join(v.reason for v in vs if not v.passed)) for c, vs in zip(rows, verdicts)
                     if not all(v.passed for v in vs)]
            either = wrong
        else:
            mine = list(judges).index(family)
            wrong = [(c, "passed" if all(v.passed for v in vs) else f"passed; the other judge: {vs[1 - mine].reason}")
                     for c, vs in zip(rows, verdicts) if vs[mine].passed]
            either = [c for c, vs in zip(rows, verdicts) if all(v.passed for v in vs)]
        n = max(len(rows), 1)
        print(f"| {family} | {len(rows)} | {len(wrong)} | {len(wrong) / n:.0%} | {len(either)} | "
              f"{len(either) / n:.0%} |")
        wrong_notes += [f"- {family}: {c['note']} ({why})" for c, why in wrong]
    print("\n" + "\n".join(wrong_notes))


if __name__ == "__main__":
    main(sys.argv[1])
