"""Rule judges: format and length, and missing EOS (the refusal judge is :mod:`~blendrl.judges.refusal`).

The format judge screens the response first (an invisible code point or a mixed-script word is a violation naming
the character: :func:`~blendrl.judges.text.screen`), counts words the way least favourable to the response
(:func:`~blendrl.judges.text.word_bounds`: ``min_words`` counts the fewest words a reader could see, ``max_words``
the most), matches ``forbid`` case- and look-alike-insensitively (:func:`~blendrl.judges.text.loose_key`, letters
spaced out count too), and fails degenerate repetition (``max_repetition``, the share of repeated word trigrams:
"yes yes yes …" padding past ``min_words`` is a violation, not a pass)."""
from __future__ import annotations

import re

from .registry import JUDGES
from ..core.types import Sample
from .base import RuleJudge, Verdict
from .signals import repetition
from .text import (SPACED_RUN, fold, graphemes, loose_find, loose_key, screen, spaced_out, spaced_out_evenly,
                   word_bounds)


EMPHASIS = re.compile(r"[*_~`]+")  # markdown emphasis and code marks: not part of what a reader reads
LEET = str.maketrans("4@3$570", "aaessto")  # leetspeak (1 needs none: the loose key reads 1, l and I alike)


def _letters(s: str) -> str:
    return re.sub(r"[\W_]+", "", s)


def forbidden_in(text: str, phrase: str) -> bool:
    """Does anything that looks like ``phrase`` occur in ``text``, by loose key, letters spaced out or not, across
    any whitespace and emphasis marks? A phrase of several words, or one shorter than four letters, must match
    whole words, plurals included ("as an AI" is not in "was an AI" or "as an aide"; "no" is not in "snow", but is
    in "nos"), or be one word of the text with its separators dropped ("as_an_AI"); a longer single word matches
    inside words too (glued compounds: "sorrynotsorry")."""
    phrase = " ".join(phrase.split())
    plain = " ".join(EMPHASIS.sub(" ", text).split())  # one space between words: line breaks are spaces here
    folded, leet = fold(plain), plain.translate(LEET)
    whole = " " in phrase or len(loose_key(phrase)) < 4
    forms = (text, plain, leet, spaced_out(folded), spaced_out_evenly(folded))
    spellings = [phrase + end for end in ("", "s", "es", "'s")] if whole else [phrase]  # plurals count
    if any(loose_find(form, p, whole_words=whole) for form in forms for p in spellings):
        return True
    # single characters spaced out ("i n o"): a reader may see "I no"
    if any(loose_find(_letters(m.group(0)), phrase.replace(" ", "")) for m in SPACED_RUN.finditer(folded)):
        return True
    glued = _letters(loose_key(phrase))
    if " " in phrase and any(_letters(loose_key(w)) == glued for w in text.split()):
        return True
    # a word split in two by a space or a hyphen ("pass word", "pass-\nword", which `plain` made "pass- word")
    pieces = re.split(r"(?<=\w)(?:[ \t]+|-[ \t]*)(?=\w)", leet)
    return any(_letters(loose_key(a + b)) in (glued, glued + "s") for a, b in zip(pieces, pieces[1:])
               if a.split() and b.split())


def _check_rules(rules: dict, where: str) -> None:
    """A rule the judge cannot apply as meant is an error, never a rule that always passes."""
    rep = rules.get("max_repetition")
    if rep is not None and not 0.0 <= float(rep) < 1.0:
        raise ValueError(f"{where}: max_repetition is the share of repeated word trigrams, in [0, 1); got {rep!r}")
    for key in ("min_words", "max_words", "max_chars"):
        if rules.get(key) is not None and (not isinstance(rules[key], int) or rules[key] < 0):
            raise ValueError(f"{where}: {key} must be a non-negative integer, got {rules[key]!r}")
    if rules.get("regex"):
        try:
            re.compile(rules["regex"])
        except re.error as exc:
            raise ValueError(f"{where}: regex {rules['regex']!r} does not compile ({exc})") from exc
    forbid = rules.get("forbid") or []
    if not isinstance(forbid, list) or not all(isinstance(f, str) and f.strip() for f in forbid):
        raise ValueError(f"{where}: forbid must be a list of non-empty strings, got {forbid!r} (quote YAML's "
                         f"yes/no/on/off, which YAML reads as booleans)")
    unknown = set(rules) - {"regex", "max_words", "min_words", "max_chars", "forbid", "max_repetition"}
    if unknown:
        raise ValueError(f"{where}: unknown format rules {sorted(unknown)}")


def _format_check(node, root=None) -> None:
    """The format judge's options, checked before any model loads (the builder checks them again)."""
    try:
        _check_rules({"forbid": [], **node.options}, f"judge '{node.name or node.kind}'")
    except ValueError as exc:
        raise ValueError(f"options: {exc}") from None


@JUDGES.register("format", check=_format_check)
def format_judge(name: str = "format", regex: str | None = None, max_words: int | None = None,
                 min_words: int | None = None, max_chars: int | None = None, forbid: list[str] | None = None,
                 max_repetition: float | None = 0.5):
    r"""Format and length rules, all optional: ``regex`` must be found (re.search, DOTALL and ASCII: ``\d`` is 0-9
    only, so fullwidth or Arabic-Indic digits do not pass for digits), ``min_words`` ≤ words ≤
    ``max_words`` (see the module doc), at most ``max_chars`` characters, nothing that looks like one of the
    ``forbid`` phrases, at most ``max_repetition`` of the word trigrams repeated (None: no limit). Options may also
    come from the prompt's ``metadata['format']`` dict, which overrides these."""
    defaults = {"regex": regex, "max_words": max_words, "min_words": min_words, "max_chars": max_chars,
                "forbid": forbid or [], "max_repetition": max_repetition}
    _check_rules(defaults, f"judge '{name}'")

    def check(s: Sample) -> Verdict:
        rules = {**defaults, **(s.metadata.get("format") or {})}
        if s.metadata.get("format"):
            _check_rules(rules, f"judge '{name}': prompt {s.where or '?'}: metadata 'format'")
        text = s.response
        if reason := screen(text):
            return Verdict(False, reason)
        fewest, most = word_bounds(text)
        if rules["regex"] and not re.search(rules["regex"], text, re.DOTALL | re.ASCII):
            return Verdict(False, f"does not match {rules['regex']!r}")
        if rules["max_words"] is not None and most > rules["max_words"]:
            return Verdict(False, f"{most} words > {rules['max_words']}")
        if rules["min_words"] is not None and fewest < rules["min_words"]:
            return Verdict(False, f"{fewest} words < {rules['min_words']}")
        chars = graphemes(text)  # what a reader sees: a ligature as its letters, an accent with its letter
        if rules["max_chars"] is not None and chars > rules["max_chars"]:
            return Verdict(False, f"{chars} chars > {rules['max_chars']}")
        for bad in rules["forbid"]:
            if forbidden_in(text, bad):
                return Verdict(False, f"contains forbidden {bad!r} (or a look-alike)")
        if rules["max_repetition"] is not None and (rep := repetition(fold(text))) > rules["max_repetition"]:
            return Verdict(False, f"{rep:.0%} of its word trigrams repeat (> {rules['max_repetition']:.0%})")
        return Verdict(True)

    return RuleJudge(name, check)


@JUDGES.register("eos")
def eos_judge(name: str = "eos"):
    """Violated when the response hit ``max_new_tokens`` without emitting EOS (a truncated answer)."""
    return RuleJudge(name, lambda s: Verdict(True) if s.finished else Verdict(False, "no EOS before max_new_tokens"))
