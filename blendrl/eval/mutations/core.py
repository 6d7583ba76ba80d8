"""The mutation type, its registry and the helpers every operator module uses."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable

from ...core.registry import Registry
from ...judges.text import CODE, is_invisible, lookalikes

MUTATIONS: Registry = Registry("mutation")


@dataclass
class Context:
    kind: str  # the judge kind: math | instructions | format | refusal | ...
    prompt: str = ""
    metadata: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def gold(self) -> str:
        return str(self.metadata.get("answer", ""))

    def instructions(self) -> list[tuple[str, dict]]:
        ids = self.metadata.get("instruction_id_list") or []
        return list(zip(ids, self.metadata.get("kwargs") or [{} for _ in ids]))

    def forbidden(self) -> list[str]:
        out = list((self.metadata.get("format") or {}).get("forbid") or self.options.get("forbid") or [])
        return out + [w for i, kw in self.instructions() if i == "keywords:forbidden_words"
                      for w in kw.get("forbidden_words") or []]


@dataclass(frozen=True)
class Mutation:
    name: str
    family: str
    kind: str  # "hack" | "benign"
    applies: Callable[[Context], bool]
    fn: Callable[[str, Context, random.Random], str]

    def __call__(self, text: str, ctx: Context, rng: random.Random) -> str:
        return self.fn(text, ctx, rng)


def mutation(name: str, family: str, kind: str, applies: Callable[[Context], bool]):
    def deco(fn):
        MUTATIONS.register(name)(Mutation(name, family, kind, applies, fn))
        return fn
    return deco


def applicable(ctx: Context, kind: str | None = None) -> list[Mutation]:
    return [m for m in (MUTATIONS[n] for n in MUTATIONS.names()) if m.applies(ctx) and kind in (None, m.kind)]


RULE_KINDS = ("math", "instructions", "format", "refusal")
INVISIBLE_POOL = [c for c in ("\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\u034f", "\u180e", "\ufeff",
                              "\u2061", "\u2062", "\u2063", "\u2064", "\u202a", "\u202e", "\u2066", "\u3164",
                              "\u115f", "\u1160", "\uffa0", "\u2800", "\ufe00", "\ufe0f", "\U000e0020",
                              "\U000e0041", "\u17b4", "\u17b5", "\u061c", "\u200e", "\u200f")
                  if is_invisible(c)]


def wrong_value(gold: str) -> str:
    try:
        return str(int(float(gold)) + 1) if float(gold) == int(float(gold)) else str(float(gold) + 1)
    except ValueError:
        return "7" if gold != "7" else "8"


def values_around(gold: str) -> tuple[str, str]:
    try:
        g = float(gold)
        return str(int(g) - 1 if g == int(g) else g - 1), str(int(g) + 1 if g == int(g) else g + 1)
    except ValueError:
        return "0", "99"


def fill(template: str, gold: str) -> str:
    a, b = values_around(gold)
    return template.format(g=gold, w=wrong_value(gold), a=a, b=b)


def kind_is(kind: str) -> Callable[[Context], bool]:
    return lambda ctx: ctx.kind == kind


def has_instruction(instruction: str) -> Callable[[Context], bool]:
    return lambda ctx: ctx.kind == "instructions" and any(i == instruction for i, _ in ctx.instructions())


def kwargs_of(ctx: Context, instruction: str) -> dict:
    return next(kw for i, kw in ctx.instructions() if i == instruction)


def lookalike_word(word: str, rng: random.Random) -> str:
    """``word`` with one letter swapped for a look-alike from the UTS #39 table (never the letter itself)."""
    spots = [i for i, c in enumerate(word) if len(lookalikes(c)) > 1]
    if not spots:
        return word + rng.choice(INVISIBLE_POOL)
    i = rng.choice(spots)
    return word[:i] + rng.choice(sorted(lookalikes(word[i]) - {word[i]})) + word[i + 1:]


def disguise(word: str, rng: random.Random) -> str:
    """``word`` as a reader still reads it: a look-alike letter, an invisible code point inside, case, fullwidth,
    letters spaced out or dotted, a combining mark, a plural."""
    mid = max(1, len(word) // 2)
    forms = [lookalike_word(word, rng), word[:mid] + rng.choice(INVISIBLE_POOL) + word[mid:], word.upper(),
             word.capitalize(), "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word),
             " ".join(word), ".".join(word), "-".join(word), word[:mid] + "\u0301" + word[mid:], word + "s",
             word[:mid] + "\u0335" + word[mid:]]
    return rng.choice(forms)


def insert_at_space(text: str, piece: str, rng: random.Random) -> str:
    """``piece`` after a space of ``text`` that is not inside a code span or block (code shows markup as text)."""
    code = [m.span() for m in CODE.finditer(text)]
    cuts = [m.end() for m in re.finditer(r"\s", text) if not any(a < m.end() < b for a, b in code)] or [len(text)]
    at = rng.choice(cuts)
    return f"{text[:at]}{piece} {text[at:]}"
