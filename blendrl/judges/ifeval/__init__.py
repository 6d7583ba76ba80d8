"""Strict IFEval: for each of IFEval's 25 instruction types, what a passing response looks like, failing closed
where the reference scorer waves a response through.

Each checker takes ``(response, kwargs, prompt)`` and returns the reason of a violation, or None. The instruction
judge's ``strict`` mode runs a checker *and* IFEval's own check, so strict can only be stricter than the reference.
Every checker reads the response as written (the judge has already screened it for invisible code points and
mixed-script words, :func:`~blendrl.judges.text.screen`). Counting rules count the reader's way that is least
favourable to the response (:func:`~blendrl.judges.text.word_bounds`): "at least N words" counts the fewest words a
reader could see, "less than N" the most. A requirement is met only by the visible, exact spelling; a prohibition
is broken by any spelling that looks like it (:func:`~blendrl.judges.text.loose_key`).
"""
from . import content, formats  # noqa: F401  (each registers its checkers)
from .base import STRICT, Check

__all__ = ["STRICT", "Check"]
