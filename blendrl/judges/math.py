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
from fractions import Fraction

from ..core.registries import JUDGES
from ..core.types import Sample
from .base import RuleJudge, Verdict, require_metadata
from .text import describe, fold, hidden_markup, invisible_chars

ANSWER_PLACES = ("sentence", "boxed")


class AnswerError(ValueError):
    """X does not parse to one value of the gold's kind; the message is the violation's reason."""


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
        if not re.fullmatch(r"(?:\s|\$|\\\]|\\\)|\*\*|\.)*", tail):
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


# ---------------------------------------------------------------------------------------------- the answer X
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾", "0123456789+-()")
SYMBOLS = {"×": "\\times", "÷": "\\div", "·": "\\cdot", "−": "-", "π": "\\pi", "√": "\\sqrt", "∞": "\\infty",
           "°": "^\\circ"}
WRAPPERS = [re.compile(p, re.DOTALL) for p in (r"^\*\*(.*)\*\*$", r"^\*(.*)\*$", r"^__(.*)__$", r"^_(.*)_$",
                                               r"^\$\$(.*)\$\$$", r"^\$(.*)\$$", r"^\\\((.*)\\\)$",
                                               r"^\\\[(.*)\\\]$", r"^\\boxed\s*\{(.*)\}$", r"^\\text\{(.*)\}$",
                                               r"^\\mathrm\{(.*)\}$", r"^\\textbf\{(.*)\}$")]
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+")
TOKEN = re.compile(r"\s*(\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+|\\[dt]?frac|\\times|\\cdot|"
                   r"\\div|\\left|\\right|[-+*/^(){}])")
PERCENT = re.compile(r"\s*(?:\\?%|\s+percent)$")
LONE_VARIABLE = re.compile(r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*=(?!=)")


def _unwrap(x: str) -> str:
    x = x.strip()
    while True:
        for w in WRAPPERS:
            if (m := w.match(x)) and not (w.pattern.startswith("^\\$") and "$" in m.group(1)):
                x = m.group(1).strip()
                break
        else:
            return x


def _superscripts(x: str) -> str:
    """``2⁵`` → ``2^{5}``: a run of superscript characters is an exponent."""
    return re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾]+", lambda m: "^{" + m.group(0).translate(SUPERSCRIPTS) + "}", x)


def _symbols(x: str) -> str:
    x = _superscripts(x)
    for k, v in SYMBOLS.items():
        x = x.replace(k, f" {v} " if v.startswith("\\") and v != "^\\circ" else v)
    if odd := next((c for c in x if not c.isascii()), None):
        raise AnswerError(f"character {describe(odd)} in the answer")
    return x


class _Exact:
    """Recursive descent over TOKEN: + - * / \\times \\cdot \\div ^ ( ) { } \\frac{a}{b}, exactly (Fractions)."""

    def __init__(self, text: str) -> None:
        self.toks, pos = [], 0
        text = text.strip()
        while pos < len(text):
            m = TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise AnswerError(f"cannot read {text[pos:].strip()[:30]!r} in the answer")
            self.toks.append(m.group(1))
            pos = m.end()
            while pos < len(text) and text[pos] == " ":
                pos += 1
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise AnswerError(f"expected {want or 'a value'} in the answer")
        self.i += 1
        return tok

    def value(self) -> Fraction:
        v = self.expr()
        if self.peek() is not None:
            raise AnswerError(f"more than one value in the answer (at {self.peek()!r})")
        return v

    def expr(self) -> Fraction:
        v = self.term()
        while self.peek() in ("+", "-"):
            v = v + self.term() if self.take() == "+" else v - self.term()
        return v

    def term(self) -> Fraction:
        v = self.factor()
        while self.peek() in ("*", "/", "\\times", "\\cdot", "\\div"):
            op, rhs = self.take(), self.factor()
            if op in ("/", "\\div"):
                if rhs == 0:
                    raise AnswerError("division by zero in the answer")
                v = v / rhs
            else:
                v = v * rhs
        return v

    def factor(self) -> Fraction:
        if self.peek() in ("-", "+"):
            return -self.factor() if self.take() == "-" else self.factor()
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exp = self.atom()
            if exp.denominator != 1 or abs(exp) > 64:
                raise AnswerError("the answer has a non-integer or huge exponent")
            if base == 0 and exp < 0:
                raise AnswerError("division by zero in the answer")
            base = base ** int(exp)
        return base

    def atom(self) -> Fraction:
        tok = self.take()
        if tok in ("\\left", "\\right"):
            return self.atom()
        if tok in ("(", "{"):
            v = self.expr()
            if self.peek() == "\\right":
                self.take()
            self.take(")" if tok == "(" else "}")
            return v
        if tok in ("\\frac", "\\dfrac", "\\tfrac"):
            self.take("{")
            num = self.expr()
            self.take("}")
            self.take("{")
            den = self.expr()
            self.take("}")
            if den == 0:
                raise AnswerError("division by zero in the answer")
            return num / den
        if NUMBER.fullmatch(tok.replace("{,}", ",")):
            return Fraction(tok.replace("{,}", "").replace(",", ""))
        raise AnswerError(f"expected a value in the answer, got {tok!r}")


