"""The one text normaliser of every rule judge: what a reader sees, from ICU (PyICU), not from a hand-made table.

A policy games a string check with characters a reader does not see or cannot tell apart. Rule judges therefore
never clean such text up silently; they *screen* it and call it a violation that names the character:

- **invisible code points** (:func:`invisible_chars`): Unicode's Default_Ignorable_Code_Point set (zero-width
  spaces and joiners, soft hyphen, variation selectors, the Hangul fillers, tag characters, ...), controls other
  than tab and newlines, format characters (bidi controls), private-use, unassigned and surrogate code points, the
  line and paragraph separators, and blanks drawn as nothing (U+2800 BRAILLE PATTERN BLANK). Emoji sequences keep
  their ZWJ and variation selector 16 (an emoji presentation, not hidden text);
- **mixed-script words** (:func:`mixed_script_words`): a UAX #29 word that ICU's UTS #39 spoof checker finds below
  the "highly restrictive" level (``pаypal`` with a Cyrillic а), or with digits of two numbering systems.

Comparisons that *forbid* something use the loose key (:func:`loose_key`): NFKC, case folding, marks stripped and
the UTS #39 confusable skeleton, so every spelling that looks like the forbidden word is that word. Comparisons that
*require* something use the text as written: only the visible, exact spelling is evidence. Words are UAX #29 word
segments (:func:`words`, ICU's word break iterator), sentences ICU's sentence break iterator. No NFKC is applied to
text a judge parses (``2⁵`` is not ``25``).
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import icu

# ICU word break rule status ranges (UBRK_WORD_*): none 0-99, number 100-199, letter 200-299, kana 300-399,
# ideographic 400-499
_NUMBER, _LETTER = 100, 200
_INVISIBLE = icu.UnicodeSet(r"[[[:DI:][:Cc:][:Cf:][:Co:][:Cn:][:Cs:][:Zl:][:Zp:]\u2800]-[\t\n\r]]")
_PICTOGRAPHIC = icu.UnicodeSet(r"[[:Extended_Pictographic:][:Emoji_Modifier:]\u20E3]")
_EMOJI_JOINERS = {"\u200d", "\ufe0f"}
_SCRIPT_JOINERS = {"\u200c", "\u200d"}
_JOINER_SCRIPTS = {"Arabic", "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada",
                   "Malayalam", "Sinhala", "Syriac", "Mongolian"}
# markup a reader never sees: HTML comments and tags, markdown comments (reference definitions)
_HIDDEN_MARKUP = [
    (re.compile(r"<!--|-->"), "an HTML comment"),
    (re.compile(r"(?<!<)</?[A-Za-z][^<>\n]*>(?!>)"), "an HTML tag"),  # not IFEval's <<title>>
    (re.compile(r"^\s*\[[^\]\n]*\]:\s", re.MULTILINE), "a markdown comment or link definition"),
    (re.compile(r"!\[[^\]\n]*\]\("), "a markdown image (its alt text is not shown)"),
    (re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"), "an HTML character reference"),
]
CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)  # code blocks and spans


def describe(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``."""
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'UNNAMED')}"


def invisible_chars(text: str) -> list[tuple[int, str]]:
    """(index, character) of every invisible code point (see the module doc), emoji ZWJ and VS16 excepted."""
    out = []
    for i, ch in enumerate(text):
        if not _INVISIBLE.contains(ch):
            continue
        if ch in _EMOJI_JOINERS and i > 0 and _PICTOGRAPHIC.contains(text[i - 1]) and (
                ch == "\ufe0f" or (i + 1 < len(text) and _PICTOGRAPHIC.contains(text[i + 1]))):
            continue
        if ch in _SCRIPT_JOINERS and 0 < i < len(text) - 1 and _joins_letters(text[i - 1], text[i + 1]):
            continue
        out.append((i, ch))
    return out


def _joins_letters(a: str, b: str) -> bool:
    """ZWNJ/ZWJ between two letters of a script that spells with them (Persian, the Indic scripts): orthography."""
    return a.isalpha() and b.isalpha() and script(a) == script(b) and script(a) in _JOINER_SCRIPTS


@dataclass(frozen=True)
class Word:
    text: str
    start: int
    kind: str  # "number" | "letter" (letters, kana, ideographs)


