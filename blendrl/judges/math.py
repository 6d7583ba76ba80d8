"""Math judge (CGPO §5.3, App. B) as an answer contract: the response commits to exactly one final answer in the
configured place, that answer parses to one value of the gold's kind, and the value equals the gold. Everything
else is a violation with its reason, never a reading of what the policy "probably meant".

Where the answer is (``answer``): ``sentence`` (the paper's, the default): the response ends with the sentence
"The final answer is X."; ``boxed``: the one ``\\boxed{X}`` of the response, with nothing but closing punctuation
after it.

What fails, besides a wrong value:
- no answer in that place, or more than one answer claim anywhere ("final answer", "the answer is", ``\\boxed``,
  counted on the look-alike-folded text, so a second claim spelled with Cyrillic letters counts);
- hidden content anywhere: invisible code points, HTML comments and tags, markdown comments, LaTeX that hides
  (``\\phantom``, ``\\color``, ``%`` comments in math, ...);
- in X: a second value or math span, any relation, approximation, negation, logic or set notation, words that are
  not a unit the prompt itself uses after a number, a percent unless the gold is one, a code span, characters outside
  the answer alphabet (fullwidth or Arabic-Indic digits, letters of other scripts: named with their code point).

The value: a number gold ("19", "-3", "0.05", "\\frac{1}{2}", "5%") is compared exactly (rationals, no rounding) with
X read by a small exact grammar (integers, decimals, "1,000", fractions, ``\\frac``, + - × ÷ ^ and parentheses,
superscripts as exponents: ``2⁵`` is 32), where an equation chain passes only if every side equals the gold
("x = 10/2 = 5"). A one-letter or one-word gold ("B", "yes") must be that word. Any other gold (``\\sqrt{3}/2``,
``(1, 2)``, ``x^2+1``) goes to ``math-verify`` after X passes the alphabet: only the gold's own LaTeX commands and
letters, the basic operators, and a comma only when the gold has one.
"""
from __future__ import annotations

import re
import unicodedata

from .registry import JUDGES
from ..core.types import Sample
from .base import RuleJudge, Verdict, require_metadata
from .math_answer import AnswerError, check_answer
from .text import describe, fold, hidden_markup, invisible_chars

ANSWER_PLACES = ("sentence", "boxed")


# ---------------------------------------------------------------------------------------------- the response
LATEX_HIDING = [
    (re.compile(r"\\(?:[hv]?phantom|color|textcolor|colorbox|fcolorbox|pagecolor|[lrc]lap|math[lrc]lap|smash|"
                r"hidden|iffalse|comment|tiny|scriptsize|hspace|kern|mkern|mspace|hskip|raisebox|"
                r"renewcommand|newcommand|def|let|href|url)\b"), "LaTeX that hides or redefines text"),
]
MATH_SPAN = re.compile(r"\$[^$]*\$")
INTRO = re.compile(r"[\s$*:]*(?:\\[(\[])?[\s$]*")  # between an answer claim and the \boxed it introduces
CLAIMS = re.compile(r"final\W*answer(?:\s*(?:is|are|was|:|=))?|"
                    r"\banswers?\s*(?:is|are|was|were|would\s+be|should\s+be|:|=)|\\boxed\b|"
                    r"\\fbox\b|\\framebox\b", re.IGNORECASE)
# "answer" in other languages: any of them is a second answer claim in an English "The final answer is X" response
FOREIGN_CLAIMS = re.compile(r"respuesta|r[ée]ponse|antwort|resposta|risposta|antwoord|odpowied|cevap|jawaban|"
                            r"ответ|відповід|答案|解答|答え|정답|उत्तर|الإجابة|الجواب|پاسخ|đáp án|svar")
# the only words allowed before "the final answer is" in its sentence ("So, in conclusion, the final answer is X")
CONNECTIVES = {"so", "therefore", "thus", "hence", "in", "conclusion", "summary", "total", "all", "overall",
               "finally", "and", "then", "consequently", "ultimately", "altogether", "short", "sum"}
SENTENCE = re.compile(r"the\s+final\s+answer\s+is\s*:?\s*", re.IGNORECASE)


def _hidden(text: str) -> str | None:
    if found := invisible_chars(text):
        return f"invisible character {describe(found[0][1])} at position {found[0][0]}"
    if hidden := hidden_markup(text):
        return hidden
    for pattern, what in LATEX_HIDING:
        if m := pattern.search(text):
            return f"hidden content: {what} ({m.group(0).strip()[:20]!r})"
    if any(re.search(r"(?<!\\)%", span) for span in MATH_SPAN.findall(text)):
        return "hidden content: a LaTeX % comment inside math"
    if text.count("`"):
        return "a code span or block in a math answer"
    return None


