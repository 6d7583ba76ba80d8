"""Strict checkers of keywords, language, case, lengths and content."""
from __future__ import annotations

import re

from ..text import fold, languages, lookalikes, sentences, word_bounds, words
from .base import DIVIDER, compare, exact_count, has_words, loose_count, strict


# ---------------------------------------------------------------------------------------------- keywords
@strict("keywords:existence")
def _existence(r: str, kw: dict, prompt: str) -> str | None:
    missing = [k for k in kw["keywords"] if exact_count(r, k) == 0]
    return f"keyword {missing[0]!r} is not written as a word" if missing else None


@strict("keywords:frequency")
def _frequency(r: str, kw: dict, prompt: str) -> str | None:
    return compare(exact_count(r, kw["keyword"]), loose_count(r, kw["keyword"]), kw["relation"],
                    kw["frequency"], f"times {kw['keyword']!r}")


@strict("keywords:forbidden_words")
def _forbidden(r: str, kw: dict, prompt: str) -> str | None:
    found = [w for w in kw["forbidden_words"] if loose_count(r, w)]
    return f"forbidden word {found[0]!r} (or a look-alike of it)" if found else None


@strict("keywords:letter_frequency")
def _letters(r: str, kw: dict, prompt: str) -> str | None:
    letter = kw["letter"].casefold()
    exact = sum(w.text.casefold().count(letter) for w in words(r) if sum(c.isalpha() for c in w.text) >= 2)
    alike = {c.casefold() for c in lookalikes(letter) | lookalikes(letter.upper())}
    loose = sum(1 for c in fold(r) if c in alike) + sum(1 for c in r if c.casefold() in alike and not c.isascii())
    return compare(exact, max(exact, loose), kw["let_relation"], kw["let_frequency"], f"letters {letter!r}")


# ---------------------------------------------------------------------------------------------- language and case
LANGUAGE_CONFIDENCE = 0.9


def _language(text: str) -> tuple[str, float]:
    probs = languages(text)
    return max(probs.items(), key=lambda kv: kv[1]) if probs else ("", 0.0)


def _is_language(text: str, language: str) -> str | None:
    letters = sum(c.isalpha() for c in text)
    if letters < 20:
        return f"only {letters} letters: too little text to tell its language"
    lang, prob = _language(text)
    if lang.split("-")[0] != language.split("-")[0] or prob < LANGUAGE_CONFIDENCE:
        return f"language {lang or 'undecidable'} (p={prob:.2f}), not clearly {language}"
    return None


@strict("language:response_language")
def _response_language(r: str, kw: dict, prompt: str) -> str | None:
    if whole := _is_language(r, kw["language"]):
        return whole
    for sent in sentences(r):  # every sentence long enough to tell, not only the whole
        if sum(c.isalpha() for c in sent) >= 15 and (_language(sent)[0].split("-")[0]
                                                      != kw["language"].split("-")[0]):
            return f"a sentence in {_language(sent)[0]}: {sent[:50]!r}"
    return None


@strict("change_case:english_capital")
def _all_capitals(r: str, kw: dict, prompt: str) -> str | None:
    if any(c.islower() or "SMALL" in _name(c) for c in r if c.isalpha()):
        return "a letter that is not a capital"
    return _is_language(r.lower(), "en")


@strict("change_case:english_lowercase")
def _all_lowercase(r: str, kw: dict, prompt: str) -> str | None:
    if odd := next((c for c in r if c.isalpha() and (not c.islower() or "CAPITAL" in _name(c))), None):
        return f"a capital or small-capital letter ({odd!r})"
    return _is_language(r, "en")


def _name(c: str) -> str:
    import unicodedata

    return unicodedata.name(c, "")


@strict("change_case:capital_word_frequency")
def _capital_words(r: str, kw: dict, prompt: str) -> str | None:
    ws = [w.text for w in words(r)]
    fewest = sum(1 for w in ws if sum(c.isalpha() for c in w) >= 2 and w.isupper() and w.isascii())
    def capital(c: str) -> bool:
        return c.isupper() or "SMALL CAPITAL" in _name(c)

    most = sum(1 for w in ws if any(capital(c) for c in w) and not any(c.islower() and not capital(c) for c in w))
    return compare(fewest, most, kw["capital_relation"], kw["capital_frequency"], "capitalised words")