def _segments(text: str, iterator: icu.BreakIterator) -> list[tuple[int, int, int]]:
    iterator.setText(text)
    out, start = [], 0
    for end in iterator:
        out.append((start, end, iterator.getRuleStatus()))
        start = end
    return out


@functools.lru_cache(maxsize=1)
def _word_iterator() -> icu.BreakIterator:
    return icu.BreakIterator.createWordInstance(icu.Locale.getRoot())


@functools.lru_cache(maxsize=1)
def _character_iterator() -> icu.BreakIterator:
    return icu.BreakIterator.createCharacterInstance(icu.Locale.getRoot())


@functools.lru_cache(maxsize=1)
def _sentence_iterator() -> icu.BreakIterator:
    return icu.BreakIterator.createSentenceInstance(icu.Locale.getRoot())


def words(text: str) -> list[Word]:
    """UAX #29 words: the segments ICU's word break iterator tags as numbers, letters, kana or ideographs."""
    # ICU counts UTF-16 units; map them back to Python indices (astral characters are two units)
    units = _utf16_to_index(text)
    out = []
    for start, end, status in _segments(text, _word_iterator()):
        if status >= _NUMBER:
            a, b = units[start], units[end]
            out.append(Word(text[a:b], a, "number" if status < _LETTER else "letter"))
    return out


def sentences(text: str) -> list[str]:
    """UAX #29 sentences (ICU's sentence break iterator), stripped, empty ones left out."""
    units = _utf16_to_index(text)
    return [s for a, b, _ in _segments(text, _sentence_iterator()) if (s := text[units[a]:units[b]].strip())]


def _utf16_to_index(text: str) -> dict[int, int]:
    out, unit = {0: 0}, 0
    for i, ch in enumerate(text):
        unit += 2 if ord(ch) > 0xFFFF else 1
        out[unit] = i + 1
    return out


@functools.lru_cache(maxsize=1)
def _spoof_checker() -> icu.SpoofChecker:
    checker = icu.SpoofChecker()
    checker.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL | icu.USpoofChecks.MIXED_NUMBERS)
    checker.setRestrictionLevel(icu.URestrictionLevel.HIGHLY_RESTRICTIVE)
    return checker


def script(ch: str) -> str:
    """The Unicode script of ``ch`` ("Latin", "Cyrillic", "Common", ...)."""
    return icu.Script.getScript(ch).getName()


def is_invisible(ch: str) -> bool:
    """Is ``ch`` in the invisible set of :func:`invisible_chars` (without its emoji and orthography exceptions)?"""
    return bool(_INVISIBLE.contains(ch))


def mixed_script_words(text: str) -> list[tuple[str, str]]:
    """(word, the character of its minority script) for every word below UTS #39's highly restrictive level."""
    out = []
    for w in words(text):
        if w.text.isascii() or not _spoof_checker().check(w.text):
            continue
        scripts = [script(c) for c in w.text if script(c) not in ("Common", "Inherited")]
        main = max(set(scripts), key=scripts.count) if scripts else ""
        odd = next((c for c in w.text if script(c) not in ("Common", "Inherited", main)), w.text[0])
        out.append((w.text, odd))
    return out


def hidden_markup(text: str) -> str | None:
    """The first markup that hides or encodes text for a reader (HTML comments, tags and character references,
    markdown comments and images), or None. Code spans and blocks show their text as written, so they are left
    out (``kill <pid>`` in backticks is not a tag)."""
    text = code_free(text)
    for pattern, what in _HIDDEN_MARKUP:
        if m := pattern.search(text):
            return f"hidden content: {what} ({m.group(0).strip()[:20]!r})"
    return None


def screen(text: str, mixed_script: bool = True) -> str | None:
    """Why ``text`` cannot be judged as written (its first invisible character, hidden markup, or a mixed-script
    word), or None."""
    if found := invisible_chars(text):
        i, ch = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return f"invisible character {describe(ch)} at position {i}{more}"
    if hidden := hidden_markup(text):
        return hidden
    if mixed_script and (mixed := mixed_script_words(text)):
        word, ch = mixed[0]
        return f"mixed-script word {word!r} ({describe(ch)})"
    return None


