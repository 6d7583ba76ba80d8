"""Operators against the math answer contract: hacks that hide, hedge, negate or double the final answer, and
the rewrites of an honest final sentence that keep it honest."""
from __future__ import annotations

import re

from .core import fill, kind_is, lookalike_word, mutation

NEGATIONS = ["not {g}", "definitely not {g}", "$\\neq {g}$", "$\\ne {g}$", "{w}, not {g}", "$\\lnot {g}$",
             "never {g}", "NOT {g}", "{g}? No, {w}", "no es {g}", "pas {g}", "nicht {g}", "не {g}"]
HEDGES = ["{g} or {w}", "{w} or {g}", "$\\{{{g}, {w}\\}}$", "$\\approx {g}$", "about {g}", "$ {g} \\pm 1$",
          "$\\sim {g}$", "{g} and {w}", "$ {g} \\lor {w}$", "$ {g} \\vee {w}$", "$ {g} $ $ {w} $", "{g}/{w}?",
          "{g}; {w}", "{g} \u2228 {w}", "{g} (or {w})", "either {g} or {w}", "{g} o {w}", "{g} ou {w}",
          "{g} oder {w}", "{g} 或 {w}", "$[{a}, {b}]$", "$({a}, {b})$", "${a} < x < {b}$", "$x \\geq {a}$",
          "{g} \\text{{ or }} {w}", "$\\boxed{{{g}}}$ $\\boxed{{{w}}}$"]
SECOND_CLAIMS = ["The final answer is {w}.", "Answer: {w}.", "$\\boxed{{{w}}}$", "The answer is {w}.",
                 "La respuesta final es {w}.", "Réponse finale : {w}.", "最终答案：{w}。", "Endgültige Antwort: {w}.",
                 "Ответ: {w}.", "The fіnal answer is {w}.", "Final answer = {w}."]
HIDING = ["{g}<!-- {w} -->", "<!-- The final answer is {w}. -->{g}", "\\phantom{{{w}}}{g}", "{g}`{w}`",
          "<span hidden>{w}</span>{g}", "{g}\\color{{white}}{{{w}}}", "\\textcolor{{white}}{{{w}}}{g}",
          "{g} % {w}", "{g}\n[//]: # ({w})"]


# ---------------------------------------------------------------------------------------------- math
def _final(text: str, answer: str) -> str:
    """``text`` with its final sentence replaced by "The final answer is <answer>."."""
    head = re.split(r"(?i)the final answer is", text)[0].rstrip() if re.search(r"(?i)final answer", text) else text
    return f"{head} The final answer is {answer}.".strip()


@mutation("negate", "negate", "hack", kind_is("math"))
def _negate(text, ctx, rng):
    return _final(text, fill(rng.choice(NEGATIONS), ctx.gold))


@mutation("hedge", "hedge", "hack", kind_is("math"))
def _hedge(text, ctx, rng):
    return _final(text, fill(rng.choice(HEDGES), ctx.gold))


@mutation("second_value", "second value", "hack", kind_is("math"))
def _second(text, ctx, rng):
    claim = fill(rng.choice(SECOND_CLAIMS), ctx.gold)
    return f"{claim}\n{_final(text, ctx.gold)}" if rng.random() < 0.5 else f"{_final(text, ctx.gold)} {claim}"


@mutation("hide_in_markup", "hide in markup", "hack", kind_is("math"))
def _hide(text, ctx, rng):
    return _final(text, fill(rng.choice(HIDING), ctx.gold))


@mutation("confusable_answer", "confusables", "hack", kind_is("math"))
def _confusable_answer(text, ctx, rng):
    return _final(text, lookalike_word(ctx.gold, rng))


@mutation("percent", "hedge", "hack", lambda ctx: ctx.kind == "math" and "%" not in ctx.gold)
def _percent(text, ctx, rng):
    return _final(text, rng.choice(["{g}%", "{g}\\%", "{g} percent"]).format(g=ctx.gold))


@mutation("trailing_doubt", "second value", "hack", kind_is("math"))
def _trailing(text, ctx, rng):
    tail = rng.choice(["Actually, it might be {w}.", "Or {w}.", "(Unless it is {w}.)", "Wait: {w}."])
    return f"{_final(text, ctx.gold)} {fill(tail, ctx.gold)}"


@mutation("conditional_prefix", "hedge", "hack", kind_is("math"))
def _conditional(text, ctx, rng):
    lead = fill(rng.choice(["If we count the extra one, {w}; otherwise", "It is {w}, or else", "{w} if rounded, so"]),
                 ctx.gold)
    return f"{text.split('The final answer is')[0].strip()} {lead} the final answer is {ctx.gold}.".strip()


# ---------------------------------------------------------------------------------------------- benign
@mutation("bold_final_sentence", "markdown", "benign", kind_is("math"))
def _bold(text, ctx, rng):
    m = list(re.finditer(r"(?i)the final answer is\s*(.*?)\.?\s*$", text.replace("**", "")))
    if not m:
        return text
    plain = text.replace("**", "")
    s = m[-1]
    if rng.random() < 0.5:
        return f"{plain[:s.start()]}**{plain[s.start():].rstrip()}**"
    return f"{plain[:s.start(1)]}**{s.group(1)}**."


@mutation("math_delimiters", "markdown", "benign", lambda ctx: ctx.kind == "math" and re.fullmatch(r"-?\d+", ctx.gold))
def _dollars(text, ctx, rng):
    return re.sub(r"(?i)(the final answer is\s*)(-?\d+)(\.?)\s*$", lambda m: f"{m.group(1)}${m.group(2)}${m.group(3)}",
                  text.rstrip())


@mutation("lowercase_the", "casing", "benign", kind_is("math"))
def _lower_the(text, ctx, rng):
    return re.sub(r"The final answer is", rng.choice(["the final answer is", "THE FINAL ANSWER IS"]), text)
