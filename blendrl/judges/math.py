"""Math judge (CGPO §5.3, App. B): the response must end with "The final answer is X"; X is compared with the
prompt's ``metadata['answer']`` by ``math-verify`` (numbers, fractions, LaTeX, simple expressions). A missing or
malformed final sentence is a violation, as in the paper.

Hedges are violations, since a policy learns them fast: several answers ("5 or 6", "5, 6", "{5, 6}"), intervals
and inequalities (math-verify already rejects these against a single number), and equation chains, which
math-verify reads by their last side ("x = 6 = 5" for 5). A chain passes only when every side but a lone variable
on the left equals the gold answer ("x = 10/2 = 5" passes).
"""
from __future__ import annotations

import re

from ..core.types import Sample
from ..core.registries import JUDGES
from .base import RuleJudge, Verdict, require_metadata
from .text import visible_text

FINAL_ANSWER = re.compile(r"the final answer is[:\s]*(.+?)\s*$", re.IGNORECASE | re.DOTALL)


def final_answer(response: str) -> str | None:
    """The X of the *last* "The final answer is X" when it is the last sentence of the response, else None."""
    starts = [m.start() for m in re.finditer(r"the final answer is", response, re.IGNORECASE)]
    if not starts:
        return None
    tail = response[starts[-1]:].strip()
    m = FINAL_ANSWER.match(tail)
    if m is None:
        return None
    answer = m.group(1).strip()
    answer = re.sub(r"[.!]\s*$", "", answer).strip()  # the sentence's full stop
    if not answer or "\n" in answer or re.search(r"[.!?]\s+\S", answer):  # more sentences follow: not the last
        return None
    return answer


def _as_math(text: str) -> str:
    """math-verify reads bare numbers and LaTeX in $…$; wrap plain text so both forms parse."""
    text = text.strip()
    return text if "$" in text or "\\" in text else f"${text}$"


LONE_VARIABLE = re.compile(r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*$")


def chain_sides(answer: str) -> list[str]:
    """The sides of an equation chain to check: every ``=``-separated part but a lone variable on the left."""
    text = answer.replace("$", "").strip()
    if "=" not in text or re.search(r"[<>!]=|==|\\[a-z]*eq", text):
        return [answer]
    parts = [p.strip() for p in text.split("=")]
    if len(parts) > 1 and LONE_VARIABLE.match(parts[0]):
        parts = parts[1:]
    return parts


@JUDGES.register("math")
def math_judge(name: str = "math"):
    from math_verify import parse, verify

    def check(s: Sample) -> Verdict:
        gold = str(require_metadata(s, "answer", name))
        answer = final_answer(visible_text(s.response))
        if answer is None:
            return Verdict(False, "no final sentence 'The final answer is X'")
        sides = chain_sides(answer) if "=" not in gold else [answer]
        if any(not side for side in sides):
            return Verdict(False, f"answer {answer!r} has an empty side")
        try:
            target = parse(_as_math(gold))
            ok = all(verify(target, parse(_as_math(side))) for side in sides)
        except Exception as exc:  # noqa: BLE001 - unparseable model output is a wrong answer, not a crash
            return Verdict(False, f"answer {answer!r} could not be parsed ({type(exc).__name__})")
        return Verdict(True) if ok else Verdict(False, f"answer {answer!r} != {gold!r}")

    return RuleJudge(name, check)
