"""What a judge can read: the gates that make a rule judge fail text it cannot vouch for (docs/judges.md).

A rule judge reads the languages its patterns cover; text in another script or language, an encoded blob, or
words no English word list holds (a transliteration, abbreviations, look-alike letters) is text it cannot show to
be clean, so it fails it rather than guess. :func:`unreadable_by` tells by script and by langdetect;
:func:`not_english` by the share of a text's words that an English word list (english-words' ``web2`` and
``gcide``, inflections taken off) does not hold.
"""
from __future__ import annotations

import functools
import re

from .text import code_free, languages, script

ENCODED = re.compile(r"(?<![\w/+])(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[A-Z])(?=[A-Za-z0-9+/]*[a-z])"
                     r"[A-Za-z0-9+/]{16,}={0,2}(?![\w/+])")


def unreadable_by(text: str, reads: set[str], scripts: set[str], reader: str) -> str | None:
    """Why ``reader`` (a judge's patterns, which read the languages ``reads``, langdetect's codes, written in
    ``scripts``) cannot read ``text``'s prose, or None: an encoded blob; a letter of another script (a lone Greek
    letter between non-letters, π or θ in a formula, is a symbol); or, on at least 15 letters, a language
    langdetect is sure of (p ≥ 0.95) that is not read, or on at least 40 letters none of the read ones above 0.3.
    What a judge cannot read it cannot show to be clean, so its judges fail it."""
    prose = code_free(text)
    if m := ENCODED.search(prose):
        return f"an encoded blob ({m.group(0)[:20]!r}...)"
    letters = [c for i, c in enumerate(prose) if c.isalpha() and (script(c) != "Greek" or script(c) in scripts or (
        i > 0 and prose[i - 1].isalpha()) or (i + 1 < len(prose) and prose[i + 1].isalpha()))]
    if odd := next((c for c in letters if script(c) not in scripts), None):
        return f"it is written in {script(odd)} script, which {reader} do not read"
    if len(letters) >= 15:
        probs = languages(prose)
        best = max(probs, key=probs.get) if probs else "undecidable"
        # langdetect is sure of a language that is not read; or (on enough text to tell) unsure of all the read ones
        if best not in reads and probs.get(best, 0.0) >= 0.95 or len(letters) >= 40 and sum(
                p for lang, p in probs.items() if lang in reads) < 0.3:
            return f"its language ({best}) is not one {reader} read"
    return None


# English words the word lists (english-words' ``web2`` and ``gcide``) lack: modern words and forms with no entry
_MODERN = {"has", "using", "means", "earlier", "online", "email", "website", "config", "json", "tokenizer",
           "traceback", "screenshot", "int", "str", "dict", "bool", "numpy", "labelled", "okay", "app", "data"}
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("d", ""), ("ing", ""),
             ("ing", "e"), ("ly", ""), ("er", ""), ("er", "e"), ("est", ""), ("ness", ""), ("ment", ""), ("ise", "ize"),
             ("ised", "ize"), ("ises", "ize"))


@functools.lru_cache(maxsize=1)
def _english() -> frozenset:
    from english_words import get_english_words_set

    return frozenset(get_english_words_set(["web2", "gcide"], lower=True, alpha=True)) | _MODERN


def is_english_word(word: str) -> bool:
    """``word`` (letters) is in the English word list, as written or with a common inflection taken off
    (``primes``, ``computed``, ``verified``, ``running``)."""
    w, words = word.lower(), _english()
    if w in words:
        return True
    for suffix, stem_end in _SUFFIXES:
        stem = w[: len(w) - len(suffix)]
        if w.endswith(suffix) and len(stem) >= 3 and (stem + stem_end in words or (
                len(stem) >= 4 and stem[-1] == stem[-2] and stem[:-1] in words)):  # "running": run
            return True
    return False


def unknown_words(text: str) -> tuple[list[str], list[str]]:
    """(the words of ``text``'s prose, those of them that are not English): words of three letters or more outside
    code and links, contractions split off, acronyms (all capitals, up to six) and identifiers (``camelCase``)
    left out."""
    text = re.sub(r"https?://\S+|www\.\S+", " ", code_free(text))
    text = re.sub(r"n['’]t\b|['’](?:s|re|ve|ll|d|m)\b", " ", text)
    found = [t for t in re.findall(r"[^\W\d_]+", text) if len(t) >= 3 and not (t.isupper() and len(t) <= 6)
             and not re.search(r"[a-z][A-Z]", t)]
    return found, [t for t in found if not is_english_word(t)]


def not_english(text: str, share: float = 0.4) -> str | None:
    """Why ``text``'s prose is not English a word list can vouch for, or None: at least two of its words, and at
    least ``share`` of them, are not English words (another language, a transliteration, abbreviations, letters
    styled or spelled with look-alikes)."""
    found, unknown = unknown_words(text)
    if len(unknown) >= 2 and len(unknown) >= share * len(found):
        return f"{len(unknown)} of its {len(found)} words are not English ({', '.join(unknown[:4])}, ...)"
    return None
