"""Strict IFEval: for each of IFEval's 25 instruction types, what a passing response looks like, failing closed
where the reference scorer waves a response through.

Each checker takes ``(response, kwargs, prompt)`` and returns the reason of a violation, or None. The instruction
judge's ``strict`` mode runs a checker *and* IFEval's own check, so strict can only be stricter than the reference.
Every checker reads the response as written (the judge has already screened it for invisible code points and
mixed-script words, :func:`~blendrl.judges.text.screen`). Counting rules count the reader's way that is least
favourable to the response (:func:`~blendrl.judges.text.word_bounds`): "at least N words" counts the fewest words a
reader could see, "less than N" the most. A requirement is met only by the visible, exact spelling; a prohibition
is broken by any spelling that looks like it (:func:`~blendrl.judges.text.loose_key`).
"""
from __future__ import annotations

import json
import re
from typing import Callable

from .text import fold, lookalikes, loose_key, sentences, spaced_out, word_bounds, words

Check = Callable[[str, dict, str], "str | None"]
STRICT: dict[str, Check] = {}


def strict(instruction_id: str):
    def register(fn: Check) -> Check:
        STRICT[instruction_id] = fn
        return fn
    return register


def _at_least(relation: str) -> bool:
    if relation not in ("at least", "less than"):
        raise ValueError(f"relation must be 'at least' or 'less than', got {relation!r}")
    return relation == "at least"


def _compare(n_fewest: int, n_most: int, relation: str, threshold: int, what: str) -> str | None:
    if _at_least(relation):
        return None if n_fewest >= threshold else f"{n_fewest} {what} (at least {threshold} needed)"
    return None if n_most < threshold else f"{n_most} {what} (fewer than {threshold} needed)"


def _tokens(text: str) -> list[str]:
    return [w.text.casefold() for w in words(text)]


def _has_words(text: str, n: int = 1) -> bool:
    return word_bounds(text)[0] >= n


def _exact_count(text: str, phrase: str) -> int:
    """How often ``phrase`` (one or more words) occurs as whole words, as written (case-folded), plurals included."""
    toks, want = _tokens(text), _tokens(phrase)
    if not want:
        return 0
    forms = {want[-1], want[-1] + "s", want[-1] + "es"}
    return sum(toks[i:i + len(want) - 1] == want[:-1] and toks[i + len(want) - 1] in forms
               for i in range(len(toks) - len(want) + 1))


def _loose_count(text: str, phrase: str) -> int:
    """How often anything that looks like ``phrase`` occurs: loose keys, spaced-out letters, glued compounds (a
    phrase of four or more characters inside a longer word)."""
    key = loose_key(phrase).replace(" ", "")
    if not key:
        return 0
    keys = [loose_key(w.text) for w in words(spaced_out(fold(text)))]
    joined = ["".join(keys[i:i + n]) for n in (1, 2, 3) for i in range(len(keys) - n + 1)] if " " in phrase.strip() \
        else keys
    return sum(k.count(key) if len(key) >= 4 else k in (key, key + "s", key + "es", key + "'s") for k in joined)


# ---------------------------------------------------------------------------------------------- keywords
@strict("keywords:existence")
def _existence(r: str, kw: dict, prompt: str) -> str | None:
    missing = [k for k in kw["keywords"] if _exact_count(r, k) == 0]
    return f"keyword {missing[0]!r} is not written as a word" if missing else None


@strict("keywords:frequency")
def _frequency(r: str, kw: dict, prompt: str) -> str | None:
    return _compare(_exact_count(r, kw["keyword"]), _loose_count(r, kw["keyword"]), kw["relation"],
                    kw["frequency"], f"times {kw['keyword']!r}")


@strict("keywords:forbidden_words")
def _forbidden(r: str, kw: dict, prompt: str) -> str | None:
    found = [w for w in kw["forbidden_words"] if _loose_count(r, w)]
    return f"forbidden word {found[0]!r} (or a look-alike of it)" if found else None


@strict("keywords:letter_frequency")
def _letters(r: str, kw: dict, prompt: str) -> str | None:
    letter = kw["letter"].casefold()
    exact = sum(w.text.casefold().count(letter) for w in words(r) if sum(c.isalpha() for c in w.text) >= 2)
    alike = {c.casefold() for c in lookalikes(letter) | lookalikes(letter.upper())}
    loose = sum(1 for c in fold(r) if c in alike) + sum(1 for c in r if c.casefold() in alike and not c.isascii())
    return _compare(exact, max(exact, loose), kw["let_relation"], kw["let_frequency"], f"letters {letter!r}")


# ---------------------------------------------------------------------------------------------- language and case
LANGUAGE_CONFIDENCE = 0.9


