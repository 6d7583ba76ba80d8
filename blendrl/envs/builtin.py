"""The built-in environments: ``calculator`` and ``python`` (tools), ``guess`` (a multi-turn game for tests)."""
from __future__ import annotations

import json
import re

from ..core.arithmetic import ERRORS, evaluate
from .base import ENVIRONMENTS, Step, ToolEnvironment, truncate


class CalculatorTool:
    """``calculator(expression)``: arithmetic on numbers (``+ - * / // % **``, parentheses) evaluated from its
    syntax tree, nothing else (no names, calls or attributes); exponents up to 64, results up to 1e100."""

    name = "calculator"
    schema = {"name": "calculator", "description": "Evaluate an arithmetic expression, e.g. (17 * 23) + 4.",
              "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                             "required": ["expression"]}}

    def run(self, arguments: dict) -> tuple[str, dict]:
        expr = arguments.get("expression")
        if set(arguments) != {"expression"} or not isinstance(expr, str) or len(expr) > 200:
            return "error: calculator takes one argument, expression: a string of at most 200 characters", \
                {"tool_errors": 1.0}
        try:
            value = evaluate(expr)
        except ERRORS as exc:
            return f"error: {type(exc).__name__}: {exc}", {"tool_errors": 1.0}
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            value = int(value)
        return str(value), {}


class PythonTool:
    """``python(code)``: runs the code in the code judge's sandbox (bubblewrap namespaces, seccomp, rlimits:
    :mod:`blendrl.judges.sandbox`; refuses to start without it unless ``unisolated``) and returns what it printed
    and its error, cut to the environment's limit. What the code tried to do and the sandbox blocked (process,
    network, native code, files outside /tmp, signals, introspection, threads) is counted as ``blocked/<family>``,
    a timeout as ``tool_timeouts``. ``limits``: :class:`~blendrl.judges.sandbox.SandboxLimits` fields per call."""

    name = "python"
    schema = {"name": "python", "description": "Run Python 3 code and see what it prints (no network, no files "
              "outside /tmp, a few seconds).", "parameters": {"type": "object", "properties": {
                  "code": {"type": "string"}}, "required": ["code"]}}

    def __init__(self, limits: dict | None = None, unisolated: bool = False) -> None:
        from ..judges.sandbox import SandboxLimits, require_isolation

        if not unisolated:
            require_isolation()
        self.limits, self.unisolated = SandboxLimits(**{"wall_s": 5.0, "cpu_s": 5, **(limits or {})}), unisolated

    def run(self, arguments: dict) -> tuple[str, dict]:
        from ..judges.code import harness_source
        from ..judges.sandbox import run_sandboxed

        code = arguments.get("code")
        if set(arguments) != {"code"} or not isinstance(code, str):
            return "error: python takes one argument, code: a string", {"tool_errors": 1.0}
        job = {"solution": "solution.py", "calls": []}
        r = run_sandboxed({"solution.py": code, "harness.py": harness_source(), "job.json": json.dumps(job)},
                          ["/sandbox/harness.py", "/sandbox/job.json"], self.limits, None, self.unisolated)
        stats: dict[str, float] = {}
        try:
            report = json.loads(r.stdout)
        except (json.JSONDecodeError, UnicodeDecodeError):
            report = {}
        for family, n in (report.get("events") or {}).items():
            stats[f"blocked/{family}"] = float(n)
        printed = r.stderr  # the harness sends the program's prints to stderr
        if r.timed_out:
            stats["tool_timeouts"] = 1.0
            return truncate(printed, 1500) + f"\nerror: {r.reason()}", stats
        if report.get("load_error"):
            stats["tool_errors"] = 1.0
            return truncate(printed, 1500) + f"\nerror: {report['load_error']}", stats
        if not report:
            stats["tool_errors"] = 1.0
            return truncate(printed, 1500) + f"\nerror: {r.reason()}", stats
        return printed, stats


@ENVIRONMENTS.register("calculator")
def calculator(max_calls: int = 8, max_output_chars: int = 2000):
    """A calculator tool (:class:`CalculatorTool`)."""
    return ToolEnvironment([CalculatorTool()], max_calls, max_output_chars)


@ENVIRONMENTS.register("python")
def python(max_calls: int = 4, max_output_chars: int = 2000, limits: dict | None = None, unisolated: bool = False):
    """A Python interpreter under the sandbox (:class:`PythonTool`); ``limits`` per call, ``max_calls`` per
    episode."""
    return ToolEnvironment([PythonTool(limits, unisolated)], max_calls, max_output_chars)


class GuessGame:
    """A number to guess (``metadata['secret']``, an integer): each turn's last integer is the guess; the reply is
    "higher" or "lower" (role ``user``) until it is right, which ends the episode; a turn with no integer gets "say
    a number". ``stats``: ``guesses``, ``solved``."""

    tools: list = []

    def reset(self, prompt) -> dict:
        secret = (getattr(prompt, "metadata", {}) or {}).get("secret")
        if not isinstance(secret, int):
            raise ValueError(f"guess: prompt {getattr(prompt, 'source', '?')}, row {getattr(prompt, 'row', '?')} "
                             f"has no integer metadata 'secret'")
        return {"secret": secret}

    def step(self, state: dict, text: str) -> Step:
        numbers = re.findall(r"-?\d+", text)
        if not numbers:
            return Step("say a number", "user", {"guesses": 0.0})
        guess = int(numbers[-1])
        if guess == state["secret"]:
            return Step(None, "user", {"guesses": 1.0, "solved": 1.0})
        return Step("higher" if guess < state["secret"] else "lower", "user", {"guesses": 1.0})


@ENVIRONMENTS.register("guess")
def guess():
    return GuessGame()
