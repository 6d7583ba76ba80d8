"""Code judge (CGPO §5.3: extract the code block and run the prompt's unit tests), under OS isolation.

The response's last fenced code block (```python … ``` or ``` … ```) is the solution. It runs in the bubblewrap
sandbox (:mod:`~blendrl.judges.sandbox`); the judge refuses to start where that sandbox cannot run. A pass is
evidence the program cannot forge:

- function tests (:mod:`~blendrl.judges.code_cases`): the sandbox calls the function on each case's inputs, every
  case twice, in a shuffled order and then in reverse (:func:`call_order`: an answer that depends on the call count
  or order, not the inputs, fails), and sends the return values back as plain JSON data; this process compares them
  with the expected values, which never enter the sandbox. No custom ``__eq__`` can answer for the program, and no
  exit status counts;
- stdin/stdout tests (``metadata['io_tests']``: ``[{"stdin": ..., "stdout": ...}]``): the program reads ``stdin``,
  must exit with status 0, and its stdout is compared here (trailing spaces of each line and trailing blank lines
  ignored).

The verdicts come back as :class:`~blendrl.judges.base.Verdicts` whose ``stats`` count the samples of the batch
that tried each blocked family of action (process, network, native_code, files_outside, signals, introspection,
threads), the violations of each kind (wrong_answer, error, not_plain_data, early_exit, load_error, timeout, killed,
no_code) and the samples run without isolation (``unisolated``): counts, so the shares of a batch judged on several
workers add up. Samples run ``workers`` at a time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from ..core.types import Sample
from ._sandbox_harness import decode
from .registry import JUDGES
from .base import JudgeDataError, Verdict, Verdicts
from .code_cases import Case, case_from_dict, cases_from_asserts, matches
from .sandbox import HARNESS, SandboxLimits, SandboxResult, require_isolation, run_python, run_sandboxed

log = logging.getLogger(__name__)
CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)
FAMILIES = ("process", "network", "native_code", "files_outside", "signals", "introspection", "threads")


def extract_code(response: str) -> str | None:
    """The last fenced code block, or None. An unclosed final fence (a truncated response) counts as no block."""
    blocks = CODE_BLOCK.findall(response)
    return blocks[-1] if blocks else None


def test_cases(s: Sample, judge: str) -> list[Case] | list[dict]:
    """The prompt's tests as data: ``Case``s for function tests, or the ``io_tests`` dicts."""
    m, where = s.metadata, s.where or "?"
    if m.get("io_tests"):
        tests = m["io_tests"]
        if not all(isinstance(t, dict) and isinstance(t.get("stdin", ""), str) and isinstance(t.get("stdout"), str)
                   for t in tests):
            raise JudgeDataError(f"judge '{judge}': prompt {where}: each io_tests item needs a 'stdout' string "
                                 f"(and an optional 'stdin' string)")
        return tests
    if m.get("cases"):
        return [case_from_dict(d, m.get("entry_point"), where, judge) for d in m["cases"]]
    if m.get("tests"):
        tests = m["tests"] if isinstance(m["tests"], str) else "\n".join(m["tests"])
        return cases_from_asserts(tests, where, judge)
    if m.get("test") and m.get("entry_point"):
        return cases_from_asserts(m["test"], where, judge, rename={"candidate": m["entry_point"]})
    raise JudgeDataError(f"judge '{judge}': prompt {where} has no metadata 'cases', 'tests', 'io_tests' (or "
                         f"HumanEval's 'test' and 'entry_point')")


@functools.lru_cache(maxsize=1)
def harness_source() -> str:
    """The sandbox harness's source (it runs the program and reports what it tried: docs/judges.md)."""
    return HARNESS.read_text(encoding="utf-8")


def call_order(code: str, n: int) -> list[int]:
    """Every case twice: in an order shuffled by a hash of the code (reproducible verdicts), then reversed. A
    program whose answers depend on how often or in which order it was called, not on its inputs, fails."""
    import random

    first = list(range(n))
    random.Random(hashlib.sha256(code.encode("utf-8", "replace")).digest()).shuffle(first)
    return first + first[::-1]


def _same_output(got: str, want: str) -> bool:
    def norm(text: str) -> list[str]:
        return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).rstrip("\n").split("\n")

    return norm(got) == norm(want)


