"""The registry of strict checkers and the counting helpers they share."""
from __future__ import annotations

import re
from typing import Callable

from ..text import fold, loose_find, loose_key, spaced_out, word_bounds, words

Check = Callable[[str, dict, str], "str | None"]
STRICT: dict[str, Check] = {}


def strict(instruction_id: str):
    def register(fn: Check) -> Check:
        STRICT[instruction_id] = fn
        return fn
    return register


def at_least(relation: str) -> bool:
    if relation not in ("at least", "less than"):
        raise ValueError(f"relation must be 'at least' or 'less than', got {relation!r}")
    return relation == "at least"


def compare(n_fewest: int, n_most: int, relation: str, threshold: int, what: str) -> str | None:
    if at_least(relation):
        return None if n_fewest >= threshold else f"{n_fewest} {what} (at least {threshold} needed)"
    return None if n_most < threshold else f"{n_most} {what} (fewer than {threshold} needed)"


def tokens(text: str) -> list[str]:
    return [w.text.casefold() for w in words(text)]


def has_words(text: str, n: int = 1) -> bool:
    return word_bounds(text)[0] >= n


def exact_count(text: str, phrase: str) -> int:
    """How often ``phrase`` (one or more words) occurs as whole words, as written (case-folded), plurals included."""
    toks, want = tokens(text), tokens(phrase)
    if not want:
        return 0
    forms = {want[-1], want[-1] + "s", want[-1] + "es"}
    return sum(toks[i:i + len(want) - 1] == want[:-1] and toks[i + len(want) - 1] in forms
               for i in range(len(toks) - len(want) + 1))


def loose_count(text: str, phrase: str) -> int:
    """How often anything that looks like ``phrase`` occurs: loose keys, spaced-out letters, glued compounds (a
    phrase of four or more characters inside a longer word)."""
    key = loose_key(phrase).replace(" ", "")
    if not key:
        return 0
    ws = [w.text for w in words(spaced_out(fold(text)))]
    joined = ["".join(ws[i:i + n]) for n in (1, 2, 3) for i in range(len(ws) - n + 1)] if " " in phrase.strip() \
        else ws
    if len(key) >= 4:
        return sum(loose_find(w, phrase.replace(" ", "")) for w in joined)
    return sum(loose_key(w) in (key, key + "s", key + "es", key + "'s") for w in joined)


DIVIDER = re.compile(r"^\s*(?:[-*_=~]\s*){3,}$", re.MULTILINE)  # a thematic break line (---, ***, ___)