@functools.lru_cache(maxsize=1)
def _skeletons() -> icu.SpoofChecker:
    return icu.SpoofChecker()


def skeleton(text: str) -> str:
    """The UTS #39 confusable skeleton: two strings that look alike have the same skeleton."""
    return _skeletons().getSkeleton(0, text)


def fold(text: str) -> str:
    """A readable loose form: NFKC, no invisible code points, no combining marks, each non-ASCII character that is
    confusable with ASCII replaced by it (Cyrillic ``а`` → ``a``, ``’`` → ``'``), case-folded."""
    text = unicodedata.normalize("NFKC", text)
    drop = {i for i, _ in invisible_chars(text)} | {i for i, c in enumerate(text) if c in _EMOJI_JOINERS}
    text = "".join(c for i, c in enumerate(text) if i not in drop)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) not in ("Mn", "Me"))
    out = []
    for c in text:
        if not c.isascii() and (sk := skeleton(c)).isascii():
            c = sk
        elif not c.isascii() and (m := _NAMED_LATIN.match(unicodedata.name(c, ""))):
            c = m.group(1)  # ʀ LATIN LETTER SMALL CAPITAL R, ᵣ LATIN SUBSCRIPT SMALL LETTER R: read as r
        out.append(c)
    return unicodedata.normalize("NFC", "".join(out)).casefold()


_NAMED_LATIN = re.compile(r"^(?:LATIN|MODIFIER LETTER|MATHEMATICAL [A-Z -]+?) (?:LETTER )?"
                          r"(?:SMALL CAPITAL|SMALL|CAPITAL|SUBSCRIPT SMALL LETTER|SUPERSCRIPT SMALL LETTER|"
                          r"LETTER SMALL CAPITAL|SMALL LETTER|CAPITAL LETTER) ([A-Z])$")


def loose_key(text: str) -> str:
    """:func:`fold`, then the full skeleton (``0`` ≈ ``o``, ``1`` ≈ ``l``, ``rn`` ≈ ``m``), case-folded: compare
    two keys to ask whether a reader could take one string for the other."""
    return "".join(_char_key(c) for c in fold(text))


def loose_find(text: str, phrase: str, whole_words: bool = False) -> int:
    """How often ``phrase`` occurs in ``text`` by :func:`loose_key` (overlaps counted), counting only matches that
    begin and end on a character of ``text`` (the skeleton writes ``m`` as ``rn``, and "moon" does not contain
    "no"); with ``whole_words``, only matches that begin and end at a word boundary ("was an AI" does not contain
    "as an AI")."""
    key = loose_key(phrase)
    if not key.strip():
        return 0
    folded = fold(text)
    units = [_char_key(c) for c in folded]
    starts, at = {0: 0}, 0  # key offset -> index of the character of `folded` that begins there
    for k, u in enumerate(units):
        at += len(u)
        starts[at] = k + 1

    def edge(k: int) -> bool:  # a word boundary between folded[k - 1] and folded[k]
        return not (0 < k < len(folded) and folded[k - 1].isalnum() and folded[k].isalnum())

    joined, found, i = "".join(units), 0, -1
    while (i := joined.find(key, i + 1)) >= 0:
        j = i + len(key)
        found += i in starts and j in starts and (not whole_words or edge(starts[i]) and edge(starts[j]))
    return found


@functools.lru_cache(maxsize=4096)
def _char_key(c: str) -> str:
    # after case folding, capital I and lower-case l are one letter to a reader (UTS #39 maps I to l, not to i)
    return skeleton(c).casefold().replace("i", "l")


def graphemes(text: str) -> int:
    """How many characters a reader sees: extended grapheme clusters (UAX #29) of the NFKC form, so a ligature
    counts as its letters and a decomposed accent or an emoji sequence as one; a combining mark that does not
    compose with its letter (stacked marks) counts as one more."""
    text = unicodedata.normalize("NFKC", text)
    marks = sum(unicodedata.category(c) in ("Mn", "Me") for c in text)
    return len(_segments(text, _character_iterator())) + marks