def _boxed(text: str) -> tuple[int, int, str] | None:
    """(start, end, content) of the last ``\\boxed{...}`` with balanced braces."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = start + len("\\boxed")
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth, j = 0, i
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return start, j + 1, text[i + 1:j]
    return None


def _trim_end(answer: str) -> str:
    """The answer without the sentence's full stop and the close of an emphasis opened before it."""
    while True:
        answer = answer.rstrip()
        if answer.endswith("."):
            answer = answer[:-1]
            continue
        for mark in ("**", "__", "*", "_"):
            if answer.endswith(mark) and answer.count(mark) % 2 == 1:
                answer = answer[:-len(mark)]
                break
        else:
            return answer


def locate_answer(response: str, place: str = "sentence") -> str:
    """X, the text of the one final answer; raises :class:`AnswerError` with the reason when there is none or
    more than one (see the module doc)."""
    text = response.rstrip()
    if reason := _hidden(text):
        raise AnswerError(reason)
    claims, exact = len(CLAIMS.findall(fold(text))), len(CLAIMS.findall(text))
    if claims != exact:
        raise AnswerError("an answer claim spelled with look-alike characters")
    if m := FOREIGN_CLAIMS.search(unicodedata.normalize("NFKC", text).casefold()):
        raise AnswerError(f"an answer claim in another language ({m.group(0)!r})")
    if place == "boxed":
        box = _boxed(text)
        if box is None:
            raise AnswerError("no \\boxed{X}")
        # "The final answer is $\boxed{X}$", "**Answer:** \boxed{X}": one claim, not two
        said = [m for m in CLAIMS.finditer(text[:box[0]]) if INTRO.fullmatch(text[m.end():box[0]])]
        if text.count("\\boxed") != 1 or claims != 1 + len(said):
            raise AnswerError(f"{claims} answer claims; the response must commit to one \\boxed{{X}}")
        tail = text[box[1]:]
        if not re.fullmatch(r"(?:\s|\$|\\\]|\\\)|\*\*|[.!])*", tail):  # closing marks and a full stop or "!"
            raise AnswerError(f"text after the boxed answer: {tail.strip()[:40]!r}")
        return box[2]
    matches = list(SENTENCE.finditer(text))
    if not matches:
        raise AnswerError("no final sentence 'The final answer is X'")
    m = matches[-1]
    boxes = text.count("\\boxed")
    if claims - boxes != 1 or boxes > 1 or (boxes and "\\boxed" not in text[m.end():]):
        raise AnswerError(f"{claims} answer claims; the response must commit to one final answer")
    head = text[:m.start()]
    lead = head[max(head.rfind(c) for c in ".!?\n") + 1:]
    if any(w.casefold() not in CONNECTIVES for w in re.findall(r"[^\s,*_#>]+", lead)):
        raise AnswerError(f"the final sentence does not start with 'The final answer is': {lead.strip()[:40]!r}")
    answer = _trim_end(text[m.end():])
    if not answer.strip():
        raise AnswerError("the final sentence has no answer")
    if "\n" in answer.strip():
        raise AnswerError("the final answer runs over several lines")
    return answer.strip()


def final_answer(response: str, place: str = "sentence") -> str | None:
    """X of the response's one final answer (:func:`locate_answer`), or None when it has none or several."""
    try:
        return locate_answer(response, place)
    except AnswerError:
        return None


@JUDGES.register("math")
def math_judge(name: str = "math", answer: str = "sentence"):
    """``answer``: where the final answer is, ``sentence`` ("The final answer is X.") or ``boxed``."""
    if answer not in ANSWER_PLACES:
        raise ValueError(f"judge '{name}': answer must be one of {ANSWER_PLACES}, got {answer!r}")

    def check(s: Sample) -> Verdict:
        gold = str(require_metadata(s, "answer", name))
        try:
            x = locate_answer(s.response, answer)
            check_answer(x, gold, s.prompt)
        except AnswerError as exc:
            return Verdict(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - unparseable model output is a violation, never a crash
            return Verdict(False, f"the answer could not be read ({type(exc).__name__})")
        return Verdict(True)

    return RuleJudge(name, check)
