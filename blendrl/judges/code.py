"""Code judge (CGPO §5.3: extract the code block and run the prompt's unit tests), always in the sandbox.

The response's last fenced code block (```python … ``` or ``` … ```) is the solution. The tests come from metadata:
``tests`` (Python statements, e.g. asserts, run after the solution) or HumanEval's ``test`` + ``entry_point``
(``check(entry_point)`` is called). Passing = the program exits 0 within the sandbox limits. Samples run in
parallel, ``workers`` at a time (default: CPU count).
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

from ..rewards import Sample
from .base import JUDGES, JudgeDataError, Verdict
from .sandbox import SandboxLimits, run_python

CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_code(response: str) -> str | None:
    """The last fenced code block, or None. An unclosed final fence (a truncated response) counts as no block."""
    blocks = CODE_BLOCK.findall(response)
    return blocks[-1] if blocks else None


def test_program(solution: str, s: Sample, judge: str) -> str:
    m = s.metadata
    if m.get("tests"):
        tests = m["tests"] if isinstance(m["tests"], str) else "\n".join(m["tests"])
        return f"{solution}\n\n{tests}\n"
    if m.get("test") and m.get("entry_point"):
        return f"{solution}\n\n{m['test']}\n\ncheck({m['entry_point']})\n"
    raise JudgeDataError(f"judge '{judge}': prompt {s.where or '?'} has no metadata 'tests' (or HumanEval's 'test' "
                         f"and 'entry_point')")


class CodeJudge:
    def __init__(self, name: str = "code", workers: int | None = None, **limits) -> None:
        self.name = name
        self.limits = SandboxLimits(**limits)
        self.workers = workers or os.cpu_count() or 1

    def _one(self, s: Sample) -> Verdict:
        code = extract_code(s.response)
        program = test_program(code or "", s, self.name)  # data errors surface even when the response has no code
        if code is None:
            return Verdict(False, "no fenced code block")
        result = run_python(program, self.limits)
        return Verdict(True) if result.ok else Verdict(False, result.reason())

    def judge(self, samples: list[Sample]) -> list[Verdict]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._one, samples))


@JUDGES.register("code")
def code_judge(name: str = "code", **options):
    """Options: ``workers`` and any ``SandboxLimits`` field (``wall_s``, ``cpu_s``, ``memory_mb``, ...)."""
    return CodeJudge(name, **options)
