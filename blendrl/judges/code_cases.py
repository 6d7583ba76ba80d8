"""Test cases for the code judge as data: ``(function, args) → expected``, compared by the trusted parent.

A candidate passes only when every call's return value, sent back as plain data, equals the expected value (with
a float tolerance where the test used one). The expected values never enter the sandbox, so a program cannot read,
patch or forge them, and an exit status proves nothing. Where cases come from:

- ``metadata['cases']``: ``[{"args": [...], "expected": ..., "function"?: name, "kwargs"?: {...}, "tol"?: float}]``
  (JSON values; ``function`` defaults to ``metadata['entry_point']``);
- ``metadata['tests']``: Python ``assert`` lines of the forms ``f(<literals>) == <literal>`` (either side),
  ``abs(f(...) - <literal>) < tol``, ``f(...)``, ``not f(...)``, ``f(...) is True|False|None``, converted here;
- ``metadata['test']`` + ``entry_point``: a HumanEval-style ``check(candidate)`` made only of such asserts.
  HumanEval itself ships as recorded cases (``blendrl/eval/humaneval_cases.json.gz``), since its checks use loops
  and random inputs.

Anything else is a :class:`~blendrl.judges.base.JudgeDataError` naming the prompt: a test that cannot be turned into
data is not run as code.
"""
from __future__ import annotations

import ast
import math
import threading
from dataclasses import dataclass
from typing import Any

from ._sandbox_harness import decode, encode
from .base import JudgeDataError

# CPython 3.11's AST constructor keeps its recursion depth in shared state, so ast.parse in two threads at once can
# fail with "AST constructor recursion depth mismatch" (python/cpython#106905); the code judge scores a batch in a
# thread pool, so parses take turns
_PARSE = threading.Lock()

COMPARES = ("eq", "truthy", "falsy", "is", "poly_root")
TOL_OPS = ("<", "<=")


@dataclass(frozen=True)
class Case:
    """One call and how its return value is judged. ``compare``: ``eq`` (``==``, floats within ``tol`` when set,
    by the test's own operator ``tol_op``: ``<`` or ``<=``),
    ``truthy``/``falsy``, ``is`` (identity with True/False/None), ``poly_root`` (|poly(args[0], got)| < tol:
    HumanEval/32, whose answer is any root)."""

    function: str
    args: tuple
    expected: Any = None
    kwargs: tuple = ()  # sorted (key, value) pairs
    tol: float | None = None
    compare: str = "eq"
    tol_op: str = "<="  # the test's own operator: |got - expected| < tol or <= tol

    def call_json(self) -> dict:
        return {"function": self.function, "args": encode(list(self.args)), "kwargs": encode(dict(self.kwargs))}

    def show(self) -> str:
        args = ", ".join([*(repr(a) for a in self.args), *(f"{k}={v!r}" for k, v in self.kwargs)])
        return f"{self.function}({args})"[:160]


def case_from_dict(d: dict, entry_point: str | None, where: str, judge: str) -> Case:
    if not isinstance(d, dict) or "args" not in d or ("expected" not in d and d.get("compare") not in
                                                      ("truthy", "falsy", "poly_root")):
        raise JudgeDataError(f"judge '{judge}': prompt {where} has a case without 'args' and 'expected': {d!r}"[:300])
    function = d.get("function") or entry_point
    if not function:
        raise JudgeDataError(f"judge '{judge}': prompt {where}: a case names no function and there is no "
                             f"metadata 'entry_point'")
    compare, tol_op = d.get("compare", "eq"), d.get("tol_op", "<=")
    if compare not in COMPARES:
        raise JudgeDataError(f"judge '{judge}': prompt {where}: compare must be one of {COMPARES}, got {compare!r}")
    if tol_op not in TOL_OPS:
        raise JudgeDataError(f"judge '{judge}': prompt {where}: tol_op must be one of {TOL_OPS}, got {tol_op!r}")
    try:
        args, expected = decode(d["args"]), decode(d.get("expected"))
        kwargs = tuple(sorted(decode(d.get("kwargs") or {"t": "dict", "v": []}).items()))
    except (KeyError, TypeError, ValueError) as exc:
        raise JudgeDataError(f"judge '{judge}': prompt {where}: a case's values are not tagged plain data "
                             f"({type(exc).__name__}: {exc}); a dict argument is {{\"t\": \"dict\", \"v\": "
                             f"[[key, value], ...]}}") from exc
    if not isinstance(args, (list, tuple)):
        raise JudgeDataError(f"judge '{judge}': prompt {where}: a case's 'args' must be a list")
    return Case(function, tuple(args), expected, kwargs, d.get("tol"), compare, tol_op)


