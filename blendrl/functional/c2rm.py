"""Confidence-aware reward-model data (C2RM, He et al. 2025; docs/algorithms.md §5): self-consistency confidence,
the four classes, and which pairs of a question's responses become preference pairs.

Pure functions over one question's k sampled responses.
"""
from __future__ import annotations

from typing import Callable

from ..core.registry import Registry

C2RM_RECIPES: Registry = Registry("C2RM pair recipe")

CORRECT_CONFIDENT, WRONG_CONFIDENT, CORRECT_UNCONFIDENT, WRONG_UNCONFIDENT = 1, 2, 3, 4


def self_consistency(answers: list, same: Callable[[object, object], bool]) -> list[float]:
    """Confidence of each response: the share of the valid answers (not None) that equal its own answer
    (``same``), so ``100·count(answer)/#valid`` of the paper as a fraction; a response without an answer gets 0."""
    valid = [a for a in answers if a is not None]
    return [0.0 if a is None else sum(same(a, b) for b in valid) / len(valid) for a in answers]


def c2rm_class(correct: bool, confidence: float, threshold: float = 0.5) -> int:
    """1 correct & confident (≥ threshold), 2 wrong & confident, 3 correct & unconfident, 4 wrong & unconfident."""
    confident = confidence >= threshold
    return (CORRECT_CONFIDENT if confident else CORRECT_UNCONFIDENT) if correct else \
        (WRONG_CONFIDENT if confident else WRONG_UNCONFIDENT)


def _pairs(classes: list[int], chosen: set[int], rejected: set[int]) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(classes) for j, b in enumerate(classes)
            if i != j and a in chosen and b in rejected]


@C2RM_RECIPES.register("c2rm")
def main_recipe(classes: list[int]) -> list[tuple[int, int]]:
    """The paper's recipe: class 1 over classes 2, 3 and 4 (a correct but unconfident answer is rejected)."""
    return _pairs(classes, {1}, {2, 3, 4})


@C2RM_RECIPES.register("correctness")
def correctness_recipe(classes: list[int]) -> list[tuple[int, int]]:
    """The correctness-only ablation: every correct answer (1, 3) over every wrong one (2, 4)."""
    return _pairs(classes, {1, 3}, {2, 4})


@C2RM_RECIPES.register("confidence")
def confidence_recipe(classes: list[int]) -> list[tuple[int, int]]:
    """The confidence-only ablation: every confident answer (1, 2) over every unconfident one (3, 4)."""
    return _pairs(classes, {1, 2}, {3, 4})
