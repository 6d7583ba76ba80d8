"""Strict checkers of formats (bullets, highlights, sections, JSON, titles), combinations, start/end and
punctuation."""
from __future__ import annotations

import json
import re

from ..text import describe, fold, lookalikes, loose_key, words
from .base import DIVIDER, has_words, strict


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
    strict_items = [m for m in BULLET.findall(r) if has_words(m)]
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
    if empty := [s for s in spans if not has_words(s)]:
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
    if any(not has_words(b) for b in bodies):
        return "an empty section"
    return None


@strict("detectable_format:json_format")
def _json(r: str, kw: dict, prompt: str) -> str | None:
    text = r.strip()
    m = re.fullmatch(r"```(?:json|JSON|Json)?[ \t]*\n(.*)\n[ \t]*```", text, re.DOTALL)
    text = m.group(1) if m else text
    try:
        value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except ValueError:
        return "not one JSON document"
    if not isinstance(value, (dict, list)) or not value:
        return f"a JSON {type(value).__name__ if value not in ({}, []) else 'empty container'}, not an object or array"
    return None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key twice: two answers in one object")
    return dict(pairs)


TITLE = re.compile(r"<<([^\n]*?)>>")


@strict("detectable_format:title")
def _title(r: str, kw: dict, prompt: str) -> str | None:
    titles = TITLE.findall(r)
    if len(titles) != 1:
        return f"{len(titles)} titles <<...>> (exactly one)"
    if not has_words(titles[0]):
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
    if len(parts) != 2 or not all(has_words(p, 2) for p in parts):
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
    if not has_words(rest) or " ".join(rest.split()).startswith(want):
        return "nothing but the request"
    return None


@strict("startend:end_checker")
def _end(r: str, kw: dict, prompt: str) -> str | None:
    phrase, text = kw["end_phrase"].strip(), r.rstrip()
    # exact (IFEval's reference ignores case; the instruction says "exact phrase"), or in the one case the whole
    # response is written in (a prompt may also ask for all lower-case or all capitals)
    cased = [phrase] + [f(phrase) for f in (str.lower, str.upper) if f(text) == text]
    if not any(text.endswith(p) for p in cased):
        return f"does not end with the exact phrase {phrase!r}"
    if not has_words(text[:len(text) - len(phrase)]):
        return "nothing before the end phrase"
    return None


@strict("startend:quotation")
def _quotation(r: str, kw: dict, prompt: str) -> str | None:
    text = r.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return "not wrapped in double quotation marks"
    if '"' in text[1:-1]:
        return "a double quotation mark inside: the response is not one quotation"
    return None if has_words(text[1:-1]) else "nothing inside the quotation marks"


@strict("punctuation:no_comma")
def _no_comma(r: str, kw: dict, prompt: str) -> str | None:
    commas = lookalikes(",")
    found = next((c for c in r if c in commas), None)
    return f"a comma or a look-alike ({describe(found)})" if found else None