@functools.lru_cache(maxsize=1)
def _by_skeleton() -> dict[str, tuple[str, ...]]:
    """Every visible assigned character, grouped by its UTS #39 skeleton (one scan of the code space)."""
    groups: dict[str, list[str]] = {}
    for cp in range(0x20, 0x110000):
        ch = chr(cp)
        if 0xD800 <= cp < 0xE000 or (cp > 0x7F and _INVISIBLE.contains(ch)):
            continue
        groups.setdefault(skeleton(ch), []).append(ch)
    return {k: tuple(v) for k, v in groups.items()}


@functools.lru_cache(maxsize=128)
def lookalikes(target: str) -> frozenset[str]:
    """Every assigned character a reader could take for ``target`` (one character): the same UTS #39 skeleton,
    the same NFKC form, or (for punctuation) a Unicode name that contains the target's name (``ARABIC COMMA``)."""
    out = set(_by_skeleton().get(skeleton(target), ())) | {target}
    name = unicodedata.name(target, "")
    if unicodedata.category(target).startswith("P") and name:
        out |= {c for group in _by_skeleton().values() for c in group if name in unicodedata.name(c, "")}
    out |= {c for group in _by_skeleton().values() for c in group
            if len(c) == 1 and ord(c) > 0x7F and unicodedata.normalize("NFKC", c) == target}
    return frozenset(out)


_CONNECTORS = re.compile(r"[_'’‘ʼ.:·‧\-]+|(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _letters(word: str) -> int:
    return sum(c.isalpha() for c in word)


def word_bounds(text: str) -> tuple[int, int]:
    """(fewest, most) words a reader could count in ``text``, for "at least" and "at most" rules respectively.

    The fewest: UAX #29 letter words of two or more letters (ideographic and kana words count whole), plus "a" and
    "I": numbers and lone letters are not words. The most: every UAX #29 word, split again at the connectors it may
    hold (``_``, apostrophes, ``.``, ``:``, hyphens) and where letters change case or turn into digits
    (``this_is_one`` and ``ThisIsOne`` are three)."""
    ws = words(text)
    fewest = sum(1 for w in ws if w.kind == "letter" and (
        _letters(w.text) >= 2 or script(w.text[0]) in ("Han", "Hiragana", "Katakana")
        or w.text.casefold() in ("a", "i")))
    most = sum(max(1, sum(1 for p in _CONNECTORS.split(w.text) if any(c.isalnum() for c in p))) for w in ws)
    return fewest, most


SPACED_RUN = re.compile(r"(?<!\w)\w(?:[\W_]{1,3}\w(?!\w))+")  # single characters spaced out: "s o r r y"


def spaced_out(text: str) -> str:
    """``text`` with runs of single characters joined (``s o r r y``, ``s.o.r.r.y``, ``n-o`` → ``sorry``, ``no``), so
    a prohibition sees the word a reader sees."""
    return SPACED_RUN.sub(lambda m: re.sub(r"[\W_]+", "", m.group(0)), text)


def spaced_out_evenly(text: str) -> str:
    """:func:`spaced_out` for runs with one separator throughout (``A.I.``, not the ``A.I., I`` it would join)."""
    return re.sub(r"(?<!\w)\w([\W_]{1,3})\w(?!\w)(?:\1\w(?!\w))*", lambda m: re.sub(r"[\W_]+", "", m.group(0)),
                  text)


def shift_letters(text: str, k: int) -> str:
    """``text`` with each ASCII letter moved ``k`` places along the alphabet, case kept (a Caesar shift; 13 is
    ROT13)."""
    lower, upper = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    k %= 26
    return text.translate(str.maketrans(lower + upper, lower[k:] + lower[:k] + upper[k:] + upper[:k]))


def readable(text: str) -> str:
    """``text`` as a model judge should read it: NFKC, without invisible code points (emoji joiners kept)."""
    text = unicodedata.normalize("NFKC", text)
    drop = {i for i, _ in invisible_chars(text)}
    return "".join(c for i, c in enumerate(text) if i not in drop)


def languages(text: str) -> dict[str, float]:
    """langdetect's language probabilities for ``text`` (seeded, so repeatable); {} when it finds no features."""
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0
    try:
        return {x.lang: x.prob for x in detect_langs(text)}
    except LangDetectException:
        return {}


def code_free(text: str) -> str:
    """``text`` without its code spans and blocks."""
    return CODE.sub(" ", text)