def _language(text: str) -> tuple[str, float]:
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return "", 0.0
    return best.lang, best.prob


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
    return _compare(fewest, most, kw["capital_relation"], kw["capital_frequency"], "capitalised words")


# ---------------------------------------------------------------------------------------------- lengths
@strict("length_constraints:number_words")
def _number_words(r: str, kw: dict, prompt: str) -> str | None:
    fewest, most = word_bounds(r)
    return _compare(fewest, most, kw["relation"], kw["num_words"], "words")


@strict("length_constraints:number_sentences")
def _number_sentences(r: str, kw: dict, prompt: str) -> str | None:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    icu_sents, punkt = sentences(r), [s for s in PunktSentenceTokenizer().tokenize(r) if s.strip()]
    marks = len(re.findall(r"[.!?。！？]+(?=\s|$)", r))
    fewest = min(sum(_has_words(s, 2) for s in icu_sents), sum(_has_words(s, 2) for s in punkt))
    most = max(len(icu_sents), len(punkt), marks)
    return _compare(fewest, most, kw["relation"], kw["num_sentences"], "sentences")


DIVIDER = re.compile(r"^\s*(?:[-*_=~]\s*){3,}$", re.MULTILINE)


@strict("length_constraints:number_paragraphs")
def _number_paragraphs(r: str, kw: dict, prompt: str) -> str | None:
    if odd := next((d.strip() for d in DIVIDER.findall(r) if d.strip() != "***"), None):
        return f"a divider that is not '***' ({odd!r})"
    lines = r.split("\n")
    if any("***" in line and line.strip() != "***" for line in lines):
        return "'***' inside a line: not a paragraph divider on its own line"
    parts = re.split(r"^\s*\*\*\*\s*$", r, flags=re.MULTILINE)
    if any(not _has_words(p) for p in parts):
        return "an empty paragraph between dividers"
    n = kw["num_paragraphs"]
    return None if len(parts) == n else f"{len(parts)} paragraphs, {n} required"