class CodeJudge:
    def __init__(self, name: str = "code", workers: int | None = None, unisolated: bool = False, **limits) -> None:
        self.name = name
        self.limits = SandboxLimits(**limits)
        self.workers = workers or os.cpu_count() or 1
        self.unisolated = bool(unisolated)
        if not self.unisolated:
            require_isolation()  # fail closed at start-up, with how to fix it

    # ------------------------------------------------------------------ one sample
    def _stopped(self, r: SandboxResult) -> tuple[Verdict, str] | None:
        if r.timed_out:
            return Verdict(False, r.reason()), "timeout"
        if r.returncode is not None and r.returncode < 0:
            return Verdict(False, r.reason()), "killed"
        return None

    def _functions(self, code: str, cases: list[Case]) -> tuple[Verdict, str, dict]:
        order = call_order(code, len(cases))
        job = {"solution": "solution.py", "calls": [cases[i].call_json() for i in order]}
        r = run_sandboxed({"solution.py": code, "harness.py": harness_source(),
                           "job.json": json.dumps(job)}, ["/sandbox/harness.py", "/sandbox/job.json"], self.limits,
                          unisolated=self.unisolated)
        if (stopped := self._stopped(r)) is not None:
            return (*stopped, {})
        try:
            report = json.loads(r.stdout.decode("utf-8"))
            results, events = report["results"], report.get("events") or {}
            load_error = report.get("load_error")
            events = {k: int(v) for k, v in events.items() if k in FAMILIES}
        except Exception:  # noqa: BLE001 - anything unreadable is the program's failure, never a crash here
            last = f": {r.reason()}" if r.returncode else ""
            return Verdict(False, f"the program ended without returning its results (exit code {r.returncode}"
                                  f"{last})"), "early_exit", {}
        if load_error:
            return Verdict(False, f"the solution did not load: {str(load_error)[:200]}"), "load_error", events
        if not isinstance(results, list) or len(results) != len(order):
            return Verdict(False, f"{len(results) if isinstance(results, list) else 'no'} results for "
                                  f"{len(order)} calls"), "early_exit", events
        for n, (index, res) in enumerate(zip(order, results)):
            case, i = cases[index], index + 1
            head = f"case {i}/{len(cases)}{' (called again)' if n >= len(cases) else ''}: {case.show()}"
            if not isinstance(res, dict) or ("ok" not in res and "error" not in res):
                return Verdict(False, f"{head}: no result"), "early_exit", events
            if "error" in res:
                text = str(res["error"])[:200]
                kind = "not_plain_data" if "not plain data" in text else "error"
                return Verdict(False, f"{head} raised {text}"), kind, events
            try:
                got = decode(res["ok"])
                ok = matches(got, case)
            except Exception:  # noqa: BLE001 - malformed data from the sandbox is a wrong answer
                return Verdict(False, f"{head}: the result is not readable plain data"), "not_plain_data", events
            if not ok:
                want = {"truthy": "a true value", "falsy": "a false value", "poly_root": "a root"}.get(
                    case.compare, repr(case.expected)[:80])
                return Verdict(False, f"{head} returned {repr(got)[:80]}, expected {want}"), "wrong_answer", events
        return Verdict(True), "", events

    def _stdio(self, code: str, tests: list[dict]) -> tuple[Verdict, str, dict]:
        for i, t in enumerate(tests, 1):
            r = run_python(code, self.limits, stdin=t.get("stdin", ""), unisolated=self.unisolated)
            if (stopped := self._stopped(r)) is not None:
                return (*stopped, {})
            if r.returncode != 0:  # a crash is never a pass, even where the expected output is empty
                return Verdict(False, f"io test {i}/{len(tests)}: exit code {r.returncode} ({r.reason()})"), \
                    "error", {}
            got = r.stdout.decode("utf-8", "replace")
            if not _same_output(got, t["stdout"]):
                return Verdict(False, f"io test {i}/{len(tests)}: wrong output (printed {got[:80]!r})"), \
                    "wrong_answer", {}
        return Verdict(True), "", {}

    def _one(self, s: Sample) -> tuple[Verdict, str, dict]:
        tests = test_cases(s, self.name)  # data errors surface even when the response has no code
        code = extract_code(s.response)
        if code is None:
            return Verdict(False, "no fenced code block"), "no_code", {}
        if tests and isinstance(tests[0], dict):
            return self._stdio(code, tests)
        return self._functions(code, tests)

    def judge(self, samples: list[Sample]) -> Verdicts:
        if self.unisolated:
            log.warning("judge '%s': running %d model-written programs WITHOUT OS isolation (unisolated: true)",
                        self.name, len(samples))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            out = list(pool.map(self._one, samples))
        tried = Counter(f for _, _, events in out for f, n in events.items() if n > 0)
        kinds = Counter(kind for _, kind, _ in out if kind)
        return Verdicts([v for v, _, _ in out], {**{f"sandbox/{f}": float(tried[f]) for f in FAMILIES},
                                                 **{f"violation/{k}": float(n) for k, n in sorted(kinds.items())},
                                                 "unisolated": float(self.unisolated) * len(samples)})


@JUDGES.register("code", options=(CodeJudge, SandboxLimits))
def code_judge(name: str = "code", **options):
    """Options: ``workers``, ``unisolated`` (run without OS isolation: only on a machine you own, logged every
    batch) and any ``SandboxLimits`` field (``wall_s``, ``cpu_s``, ``memory_mb``, ``tmp_mb``, ...)."""
    return CodeJudge(name, **options)
