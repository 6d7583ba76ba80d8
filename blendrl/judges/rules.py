"""Rule judges: format and length, and missing EOS (the refusal judge is :mod:`~blendrl.judges.refusal`).

The format judge screens the response first (an invisible code point or a mixed-script word is a violation naming
the character: :func:`~blendrl.judges.text.screen`), counts words the way least favourable to the response
(:func:`~blendrl.judges.text.word_bounds`: ``min_words`` counts the fewest words a reader could see, ``max_words``
the most), matches ``forbid`` case- and look-alike-insensitively (:func:`~blendrl.judges.text.loose_key`, letters
spaced out count too), and fails degenerate repetition (``max_repetition``, the share of repeated word trigrams:
"yes yes yes …" padding past ``min_words`` is a violation, not a pass)."""
from __future__ import annotations

import re
import unicodedata

from ..core.registries import JUDGES
from ..core.types import Sample
from .base import RuleJudge, Verdict
from .signals import repetition
from .text import fold, loose_find, screen, spaced_out, word_bounds


def forbidden_in(text: str, phrase: str) -> bool:
    """Does anything that looks like ``phrase`` occur in ``text`` (as a substring of the loose form, letters spaced
    out or not)?"""
    return any(loose_find(form, phrase) for form in (text, spaced_out(fold(text))))


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
    unknown = set(rules) - {"regex", "max_words", "min_words", "max_chars", "forbid", "max_repetition"}
    if unknown:
        raise ValueError(f"{where}: unknown format rules {sorted(unknown)}")


@JUDGES.register("format")
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
        chars = max(len(text), len(unicodedata.normalize("NFKC", text)))  # ligatures count as their letters
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