def _paragraphs(r: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", r.strip())]


@strict("length_constraints:nth_paragraph_first_word")
def _first_word(r: str, kw: dict, prompt: str) -> str | None:
    paras = _paragraphs(r)
    if any(not _has_words(p) for p in paras):
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
    names = {c.strip().casefold() for c in PLACEHOLDER.findall(r) if _has_words(c)}
    empty = [c for c in PLACEHOLDER.findall(r) if not _has_words(c)]
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
    if re.search(r"\n\s*\n\s*\S", body):
        return "text after the postscript: it is not at the end"
    if not _has_words(body):
        return "an empty postscript"
    return None


# ---------------------------------------------------------------------------------------------- formats
BULLET = re.compile(r"^\s*[*-]\s+(.*\S.*)$", re.MULTILINE)


def _bullet_like(line: str) -> bool:
    s = line.lstrip()
    if not s or s.startswith("**") and not s.startswith("** "):
        return False
    markers = lookalikes("-") | lookalikes("*") | set("+•◦‣⁃▪▫●○■□◆◇►▸–—·→")
    return s[0] in markers or bool(re.match(r"\d+[.)]\s", s))


@strict("detectable_format:number_bullet_lists")
def _bullets(r: str, kw: dict, prompt: str) -> str | None:
    if DIVIDER.search(r):
        return "a horizontal rule line (---, ***): not a bullet point"
    strict_items = [m for m in BULLET.findall(r) if _has_words(m)]
    alike = [line for line in r.split("\n") if _bullet_like(line)]
    n = kw["num_bullets"]
    if len(alike) != len(strict_items):
        return f"{len(alike)} lines look like list items, {len(strict_items)} are '* ' or '- ' items with words"
    return None if len(strict_items) == n else f"{len(strict_items)} bullet points, exactly {n} required"


OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


@strict("detectable_format:constrained_response")
def _constrained(r: str, kw: dict, prompt: str) -> str | None:
    loose = re.findall(r"my\W+answer\W+is\W+(yes|no|maybe)\b", fold(r))
    exact = [m for o in OPTIONS for m in re.finditer(r"(?:^|(?<=[.!?]\s)|(?<=\n))" + re.escape(o) + r"(?=\s|$)", r)]
    if len(loose) != 1 or len(exact) != 1:
        return f"{len(loose)} of the options 'My answer is yes/no/maybe.' (exactly one, as a sentence of its own)"
    return None


# markdown emphasis: the delimiters hug the text (``* 3 m by 2 *`` is two multiplication signs, not a highlight)
HIGHLIGHT = re.compile(r"(?<!\*)\*\*(\S(?:[^\n*]*\S)?)\*\*(?!\*)|(?<![*\w])\*(\S(?:[^\n*]*\S)?)\*(?![*\w])")


@strict("detectable_format:number_highlighted_sections")
def _highlights(r: str, kw: dict, prompt: str) -> str | None:
    body = "\n".join(line for line in r.split("\n") if not BULLET.match(line))
    spans = [a or b for a, b in HIGHLIGHT.findall(body)]
    if empty := [s for s in spans if not _has_words(s)]:
        return f"an empty or wordless highlight *{empty[0]}*"
    distinct = {s.strip().casefold() for s in spans}
    n = kw["num_highlights"]
    return None if len(distinct) >= n else f"{len(distinct)} distinct highlighted sections, at least {n} required"


@strict("detectable_format:multiple_sections")
def _sections(r: str, kw: dict, prompt: str) -> str | None:
    splitter, n = kw["section_spliter"].strip(), kw["num_sections"]
    anywhere = re.findall(re.escape(fold(splitter)) + r"\s*\d+", fold(r))
    headers = re.findall(r"^[ \t#*]*" + re.escape(splitter) + r" (\d+)\b", r, re.MULTILINE)
    if len(anywhere) != len(headers):
        return f"'{splitter} N' written inside a line or in another spelling"
    if [int(h) for h in headers] != list(range(1, n + 1)):
        return f"sections numbered {headers}, not 1..{n} in order"
    bodies = re.split(r"^[ \t#*]*" + re.escape(splitter) + r" \d+\b.*$", r, flags=re.MULTILINE)[1:]
    if any(not _has_words(b) for b in bodies):
        return "an empty section"
    return None


@strict("detectable_format:json_format")
def _json(r: str, kw: dict, prompt: str) -> str | None:
    text = r.strip()
    m = re.fullmatch(r"```(?:json|JSON|Json)?[ \t]*\n(.*)\n[ \t]*```", text, re.DOTALL)
    text = m.group(1) if m else text
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return "not one JSON document"
    if not isinstance(value, (dict, list)) or not value:
        return f"a JSON {type(value).__name__ if value not in ({}, []) else 'empty container'}, not an object or array"
    return None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


TITLE = re.compile(r"<<([^\n]*?)>>")


@strict("detectable_format:title")
def _title(r: str, kw: dict, prompt: str) -> str | None:
    titles = TITLE.findall(r)
    if len(titles) != 1:
        return f"{len(titles)} titles <<...>> (exactly one)"
    if not _has_words(titles[0]):
        return "an empty or wordless title"
    first = r.strip().split("\n", 1)[0]
    if not TITLE.fullmatch(first.strip().strip("#* ")):
        return "the title is not the first line"
    return None


@strict("combination:two_responses")
def _two_responses(r: str, kw: dict, prompt: str) -> str | None:
    if re.search(r"\*{4,}", r.replace("******", "")) or re.search(r"\*{7,}", r):
        return "an asterisk separator that is not exactly '******'"
    parts = [p for p in r.split("******")]
    parts = [p for i, p in enumerate(parts) if p.strip() or i not in (0, len(parts) - 1)]
    if len(parts) != 2 or not all(_has_words(p, 2) for p in parts):
        return f"{len(parts)} responses separated by '******' (exactly two, each with words)"
    if [loose_key(w.text) for w in words(parts[0])] == [loose_key(w.text) for w in words(parts[1])]:
        return "the two responses have the same words"
    return None


@strict("combination:repeat_prompt")
def _repeat_prompt(r: str, kw: dict, prompt: str) -> str | None:
    want = " ".join(kw["prompt_to_repeat"].split())
    got = " ".join(r.split())
    if not got.startswith(want):
        return "does not start with the request, repeated word for word (case included)"
    rest = got[len(want):]
    if not _has_words(rest) or " ".join(rest.split()).startswith(want):
        return "nothing but the request"
    return None


@strict("startend:end_checker")
def _end(r: str, kw: dict, prompt: str) -> str | None:
    phrase, text = kw["end_phrase"].strip(), r.rstrip()
    if not text.casefold().endswith(phrase.casefold()):
        return f"does not end with the exact phrase {phrase!r}"
    if not _has_words(text[:len(text) - len(phrase)]):
        return "nothing before the end phrase"
    return None


@strict("startend:quotation")
def _quotation(r: str, kw: dict, prompt: str) -> str | None:
    text = r.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return "not wrapped in double quotation marks"
    if '"' in text[1:-1]:
        return "a double quotation mark inside: the response is not one quotation"
    return None if _has_words(text[1:-1]) else "nothing inside the quotation marks"


@strict("punctuation:no_comma")
def _no_comma(r: str, kw: dict, prompt: str) -> str | None:
    from .text import describe

    commas = lookalikes(",")
    found = next((c for c in r if c in commas), None)
    return f"a comma or a look-alike ({describe(found)})" if found else None