# ---------------------------------------------------------------------------------------------- lengths
@strict("length_constraints:number_words")
def _number_words(r: str, kw: dict, prompt: str) -> str | None:
    fewest, most = word_bounds(r)
    return compare(fewest, most, kw["relation"], kw["num_words"], "words")


@strict("length_constraints:number_sentences")
def _number_sentences(r: str, kw: dict, prompt: str) -> str | None:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    icu_sents, punkt = sentences(r), [s for s in PunktSentenceTokenizer().tokenize(r) if s.strip()]
    marks = len(re.findall(r"[.!?。！？]+(?=\s|$)", r))
    fewest = min(sum(has_words(s, 2) for s in icu_sents), sum(has_words(s, 2) for s in punkt))
    most = max(len(icu_sents), len(punkt), marks)
    return compare(fewest, most, kw["relation"], kw["num_sentences"], "sentences")


@strict("length_constraints:number_paragraphs")
def _number_paragraphs(r: str, kw: dict, prompt: str) -> str | None:
    if odd := next((d.strip() for d in DIVIDER.findall(r) if d.strip() != "***"), None):
        return f"a divider that is not '***' ({odd!r})"
    lines = r.split("\n")
    if any("***" in line and line.strip() != "***" for line in lines):
        return "'***' inside a line: not a paragraph divider on its own line"
    parts = re.split(r"^\s*\*\*\*\s*$", r, flags=re.MULTILINE)
    if any(not has_words(p) for p in parts):
        return "an empty paragraph between dividers"
    if any(re.search(r"\S\s*\n\s*\n\s*\S", p) for p in parts):
        return "a blank line inside a paragraph: a reader sees more paragraphs than the dividers make"
    n = kw["num_paragraphs"]
    return None if len(parts) == n else f"{len(parts)} paragraphs, {n} required"


def _paragraphs(r: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", r.strip())]


@strict("length_constraints:nth_paragraph_first_word")
def _first_word(r: str, kw: dict, prompt: str) -> str | None:
    paras = _paragraphs(r)
    if any(not has_words(p) for p in paras):
        return "an empty paragraph"
    if len(paras) != kw["num_paragraphs"]:
        return f"{len(paras)} paragraphs, {kw['num_paragraphs']} required"
    nth = kw["nth_paragraph"]
    if not 1 <= nth <= len(paras):
        return f"no paragraph {nth}"
    first = words(paras[nth - 1])
    want = kw["first_word"].strip().casefold()
    lead = paras[nth - 1][:first[0].start].strip() if first else ""
    if not first or first[0].text.casefold() != want or re.search(r"\w", lead):
        return f"paragraph {nth} does not start with the word {kw['first_word']!r}"
    return None


# ---------------------------------------------------------------------------------------------- content
PLACEHOLDER = re.compile(r"\[([^\[\]\n]*)\](?!\()")


@strict("detectable_content:number_placeholders")
def _placeholders(r: str, kw: dict, prompt: str) -> str | None:
    names = {c.strip().casefold() for c in PLACEHOLDER.findall(r) if has_words(c)}
    empty = [c for c in PLACEHOLDER.findall(r) if not has_words(c)]
    if empty:
        return f"an empty or wordless placeholder [{empty[0]}]"
    n = kw["num_placeholders"]
    return None if len(names) >= n else f"{len(names)} distinct placeholders, at least {n} required"


@strict("detectable_content:postscript")
def _postscript(r: str, kw: dict, prompt: str) -> str | None:
    marker = kw["postscript_marker"].strip()
    letters = [c for c in marker.casefold() if c.isalpha()]
    loose = re.compile(r"(?<![A-Za-z])" + r"\W{0,2}".join(map(re.escape, letters)) + r"(?![A-Za-z])", re.IGNORECASE)
    found = list(loose.finditer(fold(r)))
    if len(found) != 1:
        return f"{len(found)} postscript markers like {marker!r} (exactly one, at the end)"
    exact = list(re.finditer(r"(?:^|\n)[ \t]*" + re.escape(marker) + r"(?=\s)", r, re.IGNORECASE))
    if len(exact) != 1:
        return f"no line starting with the exact marker {marker!r}"
    body = r[exact[0].end():]
    if not has_words(r[:exact[0].start()]):
        return "nothing before the postscript: it does not follow a response"
    if re.search(r"\n\s*\n\s*\S", body):
        return "text after the postscript: it is not at the end"
    if not has_words(body):
        return "an empty postscript"
    return None
