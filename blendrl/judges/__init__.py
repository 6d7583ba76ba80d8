"""Judges (CGPO's Mixture of Judges): rule checks and LLM judges that return pass/fail verdicts per sample.

The built-in kinds (``JUDGES``: math, instructions, code, format, eos, refusal, llm, openai) load at the registry's
first lookup (:mod:`blendrl.judges.registry`)."""
from .registry import JUDGES
from .base import Judge, JudgeDataError, Judgement, MixtureOfJudges, RuleJudge, Verdict, Verdicts, require_metadata
from .factory import build_judges

__all__ = ["JUDGES", "Judge", "JudgeDataError", "Judgement", "MixtureOfJudges", "RuleJudge", "Verdict", "Verdicts",
           "build_judges", "require_metadata"]