def _units(prompt: str) -> set[str]:
    """The words the prompt itself puts after a number ("31 coins"): the only words allowed after X's value."""
    found = set()
    for w in re.findall(r"\d\s*(%|°|[A-Za-z]+)", prompt):
        found |= {w.lower(), w.lower().rstrip("s"), w.lower() + "s"}
    if re.search(r"\bdegrees?\b|°", prompt):
        found |= {"degrees", "degree", "°"}
    return found


def _number_gold(gold: str) -> tuple[Fraction, bool] | None:
    """(value, is a percent) when the gold is a number, else None (the gold is trusted data)."""
    g = _unwrap(gold.strip())
    percent = bool(PERCENT.search(g))
    g = PERCENT.sub("", g)
    try:
        return _Exact(_symbols(g)).value(), percent
    except AnswerError:
        return None


def check_number(x: str, gold: Fraction, gold_percent: bool, prompt: str) -> None:
    """Raise :class:`AnswerError` unless X is one number equal to the gold (see the module doc)."""
    x = _unwrap(x)
    if x.startswith(("\\$", "$")) and x.count("$") == 1:
        x = x.lstrip("\\$").strip()  # a currency sign, not a math span
    if "$" in x:
        raise AnswerError("more than one math span in the answer")
    x = _symbols(x)
    x = re.sub(r"\^\s*\{?\\circ\}?\s*$", " °", x)
    unit = re.search(r"\s*(?:\\text\{\s*([A-Za-z]+)\s*\}|\b([A-Za-z]+)|(°))\s*$", x)
    if unit and not re.search(r"\\[A-Za-z]+$", x[:unit.end()]):
        word = (unit.group(1) or unit.group(2) or unit.group(3)).lower()
        if word not in _units(prompt):
            raise AnswerError(f"the answer has words: {x[unit.start():].strip()!r}")
        x = x[:unit.start()]
    percent = bool(PERCENT.search(x))
    if percent != gold_percent:
        raise AnswerError("a percent answer for a gold that is not a percent" if percent
                          else "the gold is a percent and the answer is not")
    x = PERCENT.sub("", x)
    if LONE_VARIABLE.match(x):
        x = LONE_VARIABLE.sub("", x, count=1)
    sides = x.split("=")
    if any(not side.strip() for side in sides):
        raise AnswerError("an empty side in the answer's equation")
    for side in sides:
        if _Exact(side).value() != gold:
            raise AnswerError(f"{side.strip()!r} != the gold")


BASIC_COMMANDS = {"frac", "dfrac", "tfrac", "sqrt", "pi", "cdot", "times", "div", "left", "right", "infty", "circ",
                  "log", "ln", "sin", "cos", "tan", "exp", "text", "mathrm"}
FORBIDDEN_WORDS = re.compile(r"\b(?:or|and|not|either|nor|maybe|approximately|about|roughly)\b", re.IGNORECASE)


def check_expression(x: str, gold: str) -> None:
    """X against a non-numeric gold: the alphabet first (see the module doc), then math-verify."""
    from math_verify import parse, verify

    x = _unwrap(x)
    if "$" in x:
        raise AnswerError("more than one math span in the answer")
    x = _symbols(x)
    gold_cmds = set(re.findall(r"\\([A-Za-z]+)", gold))
    if bad := [c for c in re.findall(r"\\([A-Za-z]+)", x) if c not in BASIC_COMMANDS | gold_cmds]:
        raise AnswerError(f"the answer uses \\{bad[0]}")
    if m := FORBIDDEN_WORDS.search(re.sub(r"\\[A-Za-z]+", " ", x)):
        raise AnswerError(f"the answer says {m.group(0)!r}")
    letters = set(re.findall(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", gold)))
    if bad := [c for c in re.sub(r"\\[A-Za-z]+", "", x) if c.isalpha() and c not in letters]:
        raise AnswerError(f"the answer has the letter {bad[0]!r}, which the gold does not")
    for ch, allowed in ((",", "," in gold), (";", False), ("<", False), (">", False), ("!", "!" in gold),
                        ("|", "|" in gold), ("~", False)):
        if ch in x and not allowed:
            raise AnswerError(f"the answer has {ch!r}")
    if "=" in x and "=" not in gold and not LONE_VARIABLE.match(x):
        raise AnswerError("a relation in the answer")
    if LONE_VARIABLE.match(x) and "=" not in gold:
        x = LONE_VARIABLE.sub("", x, count=1)
        if "=" in x:
            raise AnswerError("a relation in the answer")
    target, got = parse(f"${gold}$"), parse(f"${x}$")
    if not got or not verify(target, got):
        raise AnswerError("the answer does not equal the gold")


def check_answer(x: str, gold: str, prompt: str = "") -> None:
    """Raise :class:`AnswerError` unless X is one value of the gold's kind equal to the gold."""
    if number := _number_gold(gold):
        return check_number(x, *number, prompt)
    g = _unwrap(gold).strip()
    if re.fullmatch(r"\(?[A-Za-z]+\)?", g):
        word = re.sub(r"^\((.*)\)$", r"\1", _unwrap(x)).strip()
        if word.casefold() != g.strip("()").casefold():
            raise AnswerError(f"{x!r} is not {gold!r}")
        return None
    return check_expression(x, gold)


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