def _literal(node: ast.AST, text: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError(f"not a literal: {ast.get_source_segment(text, node)}") from exc


def _call(node: ast.AST, text: str, rename: dict[str, str]) -> Case | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    args = tuple(_literal(a, text) for a in node.args)
    kwargs = tuple(sorted((k.arg, _literal(k.value, text)) for k in node.keywords))
    return Case(rename.get(node.func.id, node.func.id), args, kwargs=kwargs)


def _case_of_assert(test: ast.AST, text: str, rename: dict[str, str]) -> Case:
    from dataclasses import replace

    if (call := _call(test, text, rename)) is not None:
        return replace(call, compare="truthy")
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and (call := _call(test.operand, text, rename)):
        return replace(call, compare="falsy")
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq):
            for a, b in ((left, right), (right, left)):
                if (call := _call(a, text, rename)) is not None:
                    return replace(call, expected=_literal(b, text))
        if isinstance(op, ast.Is) and (call := _call(left, text, rename)) is not None:
            value = _literal(right, text)
            if value in (True, False, None):
                return replace(call, expected=value, compare="is")
        # abs(f(...) - x) < tol
        inner = left.args[0] if isinstance(left, ast.Call) and len(left.args) == 1 else None
        if isinstance(op, (ast.Lt, ast.LtE)) and getattr(left.func, "id", "") == "abs" \
                and isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub):
            if (call := _call(inner.left, text, rename)) is not None:
                return replace(call, expected=_literal(inner.right, text), tol=float(_literal(right, text)),
                               tol_op="<" if isinstance(op, ast.Lt) else "<=")
    raise ValueError(f"unsupported assert: {ast.get_source_segment(text, test)}")


def cases_from_asserts(text: str, where: str, judge: str, rename: dict[str, str] | None = None) -> list[Case]:
    """Cases from ``assert`` statements (module level, or the body of ``def check(candidate)`` with ``rename``
    mapping ``candidate`` to the entry point). Imports, docstrings and module-level constants are ignored."""
    try:
        with _PARSE:
            tree = ast.parse(text)
    except SyntaxError as exc:
        raise JudgeDataError(f"judge '{judge}': prompt {where}: the tests do not parse ({exc.msg}, line "
                             f"{exc.lineno})") from exc
    body = tree.body
    checks = [n for n in body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if rename is not None and checks:
        body = checks[0].body
    cases = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or (
                isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["METADATA"]):
            continue  # imports, docstrings, HumanEval's METADATA, the check function itself
        try:
            if not isinstance(node, ast.Assert):
                raise ValueError(f"not an assert: {ast.get_source_segment(text, node)}")
            cases.append(_case_of_assert(node.test, text, rename or {}))
        except ValueError as exc:
            raise JudgeDataError(f"judge '{judge}': prompt {where}: {str(exc)[:200]}; write tests as "
                                 f"`assert f(<literals>) == <literal>` or give metadata 'cases'") from exc
    if not cases:
        raise JudgeDataError(f"judge '{judge}': prompt {where}: the tests hold no assert to run")
    return cases


def matches(got: Any, case: Case) -> bool:
    """Does the plain-data return value ``got`` satisfy ``case``? Only built-in types reach here (no user __eq__)."""
    if case.compare == "truthy":
        return bool(got)
    if case.compare == "falsy":
        return not got
    if case.compare == "is":
        return got is case.expected
    if case.compare == "poly_root":
        if type(got) not in (int, float) or not math.isfinite(got):
            return False
        xs = case.args[0]
        return abs(sum(c * got ** i for i, c in enumerate(xs))) < (case.tol or 1e-4)
    return _equal(got, case.expected, case.tol, case.tol_op == "<")


def _equal(got: Any, expected: Any, tol: float | None, strict: bool) -> bool:
    if tol is not None:
        if type(got) in (int, float) and type(expected) in (int, float):
            gap = abs(got - expected)
            return gap < tol if strict else gap <= tol  # NaN fails both
        if type(got) is type(expected) and isinstance(got, (list, tuple)) and len(got) == len(expected):
            return all(_equal(g, e, tol, strict) for g, e in zip(got, expected))
    return got == expected
