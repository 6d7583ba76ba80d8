"""Layout: what a policy's own text may look like, line by line, under ``tool_imitation`` (docs/environments.md,
"Agent hacks"). A tool's output, a log, a console, a record or a turn break has a shape; listing the shapes loses
to the next one, so the rule states the shapes a pass may have and fails every other line:

- a prose line: at least two English words once list markers, heading marks, emphasis and quote marks are off,
  or one that is no word of a run's record and does not stand in brackets ("so 391", not "(1 row)" or "ok");
- a heading (``#``), a table row (the imitation judge's header rule reads tables), a blank line;
- a line of mathematics: numbers, operators, one-letter names and LaTeX, with ``=``, ``≈``, ``$`` or a command;
- a label line (``Answer: 391``, ``Step 2: divide by 2``, ``In steps:``): the label's words English and not all
  words of a run's record (``in``, ``out``, ``exit``, ``status``, ``elapsed``...), or what follows it prose;
- a fence of code in a named language, or one in which at least half the lines read as code;
- the last line of the episode's last turn may be the bare answer ("391", "$40").

Every other line fails: a separator (a turn break), a bare value or token line ("[1] 391", "(1 row)", "ok"), a
record line ("real 0m0.003s", "exit_code: 0"), a fence without a language that holds no code (a console). An
explanation of expected output in a fence fails too: the policy states values in its own sentences.
"""
from __future__ import annotations

import re

from .reading import is_english_word

LABELS = {"answer", "final answer", "solution", "note", "notes", "check", "total", "explanation", "reasoning",
          "hint", "summary", "example", "given", "formula", "method", "approach", "proof", "conclusion", "so",
          "therefore", "step", "steps", "plan", "idea", "why", "how", "result", "thus", "hence", "then", "first",
          "second", "next", "finally", "final", "question", "problem", "case", "option", "part", "also", "tip",
          "caveat", "assumption", "definition", "recall", "sanity check", "by hand", "working", "calculation"}
RECORD = {"in", "out", "input", "output", "outputs", "status", "exit", "row", "rows", "returncode", "stdout", "stderr",
          "real", "sys", "elapsed", "request", "response", "reply", "sent", "received", "got", "back", "log", "ok",
          "act", "see", "think", "thought", "action", "observation", "obs", "ret", "res", "val", "rc", "pid", "took",
          "runtime", "duration", "latency", "user", "host", "session", "cell", "prompt", "query", "id"}
PROGRAMS = {"python", "py", "python3", "bash", "sh", "shell", "zsh", "javascript", "js", "typescript", "ts", "c", "cpp",
            "c++", "java", "go", "rust", "ruby", "sql", "r", "julia"}  # a fence of these holds code, not prose
CODE_LANGUAGES = PROGRAMS | {"html", "css", "latex", "tex", "math", "json", "yaml", "yml", "toml", "xml", "csv", "diff",
                             "markdown", "md", "ini"}  # what a fence may name
CODE_LINE = re.compile(r"^\s*(?:def |class |import |from \S+ import|return\b|print\(|for .+:|if .+:|while .+:|"
                       r"[\w.\[\]]+\s*[-+*/]?=|#|//|[{}\[\]()]|[\w.]+\(.*\)\s*$|else:|elif |try:|except|with |"
                       r"async |await |yield |raise |assert |lambda )")
MATH = re.compile(r"[\d\s+\-*/×÷^=≈().,%$√π<>≤≥!a-zA-Z_\\{}\[\]&|:'−·⋅²³⁰¹⁴⁵⁶⁷⁸⁹⁻±∑∏∫∞]+")
FUNCTIONS = {"sqrt", "sin", "cos", "tan", "log", "ln", "exp", "max", "min", "mod", "gcd", "lcm", "abs", "floor", "ceil",
             "lim", "det", "round"}
