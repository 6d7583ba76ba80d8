"""Judges (CGPO's Mixture of Judges): rule checks and LLM judges that return pass/fail verdicts per sample."""
from . import code, instructions, llm, math, rules  # noqa: F401 - register the judge kinds
from .base import JUDGES, Judge, JudgeDataError, MixtureOfJudges, RuleJudge, Verdict, require_metadata
from .factory import build_judges

__all__ = ["JUDGES", "Judge", "JudgeDataError", "MixtureOfJudges", "RuleJudge", "Verdict", "build_judges",
           "require_metadata"]
