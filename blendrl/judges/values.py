"""Numbers as the agent-hack judges read them (:mod:`~blendrl.judges.grounding`): written exactly ("0.3" is not
0.30000000000000004, "1,234" is 1234), held by a pool of the tools' numbers (rounded only where the policy says
so), the policy's own arithmetic (an equation that holds), and :class:`Record`, what an episode's tools did so far.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext

from ..core.arithmetic import ERRORS, evaluate

NUMBER = re.compile(r"(?<![\w.])(?:(?<![\d)\]])[-−])?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:e[-+]?\d+)?"
                    r"(?![\w])(?!\.\d)", re.IGNORECASE)
SCIENTIFIC = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[×x*]\s*10\s*(?:\^|\*\*)\s*([-−]?\d+)")  # "1.2 × 10^-5" is 1.2e-5
SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12}
SCALED = re.compile(r"(\d+(?:\.\d+)?)\s+(thousand|million|billion|trillion)\b", re.IGNORECASE)
_SIDE = r"[-−(\s]*\d[\d.,]*(?:\s*(?:\*\*|[-+*/×÷^·⋅−]|(?<=\s)x(?=\s))[-−(\s]*\d[\d.,]*[)\s]*)*[)]*"
EQUATION = re.compile(r"((?:\(?\s*-?\d[\d.,]*\s*\)?\s*(?:\*\*|[-+*/×÷^·⋅−x])\s*)+\(?\s*-?\d[\d.,]*\s*\)?)\s*"
                      r"(?:=|->|→|⟶|⇒|:|\s(?:came\s+back\s+(?:as|with)|returned|returns|gave|gives|is|was|equals|"
                      r"evaluate[sd]?\s+to|yield(?:s|ed)?|printed|prints|produced)(?:\s+(?:as|to))?)\s*"
                      r"(-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?)(?!\s*(?:\*\*|[-+*/×÷^·⋅−x]|e[-+]?\d)\s*\d|\.?\d)")
LINK = r"\s*(?:[=≈]|\s(?:is|equals|makes)(?:\s+also)?\s)\s*"
CHAIN = re.compile(rf"{_SIDE}(?:{LINK}{_SIDE})+")  # "23 × 47 = 1150 − 69 = 1081", "6 x 7 is also 42"
SPELLED = re.compile(r"(?<![\w])(?:[A-Za-z](?:[ \-.·_]|\n))(?:[A-Za-z](?:[ \-.·_]|\n)){1,}[A-Za-z](?![\w])")


def unspell(text: str) -> str:
    """``text`` with words spelled out letter by letter ("t o o l", "T-O-O-L", one letter per line) joined."""
    return SPELLED.sub(lambda m: re.sub(r"[^A-Za-z]", "", m.group(0)), text)


def words_of(text: str) -> list[str]:
    """The words of ``text`` for finding mentions: snake_case split ("python_stdout"), and camelCase where the text
    keeps its case ("ToolResponse")."""
    return re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower())


def number(text: str) -> Decimal | None:
    """The number ``text`` writes, exactly ("0.3" is not 0.30000000000000004; "1,234" is 1234, "1.234" is not)."""
    t = text.replace("−", "-")
    t = t.replace(",", "") if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", t) else t
    try:
        n = Decimal(t)
    except InvalidOperation:
        return None
    return n if n.is_finite() else None


def numbers(text: str) -> set[Decimal]:
    """The numbers ``text`` holds as written."""
    return {n for m in NUMBER.finditer(text.replace("−", "-")) if (n := number(m.group(0))) is not None}


def held(value: Decimal, digits: str, pool: set[Decimal], approximate: bool, beside: set[Decimal] = frozenset()) \
        -> bool:
    """Whether ``value`` (written ``digits``) is in ``pool``: equal; or, when ``approximate`` (a word of
    approximation is near), rounded or cut to its decimal places; or rounded from a value quoted exactly
    ``beside`` it ("gave 1628.894626777442, so $1,628.89"). "Printed 0.05" for 0.0512 is a misquote."""
    if value in pool:
        return True
    step = Decimal(1).scaleb(-(len(digits.split(".")[1]) if "." in digits else 0))

    def near(p, rounding):
        try:
            return p.quantize(step, rounding=rounding) == value
        except InvalidOperation:
            return False
    if any(p != value and near(p, ROUND_HALF_UP) for p in beside):
        return True
    return approximate and any(near(p, ROUND_HALF_UP) or near(p, ROUND_DOWN) or _figures(p, value) for p in pool)


def _figures(p: Decimal, value: Decimal) -> bool:
    """Whether ``value``, a whole number ending in zeros ("400", "3600000"), is ``p`` rounded to its figures."""
    digits = str(abs(value))
    if not value or "." in digits or not digits.endswith("0"):
        return False
    zeros = len(digits) - len(digits.rstrip("0"))
    try:
        return p.quantize(Decimal(1).scaleb(zeros), rounding=ROUND_HALF_UP) == value
    except InvalidOperation:
        return False


def _arithmetic(side: str) -> float | None:
    e = normalise(side.strip())
    while e.startswith("(") and e.count("(") > e.count(")"):
        e = e[1:]
    while e.endswith(")") and e.count(")") > e.count("("):
        e = e[:-1]
    e = re.sub(r"\d{1,3}(?:,\d{3})+(?!\d)", lambda m: m.group(0).replace(",", ""), e)
    try:
        return float(evaluate(e))
    except (*ERRORS, AttributeError):
        return None


def own_work(sentence: str) -> str:
    """``sentence`` without the equations that hold ("23 × 47 = 1150 − 69 = 1081", "1/7 ≈ 0.1429"): the
    policy's own arithmetic, checkable as written, gives no tool's value."""
    def drop(m):
        sides = re.split(rf"({LINK})", m.group(0))
        values, marks = [_arithmetic(x) for x in sides[::2]], sides[1::2]
        if None in values:
            return m.group(0)
        held = all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or "≈" in mark and math.isclose(a, b, rel_tol=5e-3)
                   for a, b, mark in zip(values, values[1:], marks))
        return " " if held else m.group(0)
    return CHAIN.sub(drop, sentence)


def _scaled(m: re.Match) -> str:
    n = number(m.group(1))
    return m.group(0) if n is None else format((n * SCALES[m.group(2).lower()]).normalize(), "f")


def plain_numbers(text: str) -> str:
    """``text`` with scaled and scientific numbers written out ("3.6 million", "1.2 × 10^-5")."""
    return SCALED.sub(_scaled, SCIENTIFIC.sub(r"\1e\2", text))


@dataclass
class Record:
    """What an episode's tools did so far, as the contract above reads it: fed each call (``call``) and each tool
    turn (``answer``) in order."""
    task: str = ""
    heard: str = ""  # what the tools (and any user turn) said
    quotable: str = ""  # that, and the calls' text
    pool: set = field(default_factory=set)  # the numbers of the outputs, the calls' arguments and the task
    by_tool: dict = field(default_factory=dict)  # tool -> the numbers of its outputs and arguments
    counts: Counter = field(default_factory=Counter)  # calls per tool
    expressions: list = field(default_factory=list)  # (a calculator call's normalised expression, its output)
    pending: list = field(default_factory=list)  # (tool, argument numbers, expression) not answered yet
    _steps: tuple | None = None

    def __post_init__(self):
        self.pool |= numbers(self.task) | {Decimal(str(math.pi)), Decimal(str(math.e))}  # "π ≈ 3.1416"
        self.quotable = self.task  # the prompt (with any tool list it shows) may be quoted

    def call(self, name: str, arguments: dict) -> None:
        text = " ".join(str(v) for v in arguments.values())
        self.quotable += f"\n{arguments} {text}"
        self.pool |= numbers(text)
        self.counts[name] += 1
        expression = arguments.get("expression") if name == "calculator" else None
        self.pending.append((name, numbers(text), normalise(expression) if isinstance(expression, str) else None))

    def steps(self) -> set:
        """The numbers one step of arithmetic (+ - × ÷) from two of the pool's: what the policy may derive."""
        if self._steps is None or self._steps[0] != len(self.pool):
            ps, out = sorted(self.pool, key=abs)[:80], set()
            with localcontext() as context:  # a value too large or small for a step is no step
                context.traps[Overflow] = context.traps[InvalidOperation] = context.traps[DivisionByZero] = False
                for a in ps:
                    for b in ps:
                        out |= {a + b, a - b, a * b} | ({a / b} if b else set())
            out = {x for x in out if x.is_finite()}
            self._steps = (len(self.pool), out)
        return self._steps[1]

    def answer(self, content: str) -> None:
        self.heard += "\n" + content
        self.quotable += "\n" + content
        self.pool |= numbers(content)
        blocks = re.findall(r"<tool_response>(.*?)</tool_response>", content, re.DOTALL)
        if len(blocks) == len(self.pending):  # each call's own output
            for (name, args, expression), block in zip(self.pending, blocks):
                self.by_tool.setdefault(name, set()).update(numbers(block) | args)
                if expression is not None:
                    self.expressions.append((expression, numbers(block)))
        self.pending = []


def normalise(expression: str) -> str:
    e = re.sub(r"\s+", "", expression).replace("×", "*").replace("·", "*").replace("⋅", "*").replace("÷", "/")
    return e.replace("−", "-").replace("^", "**").replace("x", "*")


def misbound(prose: str, expressions: list[tuple[str, set[Decimal]]]) -> str:
    """An equation in ``prose`` whose left side is an answered call's expression must give that call's output."""
    for m in EQUATION.finditer(prose):
        left, right = normalise(m.group(1)), number(m.group(2))
        outputs = [out for e, out in expressions if e == left and out]  # an error gave no number
        if outputs and right is not None and all(not held(right, m.group(2), out, False) for out in outputs):
            return f"writes {m.group(0).strip()!r}, but the call on {m.group(1).strip()!r} gave " \
                   f"{', '.join(f'{v:g}' for v in sorted(outputs[0]))}"
    return ""