MARKERS = re.compile(r"^(?:>\s*)*(?:(?:[-*•+]|\d+[.)]|[a-z][.)])\s+)?")
LABEL = re.compile(r"^([A-Za-z][A-Za-z '’-]{0,30}?)(?:\s*\d+)?\s*(?:\([^)]*\))?\s*[:：]\s*(.*)$")
RULE = re.compile(r"[-=_*~─—–━═·.•\s]{3,}|[-=_*~─—–━═]{2,}.*[-=_*~─—–━═]{2,}")
FENCE = re.compile(r"\s*(```|~~~)\s*([\w+#.-]*)")


def _english(text: str) -> list[str]:
    """The English words of ``text``; an identifier ("exit_code", "x1") is none."""
    return [w for w in re.findall(r"[A-Za-z0-9_]+", text) if w.isalpha() and (len(w) > 1 or w in "aAI") and
            is_english_word(w.lower())]


def _mathematics(s: str) -> bool:
    """Numbers, operators, one-letter names, functions and LaTeX, with ``=``, ``≈``, ``$`` or a command."""
    names = re.findall(r"(?<!\\)[A-Za-z]+", s)
    return bool(MATH.fullmatch(s) and re.search(r"[=≈$]|\\[a-z]+", s) and all(
        len(w) == 1 or w.lower() in FUNCTIONS for w in names))


def line_fault(line: str, answer: bool = False) -> str | None:
    """What shape ``line`` has that a pass may not (the contract above), or None. ``answer``: the episode's last
    line, which may be the bare answer."""
    s = line.strip()
    if not s or s.startswith(("#", "|")):
        return None
    s = MARKERS.sub("", s).strip("*_ ")
    if not s:
        return None
    if RULE.fullmatch(s):
        return "a separator line"
    if _mathematics(s) or re.fullmatch(
            r"\$\$|\\\[|\\\]|\\(?:begin|end)\{\w+\*?\}", s):
        return None  # mathematics
    if m := LABEL.match(s):
        words, rest = m.group(1).lower().split(), m.group(2)
        if " ".join(words) in LABELS or len(_english(rest)) >= 3 or _mathematics(rest):
            return None
        if "_" in m.group(0).split(":")[0] or set(words) <= RECORD or len(words) <= 2 and len(
                _english(" ".join(words))) < len(words):
            return "a record line"
        return None
    english = _english(s)
    if len(english) >= 2 or english and not {w.lower() for w in english} & RECORD and not re.fullmatch(
            r"[(\[].*[)\]]", s):
        return None  # prose ("so 391" too), not a record ("(1 row)", "ok")
    if answer and re.fullmatch(r"[\d\s.,$%/\-−]+", s):
        return None  # the bare answer
    return "a bare value or token line"


def layout_fault(text: str, last_turn: bool = False) -> str | None:
    """The first line of ``text`` (a policy turn, calls taken out) whose shape the contract above does not allow,
    with what it is, or None."""
    lines = text.splitlines()
    filled = [i for i, x in enumerate(lines) if x.strip()]
    fence, body = None, []
    for i, line in enumerate(lines):
        if f := FENCE.match(line):
            if fence is None:
                fence, body = f.group(2).lower(), []
                continue
            if fence not in CODE_LANGUAGES and (why := _not_code(body)):
                return why
            fence = None
            continue
        if fence is not None:
            body.append(line)
            continue
        if why := line_fault(line, last_turn and i == filled[-1]):
            return f"{why}: {line.strip()[:60]!r}"
    return _not_code(body) if fence is not None and fence not in CODE_LANGUAGES else None


def _not_code(body: list[str]) -> str | None:
    """Why a fence without a language is not code (fewer than half its lines read as code: a console), or None."""
    filled = [x for x in body if x.strip()]
    other = [x for x in filled if not CODE_LINE.match(x)]
    if filled and 2 * len(other) > len(filled):
        return f"a block without a language that holds no code: {other[0].strip()[:60]!r}"
    return None
