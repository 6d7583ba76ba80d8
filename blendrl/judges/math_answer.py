"""The answer X of the math contract (:mod:`blendrl.judges.math`): X must be one value of the gold's kind and equal
to it. A number gold is compared exactly (rationals) with X read by a small exact grammar; a word gold must be that
word; any other gold goes to ``math-verify`` once X passes the answer alphabet. Each check raises
:class:`AnswerError` with the reason, never guesses."""
from __future__ import annotations

import re
from fractions import Fraction

from .text import describe


class AnswerError(ValueError):
    """X does not parse to one value of the gold's kind (or the response has no single X); the message is the
    violation's reason."""


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
    opens, closes = ("(", "[", "\\{", "\\langle"), (")", "]", "\\}", "\\rangle")
    g, xs = (re.sub(r"\\(?:left|right|big|Big)\s*", "", v).strip() for v in (gold, x))
    if "," in g and any(g.startswith(o) and g.endswith(c) and not (xs.startswith(o) and xs.endswith(c))
                        for o, c in zip(opens, closes)):
        raise AnswerError("the gold is a tuple, interval or set and the answer is not written as one")
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
