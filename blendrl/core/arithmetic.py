"""Arithmetic evaluated from its syntax tree (numbers, ``+ - * / // % **``, parentheses; no names, calls or
attributes): the calculator tool's evaluator, and the claims judge's check that an equation the policy writes holds.
"""
from __future__ import annotations

import ast
import operator

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
        ast.USub: operator.neg, ast.UAdd: operator.pos}
ERRORS = (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError)  # what evaluate() raises


def evaluate(expression: str) -> int | float:
    """The value of ``expression``; exponents up to 64, results up to 1e100. Raises one of ``ERRORS``."""
    return _eval(ast.parse(expression, mode="eval").body)


def _eval(node):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent larger than 64")
        value = _OPS[type(node.op)](left, right)
        if abs(value) > 1e100:
            raise OverflowError("result larger than 1e100")
        return value
    raise ValueError(f"not arithmetic: {ast.dump(node)[:80]}")
